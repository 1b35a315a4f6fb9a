//! What one data connection needs from the packet filter, as plain data.
//!
//! A pinhole is a pair of translations, exactly as ftp-proxy(8) installs them
//! on OpenBSD: a redirect (`rdr-to`) that sends the peer's data connection to
//! the real endpoint, and a source translation (`nat-to`) that makes it appear
//! to come from the address the other side expects. Each backend translates
//! this value into its own kernel objects; the pf.conf rendering below is the
//! oracle both regress suites compare the kernel's state with.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// pfctl's default source port range for `nat-to` (PF_NAT_PROXY_PORT_LOW..HIGH).
pub const NAT_PORTS: RangeInclusive<u16> = 50001..=65535;

/// The source port used for active-mode data connections with `-r` and PORT.
pub const FTP_DATA_PORT: u16 = 20;

/// Which side opens the data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PASV/EPSV: the client connects to the server.
    Passive,
    /// PORT/EPRT: the server connects to the client.
    Active,
}

/// The addresses of one FTP session, fixed when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionAddrs {
    /// The client's address (peer of the accepted control connection).
    pub client: IpAddr,
    /// Where the client meant to go: the original destination.
    pub orig: IpAddr,
    /// The server actually connected to: `orig`, or the `-R` address.
    pub server: IpAddr,
    /// The daemon's own address on its connection to the server.
    pub proxy: IpAddr,
}

/// `from → to:port` becomes `target:target_port` (pf's `rdr-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: u16,
    pub target: IpAddr,
    pub target_port: u16,
}

/// `from → to:port` leaves with source `source`, port in `source_ports`
/// (pf's `nat-to`). `to:port` is the destination after the redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNat {
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: u16,
    pub source: IpAddr,
    pub source_ports: RangeInclusive<u16>,
}

/// One negotiated data connection: the redirect plus the source translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinhole {
    pub mode: Mode,
    /// The proxy port the peer was told (`pport`); unique among live pinholes.
    pub proxy_port: u16,
    pub rdr: Redirect,
    pub nat: SourceNat,
}

impl Pinhole {
    /// PASV/EPSV: the client was told `orig:pport`; the server listens on `port`.
    ///
    /// `client → orig:pport` becomes `server:port`, and leaves with source
    /// `proxy`, so the server sees the data connection come from the same
    /// address as the control connection.
    pub fn passive(addrs: &SessionAddrs, port: u16, proxy_port: u16) -> Pinhole {
        Pinhole {
            mode: Mode::Passive,
            proxy_port,
            rdr: Redirect {
                from: addrs.client,
                to: addrs.orig,
                port: proxy_port,
                target: addrs.server,
                target_port: port,
            },
            nat: SourceNat {
                from: addrs.client,
                to: addrs.server,
                port,
                source: addrs.proxy,
                source_ports: NAT_PORTS,
            },
        }
    }

    /// PORT/EPRT: the server was told `proxy:pport`; the client listens on `port`.
    ///
    /// `server → proxy:pport` becomes `client:port`, and leaves with source
    /// `orig`, so the client sees the data connection come from the server it
    /// believes it talks to. `from_port_20` is `-r` together with PORT.
    pub fn active(addrs: &SessionAddrs, port: u16, proxy_port: u16, from_port_20: bool) -> Pinhole {
        let source_ports = if from_port_20 {
            FTP_DATA_PORT..=FTP_DATA_PORT
        } else {
            NAT_PORTS
        };
        Pinhole {
            mode: Mode::Active,
            proxy_port,
            rdr: Redirect {
                from: addrs.server,
                to: addrs.proxy,
                port: proxy_port,
                target: addrs.client,
                target_port: port,
            },
            nat: SourceNat {
                from: addrs.server,
                to: addrs.client,
                port,
                source: addrs.orig,
                source_ports,
            },
        }
    }

    /// The rules in pf.conf syntax, as `pfctl -a 'ftp-proxy/*' -sr` prints them.
    pub fn pf_rules<'a>(&'a self, opts: &'a RuleOptions) -> PfRules<'a> {
        PfRules {
            pinhole: self,
            opts,
        }
    }
}

/// Options that decorate every rule, from the command line (and, on OpenBSD,
/// the routing domains of the session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleOptions {
    /// `-v` count: 0, 1 (`log`) or 2 (`log all`).
    pub log: u8,
    /// `-T`: rules become `match … tag T` without `quick`.
    pub tag: Option<String>,
    /// `-q`: `queue Q`.
    pub queue: Option<String>,
    /// OpenBSD: the client's routing domain (SO_RTABLE). The pf backend always
    /// sets it, 0 when the socket has none, as the original does, so pfctl
    /// shows `on rdomain 0`; None (Linux) leaves rdomains out.
    pub client_rdomain: Option<u32>,
    /// OpenBSD: the proxy's routing table (getrtable()); see `client_rdomain`.
    pub proxy_rdomain: Option<u32>,
}

/// Display adapter: the pinhole's two rules, one per line, in pf.conf syntax.
pub struct PfRules<'a> {
    pinhole: &'a Pinhole,
    opts: &'a RuleOptions,
}

impl PfRules<'_> {
    /// Everything up to the addresses: action, direction, log, quick,
    /// rdomain, family and protocol, in pfctl's print_rule order.
    fn head(&self, f: &mut fmt::Formatter<'_>, dir: &str, rdomain: Option<u32>) -> fmt::Result {
        match &self.opts.tag {
            Some(_) => write!(f, "match {dir}")?,
            None => write!(f, "pass {dir}")?,
        }
        match self.opts.log {
            0 => {}
            1 => write!(f, " log")?,
            // pfctl prints every flag beyond PF_LOG in parentheses.
            _ => write!(f, " log (all)")?,
        }
        if self.opts.tag.is_none() {
            write!(f, " quick")?;
        }
        if let Some(rd) = rdomain {
            write!(f, " on rdomain {rd}")?;
        }
        let af = match self.pinhole.rdr.from {
            IpAddr::V4(_) => "inet",
            IpAddr::V6(_) => "inet6",
        };
        write!(f, " {af} proto tcp")
    }

    /// From the TCP flags to the tag and routing table, which pfctl prints
    /// before the translation: `flags S/SA [set (queue Q)] keep state
    /// (max 1) [tag T] [rtable N]`.
    fn state(&self, f: &mut fmt::Formatter<'_>, rtable: Option<u32>) -> fmt::Result {
        write!(f, " flags S/SA")?;
        if let Some(q) = &self.opts.queue {
            write!(f, " set (queue {q})")?;
        }
        write!(f, " keep state (max 1)")?;
        if let Some(t) = &self.opts.tag {
            write!(f, " tag {t}")?;
        }
        if let Some(rd) = rtable {
            write!(f, " rtable {rd}")?;
        }
        Ok(())
    }
}

impl fmt::Display for PfRules<'_> {
    /// Passive, in `pfctl -sr` form (the original's pair, spec §5.4, with
    /// pfctl's ordering and defaults):
    /// `pass in quick on rdomain $crd inet proto tcp from $client to $orig port = $pport flags S/SA keep state (max 1) rtable $prd rdr-to $server port $port`
    /// `pass out quick on rdomain $prd inet proto tcp from $client to $server port = $port flags S/SA keep state (max 1) nat-to $proxy`
    ///
    /// Active swaps the rdomains: the redirect arrives in the proxy's and
    /// routes in the client's, the translation leaves in the client's.
    /// pfctl leaves out the nat-to port range when it is its default
    /// 50001:65535 and prints a single port (`-r`: `port 20`) alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.pinhole;
        let (in_rd, route_rd, out_rd) = match p.mode {
            Mode::Passive => (
                self.opts.client_rdomain,
                self.opts.proxy_rdomain,
                self.opts.proxy_rdomain,
            ),
            Mode::Active => (
                self.opts.proxy_rdomain,
                self.opts.client_rdomain,
                self.opts.client_rdomain,
            ),
        };
        let r = &p.rdr;
        self.head(f, "in", in_rd)?;
        write!(f, " from {} to {} port = {}", r.from, r.to, r.port)?;
        self.state(f, route_rd)?;
        writeln!(f, " rdr-to {} port {}", r.target, r.target_port)?;
        let n = &p.nat;
        self.head(f, "out", out_rd)?;
        write!(f, " from {} to {} port = {}", n.from, n.to, n.port)?;
        self.state(f, None)?;
        write!(f, " nat-to {}", n.source)?;
        let (low, high) = (*n.source_ports.start(), *n.source_ports.end());
        if (low, high) != (*NAT_PORTS.start(), *NAT_PORTS.end()) {
            if low == high {
                write!(f, " port {low}")?;
            } else {
                write!(f, " port {low}:{high}")?;
            }
        }
        writeln!(f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn v4() -> SessionAddrs {
        SessionAddrs {
            client: "10.0.0.2".parse().unwrap(),
            orig: "192.0.2.10".parse().unwrap(),
            server: "192.0.2.10".parse().unwrap(),
            proxy: "192.0.2.1".parse().unwrap(),
        }
    }

    /// Reverse mode (-R): the server differs from the original destination.
    fn v6_reverse() -> SessionAddrs {
        SessionAddrs {
            client: "2001:db8:1::2".parse().unwrap(),
            orig: "2001:db8:2::10".parse().unwrap(),
            server: "2001:db8:3::20".parse().unwrap(),
            proxy: "2001:db8:3::1".parse().unwrap(),
        }
    }

    fn render(p: &Pinhole, opts: &RuleOptions) -> String {
        p.pf_rules(opts).to_string()
    }

    #[test]
    fn passive_inet_defaults() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA keep state (max 1) rdr-to 192.0.2.10 port 40000\n\
             pass out quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA keep state (max 1) nat-to 192.0.2.1\n"
        );
    }

    #[test]
    fn active_inet_defaults() {
        let p = Pinhole::active(&v4(), 2000, 60000, false);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) rdr-to 10.0.0.2 port 2000\n\
             pass out quick inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn active_inet_rfc_mode_comes_from_port_20() {
        let p = Pinhole::active(&v4(), 2000, 60000, true);
        assert!(render(&p, &RuleOptions::default())
            .ends_with(" flags S/SA keep state (max 1) nat-to 192.0.2.10 port 20\n"));
    }

    #[test]
    fn passive_inet6_reverse_mode() {
        let p = Pinhole::passive(&v6_reverse(), 1024, 49152);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet6 proto tcp from 2001:db8:1::2 to 2001:db8:2::10 port = 49152 flags S/SA keep state (max 1) rdr-to 2001:db8:3::20 port 1024\n\
             pass out quick inet6 proto tcp from 2001:db8:1::2 to 2001:db8:3::20 port = 1024 flags S/SA keep state (max 1) nat-to 2001:db8:3::1\n"
        );
    }

    #[test]
    fn active_inet6_reverse_mode() {
        // The client sees the data connection come from the server it meant
        // (orig), not from the fixed server.
        let p = Pinhole::active(&v6_reverse(), 3000, 65534, false);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet6 proto tcp from 2001:db8:3::20 to 2001:db8:3::1 port = 65534 flags S/SA keep state (max 1) rdr-to 2001:db8:1::2 port 3000\n\
             pass out quick inet6 proto tcp from 2001:db8:3::20 to 2001:db8:1::2 port = 3000 flags S/SA keep state (max 1) nat-to 2001:db8:2::10\n"
        );
    }

    #[test]
    fn openbsd_rdomains_passive_and_active() {
        let opts = RuleOptions {
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
            ..Default::default()
        };
        assert_eq!(
            render(&Pinhole::passive(&v4(), 40000, 55000), &opts),
            "pass in quick on rdomain 3 inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA keep state (max 1) rtable 0 rdr-to 192.0.2.10 port 40000\n\
             pass out quick on rdomain 0 inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA keep state (max 1) nat-to 192.0.2.1\n"
        );
        assert_eq!(
            render(&Pinhole::active(&v4(), 2000, 60000, false), &opts),
            "pass in quick on rdomain 0 inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) rtable 3 rdr-to 10.0.0.2 port 2000\n\
             pass out quick on rdomain 3 inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn log_levels() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        let one = render(
            &p,
            &RuleOptions {
                log: 1,
                ..Default::default()
            },
        );
        assert!(one.starts_with("pass in log quick inet proto tcp "));
        assert!(one.contains("\npass out log quick inet proto tcp "));
        let two = render(
            &p,
            &RuleOptions {
                log: 2,
                ..Default::default()
            },
        );
        assert!(two.starts_with("pass in log (all) quick inet proto tcp "));
        assert!(two.contains("\npass out log (all) quick inet proto tcp "));
    }

    #[test]
    fn queue_is_a_set_action_before_the_state() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        let opts = RuleOptions {
            queue: Some("ftpq".into()),
            ..Default::default()
        };
        assert_eq!(
            render(&p, &opts),
            "pass in quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA set (queue ftpq) keep state (max 1) rdr-to 192.0.2.10 port 40000\n\
             pass out quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA set (queue ftpq) keep state (max 1) nat-to 192.0.2.1\n"
        );
    }

    #[test]
    fn tag_makes_match_rules_without_quick() {
        let p = Pinhole::active(&v4(), 2000, 60000, false);
        let opts = RuleOptions {
            tag: Some("FTP".into()),
            ..Default::default()
        };
        assert_eq!(
            render(&p, &opts),
            "match in inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) tag FTP rdr-to 10.0.0.2 port 2000\n\
             match out inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) tag FTP nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn every_option_at_once_inet6_active_rfc() {
        let p = Pinhole::active(&v6_reverse(), 2000, 60000, true);
        let opts = RuleOptions {
            log: 2,
            tag: Some("FTP".into()),
            queue: Some("ftpq".into()),
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
        };
        assert_eq!(
            render(&p, &opts),
            "match in log (all) on rdomain 0 inet6 proto tcp from 2001:db8:3::20 to 2001:db8:3::1 port = 60000 flags S/SA set (queue ftpq) keep state (max 1) tag FTP rtable 3 rdr-to 2001:db8:1::2 port 2000\n\
             match out log (all) on rdomain 3 inet6 proto tcp from 2001:db8:3::20 to 2001:db8:1::2 port = 2000 flags S/SA set (queue ftpq) keep state (max 1) tag FTP nat-to 2001:db8:2::10 port 20\n"
        );
    }

    /// Every mode × family × -v × -T × -q × rdomain combination: the parts
    /// each option adds are present exactly when it is set, in pfctl's order.
    #[test]
    fn option_matrix_properties() {
        for addrs in [v4(), v6_reverse()] {
            let inet = if addrs.client.is_ipv4() {
                " inet "
            } else {
                " inet6 "
            };
            for (mode, rfc) in [
                (Mode::Passive, false),
                (Mode::Active, false),
                (Mode::Active, true),
            ] {
                let p = match mode {
                    Mode::Passive => Pinhole::passive(&addrs, 40000, 55000),
                    Mode::Active => Pinhole::active(&addrs, 40000, 55000, rfc),
                };
                for opts in all_options() {
                    let text = render(&p, &opts);
                    let lines: Vec<&str> = text.lines().collect();
                    assert_eq!(lines.len(), 2, "{text}");
                    for (i, line) in lines.iter().enumerate() {
                        let verb = if opts.tag.is_some() { "match" } else { "pass" };
                        let dir = if i == 0 { "in" } else { "out" };
                        assert!(line.starts_with(&format!("{verb} {dir} ")), "{line}");
                        assert_eq!(line.contains(" quick "), opts.tag.is_none(), "{line}");
                        assert_eq!(
                            line.contains(" log quick ")
                                || line.contains(" log on ")
                                || line.contains(" log inet"),
                            opts.log == 1,
                            "{line}"
                        );
                        assert_eq!(line.contains(" log (all) "), opts.log == 2, "{line}");
                        assert_eq!(
                            line.contains(" set (queue "),
                            opts.queue.is_some(),
                            "{line}"
                        );
                        assert_eq!(line.contains(" tag "), opts.tag.is_some(), "{line}");
                        assert!(line.contains(inet), "{line}");
                        assert!(line.contains(" flags S/SA "), "{line}");
                        assert!(line.contains(" keep state (max 1)"), "{line}");
                        let on_rdomain = line.contains(" on rdomain ");
                        let rd = if (i == 0) == (mode == Mode::Passive) {
                            opts.client_rdomain
                        } else {
                            opts.proxy_rdomain
                        };
                        assert_eq!(on_rdomain, rd.is_some(), "{line}");
                        let order = [" flags ", " keep state ", " rdr-to ", " nat-to "];
                        let pos: Vec<usize> = order.iter().filter_map(|t| line.find(t)).collect();
                        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{line}");
                    }
                    assert!(lines[0].contains(" rdr-to ") && !lines[0].contains(" nat-to "));
                    assert!(lines[1].contains(" nat-to ") && !lines[1].contains(" rdr-to "));
                    // Only the redirect routes in a table; the nat rule's
                    // rtableid stays -1 and pfctl prints nothing.
                    assert!(!lines[1].contains(" rtable "));
                    assert_eq!(lines[1].ends_with(" port 20"), rfc);
                }
            }
        }
    }

    /// The option sets the matrix runs over.
    pub(crate) fn all_options() -> Vec<RuleOptions> {
        let mut all = Vec::new();
        for log in 0..=2 {
            for tag in [None, Some("FTP".to_string())] {
                for queue in [None, Some("ftpq".to_string())] {
                    for (client_rdomain, proxy_rdomain) in
                        [(None, None), (Some(0), Some(0)), (Some(3), Some(5))]
                    {
                        all.push(RuleOptions {
                            log,
                            tag: tag.clone(),
                            queue: queue.clone(),
                            client_rdomain,
                            proxy_rdomain,
                        });
                    }
                }
            }
        }
        all
    }
}
