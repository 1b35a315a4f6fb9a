//! The FTP control protocol, sans-I/O: bytes in, actions out.
//!
//! Nothing here touches a socket, a clock or the packet filter. The session
//! driver feeds the bytes each side sends into an [`Engine`], with the time
//! they arrived, and carries out the [`Action`]s it returns, in order; it
//! calls the engine again when the engine's deadline passes. Every
//! rewritten line, refusal, pinhole and timeout is therefore a unit test
//! with literal byte strings and a virtual clock.
//!
//! - [`line`](mod@line) — framing (LF-terminated, 500 bytes with the LF, no NUL)
//! - [`command`] — client lines (USER under `-A`, PORT, EPRT, PASV, EPSV)
//! - [`reply`] — server replies (codes, multi-line, 227 and 229)
//! - [`rewrite`] — the byte-exact lines sent in their place, and the 421s
//! - `engine` — the per-session state machine tying them together

pub mod command;
mod engine;
pub mod line;
pub mod reply;
pub mod rewrite;
mod scan;

pub use engine::{Engine, EngineConfig, Timeouts};

use crate::log::Level;
use crate::pinhole::Pinhole;

/// One of a session's two control connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's connection, accepted by the proxy.
    Client,
    /// The proxy's connection to the server.
    Server,
}

/// Source of proxy ports (`pport`) for new pinholes. The daemon's
/// implementation ([`crate::ports::PortAllocator`]) hands out random ports
/// in 49152..=65534 that no live pinhole uses; tests use fixed sequences.
pub trait ProxyPorts {
    /// A port for a new pinhole, never `avoid`: the peer's data port. With
    /// passive mode and no `-R` the redirect goes to the same host, and a
    /// proxy port equal to the server's port would make it no translation
    /// at all; the kernel then does not count the connection as redirected
    /// and its source would not be translated either.
    fn pick(&mut self, avoid: u16) -> u16;

    /// Gives a port back: its pinhole was replaced, removed, or will never
    /// be installed.
    fn release(&mut self, port: u16);
}

/// Why the proxy itself ends a session. Each has a log line (written by
/// whoever detects it) and a `421` line for the client, sent before the
/// close instead of the original's silence ([`rewrite::refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `-m` reached.
    SessionLimit,
    /// accept(2) failed for want of a descriptor (EMFILE, ENFILE): the
    /// client is taken with the one held in reserve and turned away.
    NoDescriptors,
    /// A client line over 500 bytes or with a NUL byte.
    ClientLine,
    /// A server line over 500 bytes or with a NUL byte, or a multi-line
    /// 227/229 reply longer than the engine buffers.
    ServerLine,
    /// A data port below 1024 (or unparsable) in PORT/EPRT/227/229.
    BadPort,
    /// PASV or PORT in `-6` mode.
    Ipv6PasvPort,
    /// The packet filter refused the pinhole.
    Pinhole,
    /// The server could not be reached (refused, unreachable, …).
    ServerUnreachable,
    /// The server sent nothing within 30 seconds.
    ServerTimeout,
    /// The client sent nothing for `-t` seconds.
    ClientTimeout,
    /// The server was idle for `-t` seconds.
    ServerIdle,
    /// The connection was not redirected: its destination is the proxy.
    NotRedirected,
    /// The daemon is exiting (SIGTERM, SIGINT, SIGHUP).
    Shutdown,
}

impl Refusal {
    /// Every refusal, for tests and fuzzers that check each 421 line.
    pub const ALL: [Refusal; 13] = [
        Refusal::SessionLimit,
        Refusal::NoDescriptors,
        Refusal::ClientLine,
        Refusal::ServerLine,
        Refusal::BadPort,
        Refusal::Ipv6PasvPort,
        Refusal::Pinhole,
        Refusal::ServerUnreachable,
        Refusal::ServerTimeout,
        Refusal::ClientTimeout,
        Refusal::ServerIdle,
        Refusal::NotRedirected,
        Refusal::Shutdown,
    ];
}

/// One thing for the session driver to do. Actions are carried out in the
/// order given; after [`Action::End`] nothing follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the server.
    ToServer(Vec<u8>),
    /// Send these bytes to the client.
    ToClient(Vec<u8>),
    /// Install this pinhole (replacing the session's previous one) before
    /// carrying out any later action. If the filter fails, the driver logs
    /// the error and calls [`Engine::pinhole_failed`], which replaces the
    /// actions still queued by the [`Refusal::Pinhole`] 421 and the end
    /// (giving back the proxy ports of the pinholes among them).
    Open(Pinhole),
    /// A log message, without the `#<id> ` prefix the driver adds. Only
    /// produced when [`EngineConfig::log_level`] lets it through.
    Log(Level, String),
    /// End the session. Any 421 line for the client has already been given
    /// as a [`Action::ToClient`] before it.
    End,
}

#[cfg(test)]
mod tests {
    use super::Refusal;

    /// Where a refusal stands in [`Refusal::ALL`]; the match stops
    /// compiling when a refusal is added, so `ALL` is updated with it.
    fn position(r: Refusal) -> usize {
        match r {
            Refusal::SessionLimit => 0,
            Refusal::NoDescriptors => 1,
            Refusal::ClientLine => 2,
            Refusal::ServerLine => 3,
            Refusal::BadPort => 4,
            Refusal::Ipv6PasvPort => 5,
            Refusal::Pinhole => 6,
            Refusal::ServerUnreachable => 7,
            Refusal::ServerTimeout => 8,
            Refusal::ClientTimeout => 9,
            Refusal::ServerIdle => 10,
            Refusal::NotRedirected => 11,
            Refusal::Shutdown => 12,
        }
    }

    #[test]
    fn all_lists_every_refusal_once() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(position(*r), i);
        }
    }
}
