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
    /// OpenBSD: the client's routing domain (SO_RTABLE), if known.
    pub client_rdomain: Option<u32>,
    /// OpenBSD: the proxy's routing table (getrtable()), if known.
    pub proxy_rdomain: Option<u32>,
}

/// Display adapter: the pinhole's two rules, one per line, in pf.conf syntax.
pub struct PfRules<'a> {
    pinhole: &'a Pinhole,
    opts: &'a RuleOptions,
}

impl PfRules<'_> {
    fn head(&self, f: &mut fmt::Formatter<'_>, dir: &str, rdomain: Option<u32>) -> fmt::Result {
        match &self.opts.tag {
            Some(_) => write!(f, "match {dir} ")?,
            None => write!(f, "pass {dir} ")?,
        }
        match self.opts.log {
            0 => {}
            1 => write!(f, "log ")?,
            _ => write!(f, "log all ")?,
        }
        if self.opts.tag.is_none() {
            write!(f, "quick ")?;
        }
        if let Some(rd) = rdomain {
            write!(f, "on rdomain {rd} ")?;
        }
        let af = match self.pinhole.rdr.from {
            IpAddr::V4(_) => "inet",
            IpAddr::V6(_) => "inet6",
        };
        write!(f, "{af} proto tcp ")
    }

    fn tail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flags S/SA keep state (max 1)")?;
        if let Some(q) = &self.opts.queue {
            write!(f, " queue {q}")?;
        }
        if let Some(t) = &self.opts.tag {
            write!(f, " tag {t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for PfRules<'_> {
    /// Passive:
    /// `pass in quick on rdomain $crd inet proto tcp from $client to $orig port = $pport flags S/SA keep state (max 1) rdr-to $server port $port rtable $prd`
    /// `pass out quick on rdomain $prd inet proto tcp from $client to $server port = $port flags S/SA keep state (max 1) nat-to $proxy port 50001:65535`
    ///
    /// Active swaps the rdomains: the redirect arrives in the proxy's and
    /// routes in the client's, the translation leaves in the client's.
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
        write!(f, "from {} to {} port = {} ", r.from, r.to, r.port)?;
        self.tail(f)?;
        write!(f, " rdr-to {} port {}", r.target, r.target_port)?;
        if let Some(rd) = route_rd {
            write!(f, " rtable {rd}")?;
        }
        writeln!(f)?;
        let n = &p.nat;
        self.head(f, "out", out_rd)?;
        write!(f, "from {} to {} port = {} ", n.from, n.to, n.port)?;
        self.tail(f)?;
        write!(f, " nat-to {} port {}", n.source, n.source_ports.start())?;
        if n.source_ports.start() != n.source_ports.end() {
            write!(f, ":{}", n.source_ports.end())?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> SessionAddrs {
        SessionAddrs {
            client: "10.0.0.2".parse().unwrap(),
            orig: "192.0.2.10".parse().unwrap(),
            server: "192.0.2.10".parse().unwrap(),
            proxy: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn passive_pair_in_pf_syntax() {
        let p = Pinhole::passive(&addrs(), 40000, 55000);
        let text = p.pf_rules(&RuleOptions::default()).to_string();
        assert_eq!(
            text,
            "pass in quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA keep state (max 1) rdr-to 192.0.2.10 port 40000\n\
             pass out quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA keep state (max 1) nat-to 192.0.2.1 port 50001:65535\n"
        );
    }

    #[test]
    fn active_rfc_mode_tag_log_rdomains() {
        let p = Pinhole::active(&addrs(), 2000, 60000, true);
        let opts = RuleOptions {
            log: 2,
            tag: Some("FTP".into()),
            queue: Some("ftpq".into()),
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
        };
        assert_eq!(
            p.pf_rules(&opts).to_string(),
            "match in log all on rdomain 0 inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) queue ftpq tag FTP rdr-to 10.0.0.2 port 2000 rtable 3\n\
             match out log all on rdomain 3 inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) queue ftpq tag FTP nat-to 192.0.2.10 port 20\n"
        );
    }

    #[test]
    fn inet6_family() {
        let a = SessionAddrs {
            client: "2001:db8:1::2".parse().unwrap(),
            orig: "2001:db8:2::10".parse().unwrap(),
            server: "2001:db8:2::10".parse().unwrap(),
            proxy: "2001:db8:2::1".parse().unwrap(),
        };
        let text = Pinhole::passive(&a, 1024, 49152)
            .pf_rules(&RuleOptions {
                log: 1,
                ..Default::default()
            })
            .to_string();
        assert!(text.starts_with(
            "pass in log quick inet6 proto tcp from 2001:db8:1::2 to 2001:db8:2::10 port = 49152 "
        ));
    }
}
