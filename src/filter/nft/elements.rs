//! A pinhole as set elements, and the batch messages that add or remove them.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use super::netlink::{Attrs, Batch, NLM_F_CREATE, NLM_F_EXCL};
use super::ruleset::{Family, SetName};
use crate::pinhole::{Pinhole, FTP_DATA_PORT};

const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

/// One element of one of the table's sets, as the kernel stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: SetName,
    pub key: Vec<u8>,
    /// The map value; `None` in the `once` set.
    pub data: Option<Vec<u8>>,
}

/// The three elements of `pinhole`, all keyed by its redirect tuple.
///
/// Fails with `InvalidInput` when an address is not of the table's family.
pub fn pinhole_elements(family: Family, pinhole: &Pinhole) -> io::Result<Vec<Element>> {
    let r = &pinhole.rdr;
    let n = &pinhole.nat;
    for addr in [&r.from, &r.to, &r.target, &n.source] {
        if !family.contains(addr) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "pinhole address {addr} does not belong in an {} table",
                    family.keyword()
                ),
            ));
        }
    }
    let key = [addr_bytes(&r.from), addr_bytes(&r.to), port_word(r.port)].concat();
    let nat_map = if n.source_ports == (FTP_DATA_PORT..=FTP_DATA_PORT) {
        SetName::NatTo20
    } else {
        SetName::NatTo
    };
    Ok(vec![
        Element {
            set: SetName::Once,
            key: key.clone(),
            data: None,
        },
        Element {
            set: SetName::RdrTo,
            key: key.clone(),
            data: Some([addr_bytes(&r.target), port_word(r.target_port)].concat()),
        },
        Element {
            set: nat_map,
            key,
            data: Some(addr_bytes(&n.source)),
        },
    ])
}

/// `elements`, added with `timeout`, as nft(8) would add them by hand, one
/// line each:
/// `add element ip ftp-proxy-8021 rdr_to { 10.0.0.2 . 192.0.2.10 . 55000 timeout 5m : 192.0.2.10 . 2121 }`.
/// Rendered from the bytes given to the kernel, so it says what was sent;
/// the timeout too, or a line pasted into nft would add a pinhole that
/// never expires.
pub fn describe(
    family: Family,
    table: &str,
    elements: &[Element],
    timeout: Duration,
) -> Vec<String> {
    elements
        .iter()
        .map(|e| {
            let mut text = format!(
                "add element {} {table} {} {{ {} timeout {}",
                family.keyword(),
                e.set.as_str(),
                concat_text(family, &e.key, KEY),
                nft_time(timeout)
            );
            if let Some(data) = &e.data {
                let layout = match e.set {
                    SetName::RdrTo => RDR_DATA,
                    _ => NAT_DATA,
                };
                text += " : ";
                text += &concat_text(family, data, layout);
            }
            text + " }"
        })
        .collect()
}

/// A duration as nft(8) writes one: days, hours, minutes, seconds and
/// milliseconds, the non-zero ones (`5m`, `1h30s`, `0s`).
fn nft_time(d: Duration) -> String {
    let ms = d.as_millis();
    let parts = [
        (ms / 86_400_000, "d"),
        (ms / 3_600_000 % 24, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_owned()
    } else {
        text
    }
}

/// One member of a concatenation: an address or a port word.
#[derive(Clone, Copy)]
enum Member {
    Addr,
    Port,
}

/// The key of every set: client or server address, destination, port.
const KEY: &[Member] = &[Member::Addr, Member::Addr, Member::Port];
/// The redirect map's value: target address and port.
const RDR_DATA: &[Member] = &[Member::Addr, Member::Port];
/// The source maps' value: the address.
const NAT_DATA: &[Member] = &[Member::Addr];

/// A concatenation as nft writes it (`a . b . port`), read by `layout`.
fn concat_text(family: Family, bytes: &[u8], layout: &[Member]) -> String {
    let addr_len = family.addr_words() as usize * 4;
    let mut parts = Vec::new();
    let mut rest = bytes;
    for m in layout {
        let len = match m {
            Member::Addr => addr_len,
            Member::Port => 4,
        };
        if rest.len() < len {
            break;
        }
        let (this, next) = rest.split_at(len);
        parts.push(match m {
            Member::Addr => addr_text(this),
            Member::Port => u16::from_be_bytes([this[0], this[1]]).to_string(),
        });
        rest = next;
    }
    if !rest.is_empty() {
        parts.push(format!("{rest:02x?}"));
    }
    parts.join(" . ")
}

fn addr_text(bytes: &[u8]) -> String {
    match <[u8; 4]>::try_from(bytes) {
        Ok(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        Err(_) => match <[u8; 16]>::try_from(bytes) {
            Ok(v6) => std::net::Ipv6Addr::from(v6).to_string(),
            Err(_) => format!("{bytes:02x?}"),
        },
    }
}

/// An address in network byte order.
fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A port as a member of a concatenation: big-endian, padded to a register.
fn port_word(port: u16) -> Vec<u8> {
    let [hi, lo] = port.to_be_bytes();
    vec![hi, lo, 0, 0]
}

/// Adds `elements` (each must be new) with `timeout`.
pub fn add(batch: &mut Batch, table: &str, elements: &[Element], timeout: Duration) {
    for set in SetName::ALL {
        push(
            batch,
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE | NLM_F_EXCL,
            table,
            set,
            elements,
            Some(timeout),
        );
    }
}

/// Removes `elements`, whether or not the kernel still has them.
///
/// A SYN may have consumed the `once` element, or a timeout any of them, and
/// deleting a missing element fails the whole batch with ENOENT. So each one
/// is first added again without NLM_F_EXCL (a no-op when it exists, since
/// the data is the same) and then deleted, in the same atomic batch.
pub fn remove(batch: &mut Batch, table: &str, elements: &[Element], timeout: Duration) {
    for set in SetName::ALL {
        push(
            batch,
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            table,
            set,
            elements,
            Some(timeout),
        );
        push(batch, NFT_MSG_DELSETELEM, 0, table, set, elements, None);
    }
}

/// One message for those of `elements` that are in `set`, if any.
fn push(
    batch: &mut Batch,
    msg: u16,
    flags: u16,
    table: &str,
    set: SetName,
    elements: &[Element],
    timeout: Option<Duration>,
) {
    let members: Vec<&Element> = elements.iter().filter(|e| e.set == set).collect();
    if members.is_empty() {
        return;
    }
    let mut a = Attrs::new();
    a.put_str(1, table); // NFTA_SET_ELEM_LIST_TABLE
    a.put_str(2, set.as_str()); // NFTA_SET_ELEM_LIST_SET
    a.nest(3, |list| {
        // NFTA_SET_ELEM_LIST_ELEMENTS
        for e in &members {
            list.nest(1, |elem| {
                // NFTA_LIST_ELEM
                elem.nest(1, |k| k.put(1, &e.key)); // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
                if msg == NFT_MSG_NEWSETELEM {
                    if let Some(data) = &e.data {
                        elem.nest(2, |d| d.put(1, data)); // NFTA_SET_ELEM_DATA
                    }
                    if let Some(t) = timeout {
                        elem.put_u64(4, t.as_millis() as u64); // NFTA_SET_ELEM_TIMEOUT, ms
                    }
                }
            });
        }
    });
    let verb = if msg == NFT_MSG_NEWSETELEM {
        "add"
    } else {
        "delete"
    };
    batch.push(msg, flags, format!("{verb} element in {}", set.as_str()), a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinhole::SessionAddrs;

    fn addrs() -> SessionAddrs {
        SessionAddrs {
            client: "198.51.100.2".parse().unwrap(),
            orig: "203.0.113.5".parse().unwrap(),
            server: "192.0.2.10".parse().unwrap(),
            proxy: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn describe_reads_back_what_is_sent() {
        let p = Pinhole::active(&addrs(), 2000, 55000, true);
        let e = pinhole_elements(Family::V4, &p).unwrap();
        assert_eq!(
            describe(Family::V4, "ftp-proxy-8021", &e, Duration::from_secs(300)),
            [
                "add element ip ftp-proxy-8021 once { 192.0.2.10 . 192.0.2.1 . 55000 timeout 5m }",
                "add element ip ftp-proxy-8021 rdr_to { 192.0.2.10 . 192.0.2.1 . 55000 timeout 5m : 198.51.100.2 . 2000 }",
                "add element ip ftp-proxy-8021 nat_to_20 { 192.0.2.10 . 192.0.2.1 . 55000 timeout 5m : 203.0.113.5 }",
            ]
        );
        let v6 = SessionAddrs {
            client: "2001:db8::2".parse().unwrap(),
            orig: "2001:db8::5".parse().unwrap(),
            server: "2001:db8::5".parse().unwrap(),
            proxy: "2001:db8::1".parse().unwrap(),
        };
        let e = pinhole_elements(Family::V6, &Pinhole::passive(&v6, 2121, 60000)).unwrap();
        assert_eq!(
            describe(Family::V6, "t", &e, Duration::from_secs(90))[1],
            "add element ip6 t rdr_to { 2001:db8::2 . 2001:db8::5 . 60000 timeout 1m30s : 2001:db8::5 . 2121 }"
        );
    }

    #[test]
    fn durations_are_written_as_nft_writes_them() {
        for (ms, text) in [
            (0, "0s"),
            (1500, "1s500ms"),
            (300_000, "5m"),
            (3_630_000, "1h30s"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(nft_time(Duration::from_millis(ms)), text);
        }
    }

    #[test]
    fn passive_pinhole_keys_by_client_orig_and_proxy_port() {
        let p = Pinhole::passive(&addrs(), 2121, 55000);
        let e = pinhole_elements(Family::V4, &p).unwrap();
        // 198.51.100.2 . 203.0.113.5 . 55000 (0xd6d8), port padded to 4 bytes.
        let key = vec![198, 51, 100, 2, 203, 0, 113, 5, 0xd6, 0xd8, 0, 0];
        assert_eq!(
            e,
            vec![
                Element {
                    set: SetName::Once,
                    key: key.clone(),
                    data: None
                },
                Element {
                    set: SetName::RdrTo,
                    key: key.clone(),
                    // 192.0.2.10 . 2121 (0x0849)
                    data: Some(vec![192, 0, 2, 10, 0x08, 0x49, 0, 0])
                },
                Element {
                    set: SetName::NatTo,
                    key,
                    data: Some(vec![192, 0, 2, 1])
                },
            ]
        );
    }

    #[test]
    fn active_pinhole_with_port_20_goes_to_nat_to_20() {
        let p = Pinhole::active(&addrs(), 3000, 56000, true);
        let e = pinhole_elements(Family::V4, &p).unwrap();
        assert_eq!(e[2].set, SetName::NatTo20);
        assert_eq!(e[2].data, Some(vec![203, 0, 113, 5]));
        assert_eq!(&e[0].key[..8], &[192, 0, 2, 10, 192, 0, 2, 1]);
        let without = Pinhole::active(&addrs(), 3000, 56000, false);
        assert_eq!(
            pinhole_elements(Family::V4, &without).unwrap()[2].set,
            SetName::NatTo
        );
    }

    #[test]
    fn ipv6_key_is_36_bytes_and_value_20() {
        let a = SessionAddrs {
            client: "2001:db8:1::2".parse().unwrap(),
            orig: "2001:db8:2::10".parse().unwrap(),
            server: "2001:db8:2::10".parse().unwrap(),
            proxy: "2001:db8:2::1".parse().unwrap(),
        };
        let e = pinhole_elements(Family::V6, &Pinhole::passive(&a, 1024, 49152)).unwrap();
        assert_eq!(e[0].key.len(), 36);
        assert_eq!(&e[0].key[32..], &[0xc0, 0x00, 0, 0]);
        assert_eq!(e[1].data.as_ref().unwrap().len(), 20);
    }

    #[test]
    fn wrong_family_is_refused() {
        let p = Pinhole::passive(&addrs(), 2121, 55000);
        let err = pinhole_elements(Family::V6, &p).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn removal_readds_before_deleting_and_only_touches_used_sets() {
        let p = Pinhole::passive(&addrs(), 2121, 55000);
        let e = pinhole_elements(Family::V4, &p).unwrap();
        let mut b = Batch::new(2);
        remove(&mut b, "t", &e, Duration::from_secs(1));
        // once, rdr_to, nat_to: add then delete each; nat_to_20 untouched.
        assert_eq!(b.len(), 6);
        add(&mut b, "t", &e, Duration::from_secs(1));
        assert_eq!(b.len(), 9);
    }

    #[test]
    fn element_message_layout() {
        let e = vec![Element {
            set: SetName::NatTo,
            key: vec![1, 2, 3, 4],
            data: Some(vec![5, 6, 7, 8]),
        }];
        let mut b = Batch::new(2);
        add(&mut b, "t", &e, Duration::from_millis(300_000));
        let bytes = b.encode(0);
        // Skip BEGIN (20) and the message's nlmsghdr + nfgenmsg (20).
        let attrs = &bytes[40..bytes.len() - 20];
        let mut expected = Attrs::new();
        expected.put_str(1, "t");
        expected.put_str(2, "nat_to");
        expected.nest(3, |l| {
            l.nest(1, |el| {
                el.nest(1, |k| k.put(1, &[1, 2, 3, 4]));
                el.nest(2, |d| d.put(1, &[5, 6, 7, 8]));
                el.put(4, &300_000u64.to_be_bytes());
            })
        });
        assert_eq!(attrs, expected.as_bytes());
    }
}
