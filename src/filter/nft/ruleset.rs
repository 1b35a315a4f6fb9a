//! The daemon's own table: its sets, chains and rules, as one start-up batch.
//!
//! In nft syntax (IPv4; `-6` uses `ip6`, `ipv6_addr`, `ip6 saddr`, …):
//!
//! ```text
//! table ip ftp-proxy-8021 {
//!   flags owner
//!   set once { type ipv4_addr . ipv4_addr . inet_service; flags timeout; }
//!   map rdr_to { type ipv4_addr . ipv4_addr . inet_service : ipv4_addr . inet_service; flags timeout; }
//!   map nat_to { type ipv4_addr . ipv4_addr . inet_service : ipv4_addr; flags timeout; }
//!   map nat_to_20 { type ipv4_addr . ipv4_addr . inet_service : ipv4_addr; flags timeout; }
//!   chain prerouting { type nat hook prerouting priority dstnat; policy accept;
//!     tcp flags & (fin | syn | rst | ack) == syn ip saddr . ip daddr . tcp dport @once
//!       delete @once { ip saddr . ip daddr . tcp dport } [log prefix "ftp-proxy: "]
//!       ct mark set MARK dnat ip to ip saddr . ip daddr . tcp dport map @rdr_to
//!   }
//!   chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//!     meta l4proto tcp ct status dnat snat ip to ct original ip saddr . ct original ip daddr . ct original proto-dst map @nat_to : 50001-65535
//!     meta l4proto tcp ct status dnat snat ip to ct original ip saddr . ct original ip daddr . ct original proto-dst map @nat_to_20 : 20
//!   }
//!   chain forward { type filter hook forward priority filter; policy accept;   (-vv or -q only)
//!     ct mark MARK [log prefix "ftp-proxy: "] [meta priority set MAJOR:MINOR]
//!   }
//! }
//! ```
//!
//! Every element is keyed by the data connection's original tuple
//! (source, destination, destination port): the redirect's `from . to . port`.
//! The first SYN of a pinhole consumes its `once` element (pf's `max 1`), gets
//! the mark and is redirected by `rdr_to`; in postrouting the same original
//! tuple, read back from conntrack, picks the source address. The maps are
//! named after pf's `rdr-to`/`nat-to` because nft 1.0.6 cannot parse a set
//! named `snat` (a keyword) back from its own listing.

use std::net::IpAddr;

use super::expr::{self, Base, CmpOp, Expr, NatType, REG_1, REG_2, REG_3};
use super::netlink::{Attrs, Batch, NLM_F_APPEND, NLM_F_CREATE};
use super::NftConfig;
use crate::pinhole::{FTP_DATA_PORT, NAT_PORTS};

/// The log prefix of `-v`/`-vv`.
pub const LOG_PREFIX: &str = "ftp-proxy: ";

// enum nf_tables_msg_types
pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSET: u16 = 9;

/// `NFT_TABLE_F_OWNER`: the table lives only as long as our netlink socket.
const NFT_TABLE_F_OWNER: u32 = 0x2;

// Set flags.
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_TIMEOUT: u32 = 0x10;
/// Updated from the packet path (`delete @once`); nft sets it for such sets.
const NFT_SET_EVAL: u32 = 0x20;

// nft's datatype numbers, which it stores as set key/data types and uses to
// print them back.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_SERVICE: u32 = 13;
/// nft's bits per member in a concatenated type.
const TYPE_BITS: u32 = 6;

// Netfilter hooks and the priorities nft calls dstnat, srcnat and filter.
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_POST_ROUTING: u32 = 4;
const PRIORITY_DSTNAT: i32 = -100;
const PRIORITY_SRCNAT: i32 = 100;
const PRIORITY_FILTER: i32 = 0;
const NF_ACCEPT: u32 = 1;

/// The address family of the table (`-6` or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// NFPROTO_IPV4 or NFPROTO_IPV6: the nfgenmsg family.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    /// The family as nft writes it.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// Whether `addr` belongs to this family.
    pub fn contains(self, addr: &IpAddr) -> bool {
        matches!(
            (self, addr),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }

    /// Address length in 32-bit words (registers).
    pub fn addr_words(self) -> u32 {
        match self {
            Family::V4 => 1,
            Family::V6 => 4,
        }
    }

    fn addr_type(self) -> u32 {
        match self {
            Family::V4 => TYPE_IPADDR,
            Family::V6 => TYPE_IP6ADDR,
        }
    }

    /// Offsets of the source and destination address in the IP header.
    fn header_offsets(self) -> (u32, u32) {
        match self {
            Family::V4 => (12, 16),
            Family::V6 => (8, 24),
        }
    }

    /// Conntrack keys of the source and destination address.
    fn ct_keys(self) -> (u32, u32) {
        match self {
            Family::V4 => (expr::CT_SRC_IP, expr::CT_DST_IP),
            Family::V6 => (expr::CT_SRC_IP6, expr::CT_DST_IP6),
        }
    }
}

/// One of the table's sets or maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetName {
    /// Keys of pinholes whose first SYN has not been seen yet.
    Once,
    /// Key → redirect target (address . port).
    RdrTo,
    /// Key → source address, ports 50001–65535.
    NatTo,
    /// Key → source address, port 20 (`-r` with PORT).
    NatTo20,
}

impl SetName {
    pub const ALL: [SetName; 4] = [
        SetName::Once,
        SetName::RdrTo,
        SetName::NatTo,
        SetName::NatTo20,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SetName::Once => "once",
            SetName::RdrTo => "rdr_to",
            SetName::NatTo => "nat_to",
            SetName::NatTo20 => "nat_to_20",
        }
    }

    /// The batch-local id rules use to refer to a set created in the same batch.
    fn id(self) -> u32 {
        self as u32 + 1
    }

    /// What a map's value holds: (nft type, length in bytes); `None` for a set.
    fn data(self, family: Family) -> Option<(u32, u32)> {
        let addr_len = family.addr_words() * 4;
        match self {
            SetName::Once => None,
            SetName::RdrTo => Some((
                concat_type(&[family.addr_type(), TYPE_INET_SERVICE]),
                addr_len + 4,
            )),
            SetName::NatTo | SetName::NatTo20 => Some((family.addr_type(), addr_len)),
        }
    }
}

/// nft's number for a concatenation: the members' types, 6 bits each.
fn concat_type(types: &[u32]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << TYPE_BITS) | t)
}

/// Length in bytes of a key `addr . addr . port` (each member padded to 4).
pub fn key_len(family: Family) -> u32 {
    (2 * family.addr_words() + 1) * 4
}

/// The table name for `listen_port`.
pub fn table_name(listen_port: u16) -> String {
    format!("ftp-proxy-{listen_port}")
}

/// The start-up batch: replaces any table of the same name (a stale one left
/// by `nft -f` or an older version) with ours, owned by the sending socket.
/// A table owned by another live socket makes the first message fail (EPERM).
///
/// Messages 0..=2 are the table's; callers use that to word errors.
pub fn setup_batch(config: &NftConfig) -> Batch {
    let family = family_of(config);
    let table = table_name(config.listen_port);
    let what_table = format!("table {} {table}", family.keyword());
    let mut b = Batch::new(family.nfproto());

    let mut a = Attrs::new();
    a.put_str(1, &table); // NFTA_TABLE_NAME
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &what_table, a.clone());
    b.push(NFT_MSG_DELTABLE, 0, &what_table, a.clone());
    a.put_u32(2, NFT_TABLE_F_OWNER); // NFTA_TABLE_FLAGS
    b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, &what_table, a);

    for set in SetName::ALL {
        b.push(
            NFT_MSG_NEWSET,
            NLM_F_CREATE,
            format!("set {}", set.as_str()),
            set_attrs(&table, family, set),
        );
    }

    let mut chains = vec![
        (
            "prerouting",
            "nat",
            NF_INET_PRE_ROUTING,
            PRIORITY_DSTNAT,
            vec![prerouting_rule(family, config)],
        ),
        (
            "postrouting",
            "nat",
            NF_INET_POST_ROUTING,
            PRIORITY_SRCNAT,
            vec![
                postrouting_rule(family, SetName::NatTo),
                postrouting_rule(family, SetName::NatTo20),
            ],
        ),
    ];
    if let Some(rule) = forward_rule(config) {
        chains.push((
            "forward",
            "filter",
            NF_INET_FORWARD,
            PRIORITY_FILTER,
            vec![rule],
        ));
    }
    for (name, kind, hook, priority, _) in &chains {
        let mut a = Attrs::new();
        a.put_str(1, &table); // NFTA_CHAIN_TABLE
        a.put_str(3, name); // NFTA_CHAIN_NAME
        a.put_str(7, kind); // NFTA_CHAIN_TYPE
        a.put_u32(5, NF_ACCEPT); // NFTA_CHAIN_POLICY
        a.nest(4, |h| {
            h.put_u32(1, *hook); // NFTA_HOOK_HOOKNUM
            h.put_u32(2, *priority as u32); // NFTA_HOOK_PRIORITY
        });
        b.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("chain {name} (type {kind})"),
            a,
        );
    }
    for (name, _, _, _, rules) in &chains {
        for rule in rules {
            let mut a = Attrs::new();
            a.put_str(1, &table); // NFTA_RULE_TABLE
            a.put_str(2, name); // NFTA_RULE_CHAIN
            a.nest(4, |list| rule.iter().for_each(|e| e.encode(list))); // NFTA_RULE_EXPRESSIONS
            b.push(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                format!("rule in chain {name}"),
                a,
            );
        }
    }
    b
}

/// The batch that removes the table (and with it every pinhole).
pub fn teardown_batch(config: &NftConfig) -> Batch {
    let family = family_of(config);
    let mut b = Batch::new(family.nfproto());
    let mut a = Attrs::new();
    a.put_str(1, &table_name(config.listen_port));
    b.push(
        NFT_MSG_DELTABLE,
        0,
        format!(
            "table {} {}",
            family.keyword(),
            table_name(config.listen_port)
        ),
        a,
    );
    b
}

pub fn family_of(config: &NftConfig) -> Family {
    if config.ipv6 {
        Family::V6
    } else {
        Family::V4
    }
}

fn set_attrs(table: &str, family: Family, set: SetName) -> Attrs {
    let key_type = concat_type(&[family.addr_type(), family.addr_type(), TYPE_INET_SERVICE]);
    let mut flags = NFT_SET_TIMEOUT;
    if set == SetName::Once {
        flags |= NFT_SET_EVAL;
    }
    if set.data(family).is_some() {
        flags |= NFT_SET_MAP;
    }
    let mut a = Attrs::new();
    a.put_str(1, table); // NFTA_SET_TABLE
    a.put_str(2, set.as_str()); // NFTA_SET_NAME
    a.put_u32(3, flags); // NFTA_SET_FLAGS
    a.put_u32(4, key_type); // NFTA_SET_KEY_TYPE
    a.put_u32(5, key_len(family)); // NFTA_SET_KEY_LEN
    if let Some((data_type, data_len)) = set.data(family) {
        a.put_u32(6, data_type); // NFTA_SET_DATA_TYPE
        a.put_u32(7, data_len); // NFTA_SET_DATA_LEN
    }
    a.put_u32(10, set.id()); // NFTA_SET_ID
    a
}

/// Loads `ip saddr . ip daddr . tcp dport` into REG_1 onwards.
fn load_packet_key(family: Family) -> [Expr; 3] {
    let (src, dst) = family.header_offsets();
    let words = family.addr_words();
    [
        Expr::Payload {
            base: Base::Network,
            offset: src,
            len: words * 4,
            dreg: expr::reg_at_word(0),
        },
        Expr::Payload {
            base: Base::Network,
            offset: dst,
            len: words * 4,
            dreg: expr::reg_at_word(words),
        },
        Expr::Payload {
            base: Base::Transport,
            offset: 2,
            len: 2,
            dreg: expr::reg_at_word(2 * words),
        },
    ]
}

/// `meta l4proto tcp`, the dependency nft adds for TCP header matches.
fn match_tcp() -> [Expr; 2] {
    [
        Expr::Meta {
            key: expr::META_L4PROTO,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: vec![libc::IPPROTO_TCP as u8],
        },
    ]
}

/// The first SYN of a pinhole: consume `once`, mark, redirect.
fn prerouting_rule(family: Family, config: &NftConfig) -> Vec<Expr> {
    const TCP_FLAGS_OFFSET: u32 = 13;
    const FIN_SYN_RST_ACK: u8 = 0x17;
    const SYN: u8 = 0x02;
    let once = SetName::Once;
    let rdr = SetName::RdrTo;
    let mut r = Vec::new();
    r.extend(match_tcp());
    r.push(Expr::Payload {
        base: Base::Transport,
        offset: TCP_FLAGS_OFFSET,
        len: 1,
        dreg: REG_1,
    });
    r.push(Expr::Bitwise {
        reg: REG_1,
        mask: vec![FIN_SYN_RST_ACK],
        xor: vec![0],
    });
    r.push(Expr::Cmp {
        sreg: REG_1,
        op: CmpOp::Eq,
        data: vec![SYN],
    });
    r.extend(load_packet_key(family));
    r.push(Expr::Lookup {
        set: once.as_str(),
        set_id: once.id(),
        sreg: REG_1,
        dreg: None,
    });
    r.extend(load_packet_key(family));
    r.push(Expr::DynsetDelete {
        set: once.as_str(),
        set_id: once.id(),
        sreg_key: REG_1,
    });
    if config.log == 1 {
        r.push(Expr::Log {
            prefix: LOG_PREFIX.into(),
        });
    }
    r.push(Expr::Immediate {
        dreg: REG_1,
        data: config.mark.to_ne_bytes().to_vec(),
    });
    r.push(Expr::CtSet {
        key: expr::CT_MARK,
        sreg: REG_1,
    });
    r.extend(load_packet_key(family));
    r.push(Expr::Lookup {
        set: rdr.as_str(),
        set_id: rdr.id(),
        sreg: REG_1,
        dreg: Some(REG_1),
    });
    r.push(Expr::Nat {
        nat: NatType::Dnat,
        family: family.nfproto(),
        addr_min: REG_1,
        proto_min: expr::reg_at_word(family.addr_words()),
        proto_max: None,
        flags: None,
    });
    r
}

/// A redirected connection leaves with the source its original tuple maps to.
fn postrouting_rule(family: Family, map: SetName) -> Vec<Expr> {
    const IPS_DST_NAT: u32 = 0x20;
    let (src, dst) = family.ct_keys();
    let words = family.addr_words();
    let mut r = Vec::new();
    r.extend(match_tcp());
    r.push(Expr::CtLoad {
        key: expr::CT_STATUS,
        dreg: REG_1,
        dir: None,
    });
    r.push(Expr::Bitwise {
        reg: REG_1,
        mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
        xor: vec![0; 4],
    });
    r.push(Expr::Cmp {
        sreg: REG_1,
        op: CmpOp::Neq,
        data: vec![0; 4],
    });
    for (key, word) in [(src, 0), (dst, words), (expr::CT_PROTO_DST, 2 * words)] {
        r.push(Expr::CtLoad {
            key,
            dreg: expr::reg_at_word(word),
            dir: Some(expr::CT_DIR_ORIGINAL),
        });
    }
    r.push(Expr::Lookup {
        set: map.as_str(),
        set_id: map.id(),
        sreg: REG_1,
        dreg: Some(REG_1),
    });
    let (low, high) = match map {
        SetName::NatTo20 => (FTP_DATA_PORT, None),
        _ => (*NAT_PORTS.start(), Some(*NAT_PORTS.end())),
    };
    r.push(Expr::Immediate {
        dreg: REG_2,
        data: low.to_be_bytes().to_vec(),
    });
    if let Some(high) = high {
        r.push(Expr::Immediate {
            dreg: REG_3,
            data: high.to_be_bytes().to_vec(),
        });
    }
    r.push(Expr::Nat {
        nat: NatType::Snat,
        family: family.nfproto(),
        addr_min: REG_1,
        proto_min: REG_2,
        proto_max: high.map(|_| REG_3),
        flags: Some(expr::NAT_RANGE_PROTO_SPECIFIED),
    });
    r
}

/// Per-packet work on pinhole connections, only when asked for: logging
/// every packet (`-vv`) and the tc class (`-q`).
fn forward_rule(config: &NftConfig) -> Option<Vec<Expr>> {
    if config.log < 2 && config.priority.is_none() {
        return None;
    }
    let mut r = vec![
        Expr::CtLoad {
            key: expr::CT_MARK,
            dreg: REG_1,
            dir: None,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CmpOp::Eq,
            data: config.mark.to_ne_bytes().to_vec(),
        },
    ];
    if config.log >= 2 {
        r.push(Expr::Log {
            prefix: LOG_PREFIX.into(),
        });
    }
    if let Some(priority) = config.priority {
        r.push(Expr::Immediate {
            dreg: REG_1,
            data: priority.to_ne_bytes().to_vec(),
        });
        r.push(Expr::MetaSet {
            key: expr::META_PRIORITY,
            sreg: REG_1,
        });
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ipv6: bool, log: u8, priority: Option<u32>) -> NftConfig {
        NftConfig {
            ipv6,
            listen_port: 8021,
            mark: super::super::DEFAULT_MARK,
            log,
            priority,
        }
    }

    #[test]
    fn concatenated_types_are_the_numbers_nft_uses() {
        let v4 = concat_type(&[TYPE_IPADDR, TYPE_IPADDR, TYPE_INET_SERVICE]);
        let v6 = concat_type(&[TYPE_IP6ADDR, TYPE_IP6ADDR, TYPE_INET_SERVICE]);
        assert_eq!((v4, v6), (0x71cd, 0x820d));
        assert_eq!(SetName::RdrTo.data(Family::V4), Some((0x1cd, 8)));
        assert_eq!(SetName::RdrTo.data(Family::V6), Some((0x20d, 20)));
        assert_eq!(SetName::NatTo.data(Family::V6), Some((8, 16)));
        assert_eq!((key_len(Family::V4), key_len(Family::V6)), (12, 36));
    }

    #[test]
    fn set_attributes_match_nft_for_rdr_to() {
        // From nft --debug=mnl, without nft's own userdata annotations.
        let a = set_attrs("ftp-proxy-8021", Family::V4, SetName::RdrTo);
        let b = a.as_bytes();
        assert_eq!(&b[..20], b"\x13\x00\x01\x00ftp-proxy-8021\x00\x00");
        assert_eq!(&b[20..32], b"\x0b\x00\x02\x00rdr_to\x00\x00");
        let rest: Vec<u8> = [
            (3u16, 0x18u32),
            (4, 0x71cd),
            (5, 12),
            (6, 0x1cd),
            (7, 8),
            (10, 2),
        ]
        .iter()
        .flat_map(|(t, v)| [&[8, 0][..], &t.to_ne_bytes(), &v.to_be_bytes()].concat())
        .collect();
        assert_eq!(&b[32..], &rest[..]);
    }

    #[test]
    fn chains_follow_the_options() {
        let count = |c: &NftConfig| setup_batch(c).len();
        // 3 table messages + 4 sets + 2 chains + 3 rules.
        assert_eq!(count(&config(false, 0, None)), 12);
        assert_eq!(count(&config(false, 1, None)), 12);
        // The forward chain and its rule appear with -vv or -q.
        assert_eq!(count(&config(false, 2, None)), 14);
        assert_eq!(count(&config(true, 0, Some(0x10010))), 14);
    }

    #[test]
    fn log_once_goes_to_prerouting_log_all_to_forward() {
        let has_log = |r: &[Expr]| r.iter().any(|e| matches!(e, Expr::Log { .. }));
        assert!(!has_log(&prerouting_rule(
            Family::V4,
            &config(false, 0, None)
        )));
        assert!(has_log(&prerouting_rule(
            Family::V4,
            &config(false, 1, None)
        )));
        assert!(!has_log(&prerouting_rule(
            Family::V4,
            &config(false, 2, None)
        )));
        assert!(has_log(&forward_rule(&config(false, 2, None)).unwrap()));
        assert!(!has_log(&forward_rule(&config(false, 0, Some(1))).unwrap()));
        assert!(forward_rule(&config(false, 1, None)).is_none());
    }

    #[test]
    fn ipv6_keys_use_whole_registers() {
        let r = load_packet_key(Family::V6);
        let regs: Vec<u32> = r
            .iter()
            .map(|e| match e {
                Expr::Payload { dreg, .. } => *dreg,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(regs, [1, 2, 3]);
    }
}
