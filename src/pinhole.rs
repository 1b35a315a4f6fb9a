//! What one data connection needs from the packet filter, as plain data.
//!
//! A pinhole is a pair of translations, as ftp-proxy(8) describes them: a
//! redirect that sends the peer's data connection to the real endpoint, and a
//! source translation that makes it appear to come from the address the other
//! side expects. Each backend translates this value into its own kernel
//! objects and describes them in its own syntax (`Filter::describe`); this
//! module knows no filter's syntax.

use std::net::IpAddr;
use std::ops::RangeInclusive;

/// The source ports a translated data connection may use: the range pf uses
/// by default (PF_NAT_PROXY_PORT_LOW..HIGH), on every backend.
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

/// `from → to:port` becomes `target:target_port` (a destination translation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: u16,
    pub target: IpAddr,
    pub target_port: u16,
}

/// `from → to:port` leaves with source `source`, port in `source_ports` (a
/// source translation). `to:port` is the destination after the redirect.
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
}
