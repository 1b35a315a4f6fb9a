//! The one seam between the portable core and the kernel's packet filter.
//!
//! A backend turns [`Pinhole`]s into kernel rules: pf anchors through
//! `/dev/pf` on OpenBSD, elements of the daemon's own nftables table over
//! netlink on Linux. Sessions never see which one is in use.

use std::io;

use crate::pinhole::{Pinhole, RuleOptions};

#[cfg(target_os = "linux")]
pub mod nft;
pub mod pf;

/// A session's number: 1 for the first accepted session, never reused.
pub type SessionId = u32;

/// What a packet filter must do for the daemon.
pub trait Filter {
    /// The name used in log lines, e.g. `pf` (`#3 pf operation failed: …`).
    fn name(&self) -> &'static str;

    /// Installs `pinhole` for session `id`, removing the session's previous
    /// pinhole in the same atomic change. On error nothing has changed.
    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()>;

    /// Removes session `id`'s pinhole, if it has one. Idempotent.
    fn close(&mut self, id: SessionId) -> io::Result<()>;

    /// Removes everything the daemon installed (at exit).
    fn shutdown(&mut self) -> io::Result<()>;

    /// Notes the routing domain session `id`'s client connection arrived in
    /// (OpenBSD: SO_RTABLE of the accepted socket, None when it has none),
    /// which the rules of its later pinholes are bound to. Call it once,
    /// before the session's first `open`. Backends without routing domains
    /// ignore it.
    fn set_client_rdomain(&mut self, _id: SessionId, _rdomain: Option<u32>) {}

    /// The decorations (-v, -T, -q, rdomains) this backend gives session
    /// `id`'s rules, so that `pinhole.pf_rules(&opts)` logs exactly what
    /// `pfctl -a 'ftp-proxy/*' -sr` will show (the OpenBSD regress compares
    /// the two). None for backends whose rules are not pf's.
    fn rule_options(&self, _id: SessionId) -> Option<RuleOptions> {
        None
    }
}

/// A filter that installs nothing. Used by unit tests of the session driver.
#[derive(Debug, Default)]
pub struct NullFilter {
    /// Every pinhole opened, in order, with its session.
    pub opened: Vec<(SessionId, Pinhole)>,
    /// Every session closed, in order.
    pub closed: Vec<SessionId>,
    /// When set, `open` fails with this errno.
    pub fail_open: Option<i32>,
}

impl Filter for NullFilter {
    fn name(&self) -> &'static str {
        "null"
    }

    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()> {
        if let Some(errno) = self.fail_open {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.opened.push((id, pinhole.clone()));
        Ok(())
    }

    fn close(&mut self, id: SessionId) -> io::Result<()> {
        self.closed.push(id);
        Ok(())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
