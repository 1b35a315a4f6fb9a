//! Linux: pinholes as elements of the daemon's own nftables table, over
//! netlink. (Pending.)

use std::io;
use std::time::Duration;

use super::{Filter, SessionId};
use crate::pinhole::Pinhole;

/// The conntrack mark put on pinhole connections when `-T` is not given:
/// "ftp" in ASCII.
pub const DEFAULT_MARK: u32 = 0x0066_7470;

/// How long an unused pinhole stays in the kernel.
pub const PINHOLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the backend needs, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftConfig {
    /// `-6`: the table is `ip6`, else `ip`.
    pub ipv6: bool,
    /// The listening port; the table is named `ftp-proxy-<port>`.
    pub listen_port: u16,
    /// The conntrack mark: `-T`, or [`DEFAULT_MARK`].
    pub mark: u32,
    /// `-v` count: 1 logs each pinhole's first packet, 2 every packet.
    pub log: u8,
    /// `-q`: tc class (major << 16 | minor) put in the packets' priority.
    pub priority: Option<u32>,
}

/// The nftables backend. Owns its netlink socket and its table.
#[derive(Debug)]
pub struct Nftables {
    config: NftConfig,
}

impl Nftables {
    /// Creates the table (atomically replacing a stale one), as root.
    pub fn new(config: NftConfig) -> Result<Nftables, String> {
        Ok(Nftables { config })
    }

    /// The table's name: `ftp-proxy-<port>`.
    pub fn table_name(&self) -> String {
        format!("ftp-proxy-{}", self.config.listen_port)
    }
}

impl Filter for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn open(&mut self, _id: SessionId, _pinhole: &Pinhole) -> io::Result<()> {
        Ok(())
    }

    fn close(&mut self, _id: SessionId) -> io::Result<()> {
        Ok(())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `-T` on Linux: a conntrack mark. (Pending.)
pub fn mark_from_tag(tag: &str) -> Result<u32, String> {
    tag.parse().map_err(|_| format!("tag {tag} is not a mark"))
}

/// `-q` on Linux: a tc class id. (Pending.)
pub fn priority_from_queue(queue: &str) -> Result<u32, String> {
    Err(format!("queue {queue}: not supported yet"))
}
