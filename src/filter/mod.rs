//! The one seam between the portable core and the kernel's packet filter.
//!
//! A backend turns [`Pinhole`]s into kernel rules: pf anchors through
//! `/dev/pf` on OpenBSD, elements of the daemon's own nftables table over
//! netlink on Linux. Sessions never see which one is in use.

use std::io;

use crate::pinhole::Pinhole;

#[cfg(target_os = "linux")]
pub mod nft;
#[allow(unsafe_code)]
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

    /// Session `id`'s installed pinhole in the backend's own syntax, one
    /// line per kernel object, rendered from what was given to the kernel;
    /// empty when the session has none. The daemon logs each line at
    /// LOG_DEBUG as `#<id> rules: <line>`. pf: the pf.conf rules exactly as
    /// `pfctl -a 'ftp-proxy/*' -sr` prints them (the OpenBSD regress
    /// compares the two); nftables: the set elements as nft(8) writes them.
    fn describe(&self, _id: SessionId) -> Vec<String> {
        Vec::new()
    }
}
