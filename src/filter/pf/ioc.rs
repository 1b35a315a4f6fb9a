//! pf's ioctl request numbers, as arithmetic.
//!
//! OpenBSD encodes a request as `_IOWR(group, num, type)`: direction bits
//! (IOC_IN | IOC_OUT), the argument's size masked with IOCPARM_MASK, the group
//! letter and the number (sys/ioccom.h). The size part is why the numbers
//! change whenever a pf structure grows between releases. The backend lets
//! nix's `ioctl_readwrite!` compute them from the generated structures; this
//! module states the same formula on its own so that it can be tested on any
//! system, and so that a test on OpenBSD can prove the two agree.

/// `IOC_OUT | IOC_IN`: the kernel copies the argument in and back out.
pub const IOC_INOUT: u32 = 0x4000_0000 | 0x8000_0000;

/// The argument size field is 13 bits wide.
pub const IOCPARM_MASK: u32 = 0x1fff;

/// pf's ioctl group letter.
pub const PF_GROUP: u8 = b'D';

/// The request numbers within group `D` (pfvar.h, "ioctl operations"). These
/// are stable; only the sizes folded into the full request change.
pub mod nr {
    /// `struct pfioc_rule`: add a rule to an open transaction.
    pub const DIOCADDRULE: u8 = 4;
    /// `struct pf_status`: is pf running?
    pub const DIOCGETSTATUS: u8 = 21;
    /// `struct pfioc_ruleset`: how many child anchors an anchor has.
    pub const DIOCGETRULESETS: u8 = 58;
    /// `struct pfioc_ruleset`: the name of child anchor `nr`.
    pub const DIOCGETRULESET: u8 = 59;
    /// `struct pfioc_trans`: open a transaction (and an anchor).
    pub const DIOCXBEGIN: u8 = 81;
    /// `struct pfioc_trans`: swap in the transaction's rulesets.
    pub const DIOCXCOMMIT: u8 = 82;
}

/// `_IOWR(group, num, size)` as OpenBSD's sys/ioccom.h computes it.
pub const fn iowr(group: u8, num: u8, size: usize) -> u32 {
    IOC_INOUT | ((size as u32 & IOCPARM_MASK) << 16) | ((group as u32) << 8) | num as u32
}

/// A pf request (`_IOWR('D', num, T)`) for an argument of `size` bytes.
pub const fn pf_iowr(num: u8, size: usize) -> u32 {
    iowr(PF_GROUP, num, size)
}

/// Argument sizes on amd64 for pfvar.h rev 1.543 (2025-04-14), the revision
/// these numbers were checked against; the OpenBSD-side test compares the
/// generated structures with them when the headers are that revision.
pub mod amd64_rev1_543 {
    /// `sizeof(struct pfioc_trans)`: two ints and a pointer. Stable for years.
    pub const PFIOC_TRANS: usize = 16;
    /// `sizeof(struct pfioc_trans_e)`: type, anchor[PATH_MAX], ticket.
    pub const PFIOC_TRANS_E: usize = 1032;
    /// `sizeof(struct pfioc_ruleset)`: nr, path[PATH_MAX], name[64].
    pub const PFIOC_RULESET: usize = 1092;
    /// `sizeof(struct pf_rule)`.
    pub const PF_RULE: usize = 1344;
    /// `sizeof(struct pfioc_rule)`: three u32, two paths, the rule.
    pub const PFIOC_RULE: usize = 3408;
    /// `sizeof(struct pf_status)`.
    pub const PF_STATUS: usize = 520;
}

#[cfg(test)]
mod tests {
    use super::amd64_rev1_543 as size;
    use super::*;

    #[test]
    fn transaction_requests_match_the_known_amd64_values() {
        // DIOCXBEGIN = 0xc0104451 is what every amd64 release since pf
        // transactions exist prints for _IOWR('D', 81, struct pfioc_trans).
        assert_eq!(pf_iowr(nr::DIOCXBEGIN, size::PFIOC_TRANS), 0xc010_4451);
        assert_eq!(pf_iowr(nr::DIOCXCOMMIT, size::PFIOC_TRANS), 0xc010_4452);
    }

    #[test]
    fn size_dependent_requests_for_rev_1_543() {
        assert_eq!(pf_iowr(nr::DIOCADDRULE, size::PFIOC_RULE), 0xcd50_4404);
        assert_eq!(pf_iowr(nr::DIOCGETSTATUS, size::PF_STATUS), 0xc208_4415);
        assert_eq!(
            pf_iowr(nr::DIOCGETRULESETS, size::PFIOC_RULESET),
            0xc444_443a
        );
        assert_eq!(
            pf_iowr(nr::DIOCGETRULESET, size::PFIOC_RULESET),
            0xc444_443b
        );
    }

    #[test]
    fn pfioc_rule_embeds_two_paths_and_the_rule() {
        // action, ticket, nr (3 × u32), anchor and anchor_call (2 × PATH_MAX),
        // then the 8-byte aligned rule: 12 + 2048 = 2060, padded to 2064.
        assert_eq!(2064 + size::PF_RULE, size::PFIOC_RULE);
    }

    #[test]
    fn size_is_masked_to_thirteen_bits() {
        // A structure of 8 KiB or more would alias a smaller one; pf's are
        // far below that, which this documents.
        assert_eq!(iowr(b'D', 1, 0x2000), iowr(b'D', 1, 0));
        assert!(size::PFIOC_RULE < IOCPARM_MASK as usize);
    }

    #[test]
    fn direction_group_and_number_fields() {
        let r = iowr(b'D', 0x51, 0x10);
        assert_eq!(r >> 30, 0b11);
        assert_eq!((r >> 16) & IOCPARM_MASK, 0x10);
        assert_eq!((r >> 8) & 0xff, u32::from(b'D'));
        assert_eq!(r & 0xff, 0x51);
    }
}
