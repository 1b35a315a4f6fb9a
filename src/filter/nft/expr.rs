//! The nf_tables expressions the daemon's rules are made of.
//!
//! Each one is encoded exactly as `nft --debug=mnl` shows nft 1.0.6 sending
//! it (same attributes, same order), so `nft list` prints our rules the way it
//! prints its own. Register contents (compared values, immediates) are raw
//! bytes in the order the kernel keeps them: packet fields in network order,
//! conntrack marks and priorities in host order.

use super::netlink::Attrs;

/// `NFT_REG_1`: the first 128-bit register (also 32-bit register 0).
pub const REG_1: u32 = 1;
pub const REG_2: u32 = 2;
pub const REG_3: u32 = 3;
/// `NFT_REG32_00`: the first 32-bit register.
const REG32_00: u32 = 8;

/// The register holding the 32-bit word `word` of a value that starts in
/// `REG_1`, named as nft names it (a 128-bit register when aligned to one).
pub const fn reg_at_word(word: u32) -> u32 {
    if word % 4 == 0 {
        REG_1 + word / 4
    } else {
        REG32_00 + word
    }
}

// enum nft_meta_keys
pub const META_PRIORITY: u32 = 2;
pub const META_L4PROTO: u32 = 16;
// enum nft_ct_keys
pub const CT_STATUS: u32 = 2;
pub const CT_MARK: u32 = 3;
pub const CT_PROTO_DST: u32 = 12;
pub const CT_SRC_IP: u32 = 19;
pub const CT_DST_IP: u32 = 20;
pub const CT_SRC_IP6: u32 = 21;
pub const CT_DST_IP6: u32 = 22;
/// `IP_CT_DIR_ORIGINAL`.
pub const CT_DIR_ORIGINAL: u8 = 0;

/// `enum nft_payload_bases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Network = 1,
    Transport = 2,
}

/// `enum nft_cmp_ops` (the two used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
}

/// `enum nft_nat_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatType {
    Snat = 0,
    Dnat = 1,
}

/// `NF_NAT_RANGE_PROTO_SPECIFIED`: the port range in the nat expression applies.
pub const NAT_RANGE_PROTO_SPECIFIED: u32 = 0x2;
/// `NFT_DYNSET_OP_DELETE`.
const DYNSET_OP_DELETE: u32 = 2;

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg`
    Meta { key: u32, dreg: u32 },
    /// `meta set <key> with reg`
    MetaSet { key: u32, sreg: u32 },
    /// `cmp <op> reg <data>`
    Cmp { sreg: u32, op: CmpOp, data: Vec<u8> },
    /// `payload load <len>b @ <base> header + <offset> => reg`
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `bitwise reg = (reg & mask) ^ xor`
    Bitwise {
        reg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `lookup reg set <set> [dreg]`: a set match, or a map lookup with `dreg`.
    Lookup {
        set: &'static str,
        set_id: u32,
        sreg: u32,
        dreg: Option<u32>,
    },
    /// `dynset delete reg_key set <set>`: removes the matched element.
    DynsetDelete {
        set: &'static str,
        set_id: u32,
        sreg_key: u32,
    },
    /// `log prefix <prefix>`
    Log { prefix: String },
    /// `immediate reg <data>`
    Immediate { dreg: u32, data: Vec<u8> },
    /// `ct load <key> => reg [, dir original]`
    CtLoad {
        key: u32,
        dreg: u32,
        dir: Option<u8>,
    },
    /// `ct set <key> with reg`
    CtSet { key: u32, sreg: u32 },
    /// `nat <snat|dnat> <family> addr_min reg proto_min reg [proto_max reg] [flags]`
    Nat {
        nat: NatType,
        family: u8,
        addr_min: u32,
        proto_min: u32,
        proto_max: Option<u32>,
        flags: Option<u32>,
    },
}

// NFTA_* attribute numbers, per expression.
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

impl Expr {
    /// The kernel's name of the expression type.
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::DynsetDelete { .. } => "dynset",
            Expr::Log { .. } => "log",
            Expr::Immediate { .. } => "immediate",
            Expr::CtLoad { .. } | Expr::CtSet { .. } => "ct",
            Expr::Nat { .. } => "nat",
        }
    }

    /// Appends the expression as one element of NFTA_RULE_EXPRESSIONS.
    pub fn encode(&self, list: &mut Attrs) {
        list.nest(NFTA_LIST_ELEM, |elem| {
            elem.put_str(NFTA_EXPR_NAME, self.name());
            elem.nest(NFTA_EXPR_DATA, |a| self.encode_data(a));
        });
    }

    fn encode_data(&self, a: &mut Attrs) {
        match self {
            Expr::Meta { key, dreg } => {
                a.put_u32(2, *key); // NFTA_META_KEY
                a.put_u32(1, *dreg); // NFTA_META_DREG
            }
            Expr::MetaSet { key, sreg } => {
                a.put_u32(2, *key); // NFTA_META_KEY
                a.put_u32(3, *sreg); // NFTA_META_SREG
            }
            Expr::Cmp { sreg, op, data } => {
                a.put_u32(1, *sreg); // NFTA_CMP_SREG
                a.put_u32(2, *op as u32); // NFTA_CMP_OP
                a.nest(3, |d| d.put(NFTA_DATA_VALUE, data)); // NFTA_CMP_DATA
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                a.put_u32(1, *dreg); // NFTA_PAYLOAD_DREG
                a.put_u32(2, *base as u32); // NFTA_PAYLOAD_BASE
                a.put_u32(3, *offset); // NFTA_PAYLOAD_OFFSET
                a.put_u32(4, *len); // NFTA_PAYLOAD_LEN
            }
            Expr::Bitwise { reg, mask, xor } => {
                a.put_u32(1, *reg); // NFTA_BITWISE_SREG
                a.put_u32(2, *reg); // NFTA_BITWISE_DREG
                a.put_u32(6, 0); // NFTA_BITWISE_OP: NFT_BITWISE_BOOL (mask and xor)
                a.put_u32(3, mask.len() as u32); // NFTA_BITWISE_LEN
                a.nest(4, |d| d.put(NFTA_DATA_VALUE, mask)); // NFTA_BITWISE_MASK
                a.nest(5, |d| d.put(NFTA_DATA_VALUE, xor)); // NFTA_BITWISE_XOR
            }
            Expr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
            } => {
                a.put_u32(2, *sreg); // NFTA_LOOKUP_SREG
                if let Some(dreg) = dreg {
                    a.put_u32(3, *dreg); // NFTA_LOOKUP_DREG
                }
                a.put_str(1, set); // NFTA_LOOKUP_SET
                a.put_u32(4, *set_id); // NFTA_LOOKUP_SET_ID
            }
            Expr::DynsetDelete {
                set,
                set_id,
                sreg_key,
            } => {
                a.put_u32(4, *sreg_key); // NFTA_DYNSET_SREG_KEY
                a.put_u32(3, DYNSET_OP_DELETE); // NFTA_DYNSET_OP
                a.put_str(1, set); // NFTA_DYNSET_SET_NAME
                a.put_u32(2, *set_id); // NFTA_DYNSET_SET_ID
            }
            Expr::Log { prefix } => a.put_str(2, prefix), // NFTA_LOG_PREFIX
            Expr::Immediate { dreg, data } => {
                a.put_u32(1, *dreg); // NFTA_IMMEDIATE_DREG
                a.nest(2, |d| d.put(NFTA_DATA_VALUE, data)); // NFTA_IMMEDIATE_DATA
            }
            Expr::CtLoad { key, dreg, dir } => {
                a.put_u32(2, *key); // NFTA_CT_KEY
                a.put_u32(1, *dreg); // NFTA_CT_DREG
                if let Some(dir) = dir {
                    a.put_u8(3, *dir); // NFTA_CT_DIRECTION
                }
            }
            Expr::CtSet { key, sreg } => {
                a.put_u32(2, *key); // NFTA_CT_KEY
                a.put_u32(4, *sreg); // NFTA_CT_SREG
            }
            Expr::Nat {
                nat,
                family,
                addr_min,
                proto_min,
                proto_max,
                flags,
            } => {
                a.put_u32(1, *nat as u32); // NFTA_NAT_TYPE
                a.put_u32(2, u32::from(*family)); // NFTA_NAT_FAMILY
                a.put_u32(3, *addr_min); // NFTA_NAT_REG_ADDR_MIN
                a.put_u32(5, *proto_min); // NFTA_NAT_REG_PROTO_MIN
                if let Some(max) = proto_max {
                    a.put_u32(6, *max); // NFTA_NAT_REG_PROTO_MAX
                }
                if let Some(flags) = flags {
                    a.put_u32(7, *flags); // NFTA_NAT_FLAGS
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(e: &Expr) -> Vec<u8> {
        let mut a = Attrs::new();
        e.encode(&mut a);
        a.as_bytes().to_vec()
    }

    /// Words of 4 bytes as `nft --debug=mnl` prints them.
    fn words(hex: &str) -> Vec<u8> {
        hex.split_whitespace()
            .flat_map(|w| {
                (0..w.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn registers_are_named_like_nft_names_them() {
        // ipv4 . ipv4 . inet_service: words 0, 1, 2.
        assert_eq!([reg_at_word(0), reg_at_word(1), reg_at_word(2)], [1, 9, 10]);
        // ipv6 . ipv6 . inet_service: words 0, 4, 8.
        assert_eq!([reg_at_word(0), reg_at_word(4), reg_at_word(8)], [1, 2, 3]);
    }

    /// `dynset delete reg_key 1 set once`, bytes from nft 1.0.6 (little-endian host).
    #[test]
    fn dynset_delete_matches_nft() {
        let e = Expr::DynsetDelete {
            set: "once",
            set_id: 1,
            sreg_key: REG_1,
        };
        let expected = words(
            "38000180 0b000100 64796e73 65740000 28000280 08000400 00000001 \
             08000300 00000002 09000100 6f6e6365 00000000 08000200 00000001",
        );
        assert_eq!(encoded(&e), expected);
    }

    /// `nat snat ip addr_min reg 1 proto_min reg 2 flags 0x2` (the port-20 rule).
    #[test]
    fn snat_to_port_20_matches_nft() {
        let e = Expr::Nat {
            nat: NatType::Snat,
            family: 2,
            addr_min: REG_1,
            proto_min: REG_2,
            proto_max: None,
            flags: Some(NAT_RANGE_PROTO_SPECIFIED),
        };
        let expected = words(
            "38000180 08000100 6e617400 2c000280 08000100 00000000 08000200 00000002 \
             08000300 00000001 08000500 00000002 08000700 00000002",
        );
        assert_eq!(encoded(&e), expected);
    }

    /// `cmp eq reg 1 0x00000006`: a one-byte value is padded, its length is 5.
    #[test]
    fn one_byte_compare_matches_nft() {
        let e = Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: vec![6],
        };
        let expected = words(
            "2c000180 08000100 636d7000 20000280 08000100 00000001 08000200 00000000 \
             0c000380 05000100 06000000",
        );
        assert_eq!(encoded(&e), expected);
    }

    /// `ct load dst_ip => reg 9 , dir original`
    #[test]
    fn ct_load_with_direction_matches_nft() {
        let e = Expr::CtLoad {
            key: CT_DST_IP,
            dreg: reg_at_word(1),
            dir: Some(CT_DIR_ORIGINAL),
        };
        let expected = words(
            "28000180 07000100 63740000 1c000280 08000200 00000014 08000100 00000009 \
             05000300 00000000",
        );
        assert_eq!(encoded(&e), expected);
    }
}
