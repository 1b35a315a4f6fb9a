//! The field values of the two pf rules of a pinhole, as plain data.
//!
//! This is the `prepare_rule`/`add_rdr`/`add_nat` of the original's
//! filter.c, kept apart from the kernel structures so that every value
//! that is easy to get wrong is tested on any system: the destination port
//! in network order, pool ports in host order, the unused pool marked
//! PF_ADDR_NONE, `quick` only without -T, `max 1` and not `once`, which
//! rdomain goes where. The OpenBSD side (`dev.rs`) copies these values into
//! `struct pf_rule` one to one.

use std::io;
use std::net::IpAddr;

use crate::pinhole::{Mode, Pinhole};

/// TCP header flag bits (netinet/tcp.h), for `flags S/SA`.
pub const TH_SYN: u8 = 0x02;
/// TCP header flag bits (netinet/tcp.h), for `flags S/SA`.
pub const TH_ACK: u8 = 0x10;
/// IPPROTO_TCP.
pub const PROTO_TCP: u8 = 6;
/// pf's per-rule state limit for a pinhole: one data connection per rule.
pub const MAX_STATES: u32 = 1;
/// pf's limit for queue and tag names, NUL included (PF_QNAME_SIZE,
/// PF_TAG_NAME_SIZE).
pub const NAME_SIZE: usize = 64;

/// Options that decorate every rule of a pinhole: -v, -T and -q from the
/// command line, and the routing domains of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleOptions {
    /// `-v` count: 0, 1 (`log`) or 2 (`log all`).
    pub log: u8,
    /// `-T`: rules become `match … tag T` without `quick`.
    pub tag: Option<String>,
    /// `-q`: `queue Q`.
    pub queue: Option<String>,
    /// The client's routing domain (SO_RTABLE). The backend always sets it,
    /// 0 when the socket has none, as the original does, so pfctl shows
    /// `on rdomain 0`; None leaves rdomains out of the rules.
    pub client_rdomain: Option<u32>,
    /// The proxy's routing table (getrtable()); see `client_rdomain`.
    pub proxy_rdomain: Option<u32>,
}

/// `pass` or, with -T, `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pass,
    Match,
}

/// The rule's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// A translation pool with one address: `rdr-to addr port p` or
/// `nat-to addr port lo:hi`. Ports are in **host** order, as pf keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub addr: IpAddr,
    pub proxy_port: [u16; 2],
}

/// Everything that differs from zero in one `struct pf_rule` (and its
/// `pfioc_rule`), in pf's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub action: Action,
    pub direction: Direction,
    /// 1 unless -T.
    pub quick: bool,
    /// pf's log flags: 0, PF_LOG (1) or PF_LOG_ALL (2).
    pub log: u8,
    /// Single hosts with a full mask.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `port = n`, already in **network** order (`rule.dst.port[0]`).
    pub dst_port_net: u16,
    /// -1 for any, else the rdomain the packet is on.
    pub onrdomain: i32,
    /// -1 for none, else the table the state is routed in.
    pub rtableid: i32,
    /// The redirect pool, or None: the kernel must see PF_ADDR_NONE then.
    pub rdr: Option<Pool>,
    /// The source translation pool, or None (PF_ADDR_NONE).
    pub nat: Option<Pool>,
    pub qname: Option<String>,
    pub tagname: Option<String>,
}

impl RuleSpec {
    /// The destination port in host order, for messages and tests.
    pub fn dst_port(&self) -> u16 {
        u16::from_be(self.dst_port_net)
    }
}

/// The rdr rule then the nat rule of `pinhole`, decorated by `opts`.
///
/// Fails like the original's checks before any ioctl: EINVAL for an
/// unspecified address, a zero port or an over-long name; EPROTONOSUPPORT
/// when the families of the addresses differ.
pub fn pinhole_rules(pinhole: &Pinhole, opts: &RuleOptions) -> io::Result<[RuleSpec; 2]> {
    check(pinhole, opts)?;
    let rd = |r: Option<u32>| r.map_or(-1, |r| r as i32);
    let (crd, prd) = (rd(opts.client_rdomain), rd(opts.proxy_rdomain));
    // Passive: the client's connection arrives in its rdomain and is routed
    // in the proxy's, and leaves in the proxy's. Active: the reverse.
    let (rdr_on, rdr_rtable, nat_on) = match pinhole.mode {
        Mode::Passive => (crd, prd, prd),
        Mode::Active => (prd, crd, crd),
    };
    let base = |direction, src, dst, port: u16, onrdomain, rtableid| RuleSpec {
        action: if opts.tag.is_some() {
            Action::Match
        } else {
            Action::Pass
        },
        direction,
        quick: opts.tag.is_none(),
        log: match opts.log {
            0 => 0,
            1 => 0x01,
            _ => 0x02,
        },
        src,
        dst,
        dst_port_net: port.to_be(),
        onrdomain,
        rtableid,
        rdr: None,
        nat: None,
        qname: opts.queue.clone(),
        tagname: opts.tag.clone(),
    };
    let r = &pinhole.rdr;
    let mut rdr = base(Direction::In, r.from, r.to, r.port, rdr_on, rdr_rtable);
    rdr.rdr = Some(Pool {
        addr: r.target,
        proxy_port: [r.target_port, 0],
    });
    let n = &pinhole.nat;
    let mut nat = base(Direction::Out, n.from, n.to, n.port, nat_on, -1);
    nat.nat = Some(Pool {
        addr: n.source,
        proxy_port: [*n.source_ports.start(), *n.source_ports.end()],
    });
    Ok([rdr, nat])
}

fn check(p: &Pinhole, opts: &RuleOptions) -> io::Result<()> {
    let einval = || Err(io::Error::from_raw_os_error(libc::EINVAL));
    let addrs = [
        p.rdr.from,
        p.rdr.to,
        p.rdr.target,
        p.nat.from,
        p.nat.to,
        p.nat.source,
    ];
    if addrs.iter().any(IpAddr::is_unspecified) {
        return einval();
    }
    if addrs.iter().any(|a| a.is_ipv4() != addrs[0].is_ipv4()) {
        return Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT));
    }
    let ports = [
        p.rdr.port,
        p.rdr.target_port,
        p.nat.port,
        *p.nat.source_ports.start(),
    ];
    if ports.contains(&0) || p.nat.source_ports.is_empty() {
        return einval();
    }
    let names = [&opts.tag, &opts.queue];
    if names.iter().any(|n| {
        n.as_ref()
            .is_some_and(|n| n.len() >= NAME_SIZE || n.contains('\0'))
    }) {
        return einval();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinhole::SessionAddrs;

    fn addrs() -> SessionAddrs {
        SessionAddrs {
            client: "10.0.0.2".parse().unwrap(),
            orig: "192.0.2.10".parse().unwrap(),
            server: "198.51.100.20".parse().unwrap(),
            proxy: "198.51.100.1".parse().unwrap(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn passive_fields() {
        let p = Pinhole::passive(&addrs(), 40000, 55000);
        let opts = RuleOptions {
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
            ..Default::default()
        };
        let [rdr, nat] = pinhole_rules(&p, &opts).unwrap();
        assert_eq!(
            rdr,
            RuleSpec {
                action: Action::Pass,
                direction: Direction::In,
                quick: true,
                log: 0,
                src: ip("10.0.0.2"),
                dst: ip("192.0.2.10"),
                dst_port_net: 55000u16.to_be(),
                onrdomain: 3,
                rtableid: 0,
                rdr: Some(Pool {
                    addr: ip("198.51.100.20"),
                    proxy_port: [40000, 0],
                }),
                nat: None,
                qname: None,
                tagname: None,
            }
        );
        assert_eq!(
            nat,
            RuleSpec {
                action: Action::Pass,
                direction: Direction::Out,
                quick: true,
                log: 0,
                src: ip("10.0.0.2"),
                dst: ip("198.51.100.20"),
                dst_port_net: 40000u16.to_be(),
                onrdomain: 0,
                rtableid: -1,
                rdr: None,
                nat: Some(Pool {
                    addr: ip("198.51.100.1"),
                    proxy_port: [50001, 65535],
                }),
                qname: None,
                tagname: None,
            }
        );
    }

    #[test]
    fn active_fields_swap_rdomains_and_use_orig_as_source() {
        let p = Pinhole::active(&addrs(), 2000, 60000, true);
        let opts = RuleOptions {
            log: 2,
            tag: Some("FTP".into()),
            queue: Some("q".into()),
            client_rdomain: Some(3),
            proxy_rdomain: Some(5),
        };
        let [rdr, nat] = pinhole_rules(&p, &opts).unwrap();
        assert_eq!((rdr.action, rdr.quick, rdr.log), (Action::Match, false, 2));
        assert_eq!(
            (rdr.src, rdr.dst, rdr.dst_port()),
            (ip("198.51.100.20"), ip("198.51.100.1"), 60000)
        );
        assert_eq!((rdr.onrdomain, rdr.rtableid), (5, 3));
        assert_eq!(rdr.rdr.unwrap().proxy_port, [2000, 0]);
        assert_eq!(
            (nat.src, nat.dst, nat.dst_port()),
            (ip("198.51.100.20"), ip("10.0.0.2"), 2000)
        );
        assert_eq!((nat.onrdomain, nat.rtableid), (3, -1));
        assert_eq!(
            nat.nat.unwrap(),
            Pool {
                addr: ip("192.0.2.10"),
                proxy_port: [20, 20]
            }
        );
        assert_eq!(nat.tagname.as_deref(), Some("FTP"));
        assert_eq!(nat.qname.as_deref(), Some("q"));
    }

    #[test]
    fn rule_ports_are_network_order_and_pool_ports_host_order() {
        // 0x1234 must reach the kernel as bytes 12 34 in dst.port[0], and as
        // the number 0x1234 in the pool.
        let p = Pinhole::passive(&addrs(), 0x1234, 0xabcd);
        let [rdr, nat] = pinhole_rules(&p, &RuleOptions::default()).unwrap();
        assert_eq!(rdr.dst_port_net.to_ne_bytes(), [0xab, 0xcd]);
        assert_eq!(rdr.rdr.unwrap().proxy_port[0], 0x1234);
        assert_eq!(nat.dst_port_net.to_ne_bytes(), [0x12, 0x34]);
    }

    #[test]
    fn no_rdomains_means_any() {
        let p = Pinhole::passive(&addrs(), 40000, 55000);
        let [rdr, nat] = pinhole_rules(&p, &RuleOptions::default()).unwrap();
        assert_eq!(
            (rdr.onrdomain, rdr.rtableid, nat.onrdomain, nat.rtableid),
            (-1, -1, -1, -1)
        );
    }

    #[test]
    fn refuses_what_the_kernel_would() {
        let mut a = addrs();
        a.proxy = ip("0.0.0.0");
        let e = pinhole_rules(&Pinhole::passive(&a, 40000, 55000), &RuleOptions::default());
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        let mut a = addrs();
        a.server = ip("2001:db8::1");
        let e = pinhole_rules(&Pinhole::passive(&a, 40000, 55000), &RuleOptions::default());
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EPROTONOSUPPORT));
        let e = pinhole_rules(
            &Pinhole::passive(&addrs(), 0, 55000),
            &RuleOptions::default(),
        );
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        let long = RuleOptions {
            tag: Some("t".repeat(NAME_SIZE)),
            ..Default::default()
        };
        let e = pinhole_rules(&Pinhole::passive(&addrs(), 40000, 55000), &long);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EINVAL));
    }
}
