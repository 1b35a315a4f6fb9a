//! Linux: pinholes as elements of the daemon's own nftables table, over
//! netlink.
//!
//! At start-up the daemon creates `table ip ftp-proxy-<port>` (or `ip6`) with
//! fixed chains and four timeout sets (see [`ruleset`]), owned by its netlink
//! socket: the kernel removes the table, and every pinhole in it, the moment
//! that socket closes, even when the daemon is killed. Each pinhole is then
//! three set elements added and removed in one atomic batch, a few
//! microseconds per change, and without any file or process access, so it
//! works inside the sandbox.

mod elements;
mod expr;
mod netlink;
mod ruleset;

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use nix::errno::Errno;

use super::{Filter, SessionId};
use crate::pinhole::Pinhole;
use elements::Element;
use netlink::{Batch, BatchError, Socket};
use ruleset::Family;

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
    family: Family,
    /// `None` after [`Filter::shutdown`].
    socket: Option<Socket>,
    /// What each session has in the kernel, exactly as it was sent.
    installed: HashMap<SessionId, Vec<Element>>,
    timeout: Duration,
}

impl Nftables {
    /// Creates the table (atomically replacing a stale one), as root.
    ///
    /// Errors are one line saying what to fix.
    pub fn new(config: NftConfig) -> Result<Nftables, String> {
        let family = ruleset::family_of(&config);
        let table = format!(
            "{} {}",
            family.keyword(),
            ruleset::table_name(config.listen_port)
        );
        let mut socket = Socket::open().map_err(|e| socket_error(&table, e))?;
        socket
            .apply(&ruleset::setup_batch(&config))
            .map_err(|e| setup_error(&table, config.listen_port, e))?;
        Ok(Nftables {
            config,
            family,
            socket: Some(socket),
            installed: HashMap::new(),
            timeout: PINHOLE_TIMEOUT,
        })
    }

    /// The table's name: `ftp-proxy-<port>`.
    pub fn table_name(&self) -> String {
        ruleset::table_name(self.config.listen_port)
    }

    /// Sets the lifetime of pinholes opened from now on (default
    /// [`PINHOLE_TIMEOUT`]); the kernel removes an element when it expires.
    pub fn set_pinhole_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Applies `batch`; bookkeeping is the caller's, and only on success.
    fn apply(&mut self, batch: &Batch) -> io::Result<()> {
        let socket = self.socket.as_mut().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "nftables backend is shut down")
        })?;
        socket.apply(batch).map_err(io::Error::from)
    }
}

impl Filter for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()> {
        let new = elements::pinhole_elements(self.family, pinhole)?;
        let table = self.table_name();
        let mut batch = Batch::new(self.family.nfproto());
        if let Some(old) = self.installed.get(&id) {
            elements::remove(&mut batch, &table, old, self.timeout);
        }
        elements::add(&mut batch, &table, &new, self.timeout);
        self.apply(&batch)?;
        self.installed.insert(id, new);
        Ok(())
    }

    fn close(&mut self, id: SessionId) -> io::Result<()> {
        let Some(old) = self.installed.get(&id) else {
            return Ok(());
        };
        let mut batch = Batch::new(self.family.nfproto());
        elements::remove(&mut batch, &self.table_name(), old, self.timeout);
        self.apply(&batch)?;
        self.installed.remove(&id);
        Ok(())
    }

    fn describe(&self, id: SessionId) -> Vec<String> {
        self.installed.get(&id).map_or_else(Vec::new, |e| {
            elements::describe(self.family, &self.table_name(), e, self.timeout)
        })
    }

    /// Deletes the table, then closes the socket, which would make the kernel
    /// delete an owned table anyway: after this nothing of ours is left.
    fn shutdown(&mut self) -> io::Result<()> {
        if self.socket.is_none() {
            return Ok(());
        }
        let result = self.apply(&ruleset::teardown_batch(&self.config));
        self.socket = None;
        self.installed.clear();
        result
    }
}

/// The socket could not even be opened.
fn socket_error(table: &str, e: io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EPROTONOSUPPORT | Errno::EAFNOSUPPORT) => format!(
            "cannot create nftables table {table}: this kernel has no netfilter netlink \
             (enable CONFIG_NETFILTER_NETLINK and CONFIG_NF_TABLES)"
        ),
        Some(Errno::EPERM | Errno::EACCES) => format!(
            "cannot create nftables table {table}: permission denied \
             (ftp-proxy needs root or CAP_NET_ADMIN)"
        ),
        _ => format!("cannot create nftables table {table}: netlink socket: {e}"),
    }
}

/// The start-up batch was refused: say why and what to do.
fn setup_error(table: &str, port: u16, e: BatchError) -> String {
    /// The first three messages of the start-up batch are the table's own.
    const TABLE_MESSAGES: usize = 3;
    match (e.index, e.errno) {
        (None, Errno::EPERM | Errno::EACCES) => format!(
            "cannot create nftables table {table}: permission denied \
             (ftp-proxy needs root or CAP_NET_ADMIN in this network namespace)"
        ),
        (None, Errno::EOPNOTSUPP | Errno::ENOENT | Errno::EPROTONOSUPPORT) => format!(
            "cannot create nftables table {table}: nf_tables is not available \
             (load the nf_tables module or enable CONFIG_NF_TABLES)"
        ),
        (Some(i), Errno::EPERM | Errno::EBUSY | Errno::EEXIST) if i < TABLE_MESSAGES => format!(
            "nftables table {table} belongs to another running process \
             (another ftp-proxy on port {port}?)"
        ),
        (Some(_), Errno::ENOENT | Errno::EOPNOTSUPP) => format!(
            "cannot create nftables table {table}: {e} (does this kernel have \
             nft_nat, nft_ct, nft_log and nft_chain_nat?)"
        ),
        _ => format!("cannot create nftables table {table}: {e}"),
    }
}

/// The Linux meaning of `-T tag`: the conntrack mark of pinhole connections,
/// a non-zero number, decimal or `0x` hexadecimal.
pub fn mark_from_tag(tag: &str) -> Result<u32, String> {
    let parsed = match tag.strip_prefix("0x").or_else(|| tag.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_digit()) => tag.parse().ok(),
        None => None,
    };
    match parsed {
        Some(mark) if mark != 0 => Ok(mark),
        _ => Err(format!(
            "invalid tag \"{tag}\": on Linux -T takes a non-zero conntrack mark, \
             decimal or 0x-hex, at most 0xffffffff"
        )),
    }
}

/// The Linux meaning of `-q queue`: a tc class id `major:minor`, both
/// hexadecimal as tc(8) writes them, as the packet priority
/// `major << 16 | minor`.
pub fn priority_from_queue(q: &str) -> Result<u32, String> {
    let hex16 = |s: &str| {
        if (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    match q.split_once(':') {
        Some((major, minor)) => match (hex16(major), hex16(minor)) {
            (Some(major), Some(minor)) => Ok(u32::from(major) << 16 | u32::from(minor)),
            _ => Err(queue_error(q)),
        },
        None => Err(queue_error(q)),
    }
}

fn queue_error(q: &str) -> String {
    format!(
        "invalid queue \"{q}\": on Linux -q takes a tc class id major:minor \
         in hexadecimal, e.g. 1:10"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_a_non_zero_mark() {
        assert_eq!(mark_from_tag("42"), Ok(42));
        assert_eq!(mark_from_tag("0x00667470"), Ok(DEFAULT_MARK));
        assert_eq!(mark_from_tag("0XfF"), Ok(255));
        assert_eq!(mark_from_tag("4294967295"), Ok(u32::MAX));
        for bad in [
            "0",
            "0x0",
            "",
            "0x",
            "-1",
            "4294967296",
            "0x100000000",
            "FTP",
            "1a",
            " 1",
        ] {
            let err = mark_from_tag(bad).unwrap_err();
            assert!(err.contains("conntrack mark"), "{bad}: {err}");
        }
    }

    #[test]
    fn queue_is_a_tc_class_in_hex() {
        assert_eq!(priority_from_queue("1:10"), Ok(0x0001_0010));
        assert_eq!(priority_from_queue("ffff:ffff"), Ok(0xffff_ffff));
        assert_eq!(priority_from_queue("a:0"), Ok(0x000a_0000));
        for bad in [
            "", "1", "1:", ":1", "1:2:3", "10000:1", "g:1", "ftpq", "1 :2",
        ] {
            let err = priority_from_queue(bad).unwrap_err();
            assert!(err.contains("tc class id"), "{bad}: {err}");
        }
    }

    fn refused(index: Option<usize>, errno: Errno) -> String {
        setup_error(
            "ip ftp-proxy-8021",
            8021,
            BatchError {
                errno,
                index,
                what: index.map(|_| "table ip ftp-proxy-8021".into()),
            },
        )
    }

    #[test]
    fn start_up_errors_say_what_to_fix() {
        assert_eq!(
            refused(Some(0), Errno::EPERM),
            "nftables table ip ftp-proxy-8021 belongs to another running process \
             (another ftp-proxy on port 8021?)"
        );
        assert!(refused(None, Errno::EPERM).contains("needs root or CAP_NET_ADMIN"));
        assert!(refused(None, Errno::EOPNOTSUPP).contains("nf_tables is not available"));
        assert!(refused(Some(7), Errno::ENOENT).contains("nft_chain_nat"));
        assert!(refused(Some(5), Errno::ENOMEM).ends_with(Errno::ENOMEM.desc()));
        let e = socket_error(
            "ip6 ftp-proxy-21",
            io::Error::from_raw_os_error(libc::EPROTONOSUPPORT),
        );
        assert!(e.contains("CONFIG_NETFILTER_NETLINK"), "{e}");
    }
}
