//! One FTP session: the protocol engine driven by two sockets.
//!
//! The driver owns the client's and the server's control connections, feeds
//! whatever bytes arrive into the [`Engine`] and carries out its actions in
//! order: queue bytes for a peer, open a pinhole, log, end. It also keeps the
//! two idle timers of ftp-proxy(8): the client's (`-t`) and the server's (30
//! seconds until its first byte, then `-t`), each restarted only by that
//! side's input.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::filter::{Filter, SessionId};
use crate::ftp::rewrite::refusal;
use crate::ftp::{Action, Engine, EngineConfig, Refusal};
use crate::log::Level;
use crate::log_at;
use crate::pinhole::SessionAddrs;
use crate::ports::PortAllocator;

/// How long the server has to send its first bytes (CONNECT_TIMEOUT).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes queued towards one peer before the driver stops reading from the
/// other: a peer that does not read cannot make the daemon buffer without
/// bound.
const OUTBOX_LIMIT: usize = 64 * 1024;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 4096;

/// Reads per side in one call of [`Session::pump`], so one busy session
/// cannot starve the others; the caller runs it again when it asks to.
const PUMP_ROUNDS: usize = 16;

/// Session settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `-t`; `None` for `-t 0` (no idle timeout).
    pub idle_timeout: Option<Duration>,
    /// How long the server has to send its first bytes:
    /// [`CONNECT_TIMEOUT`], whatever `-t` says.
    pub connect_timeout: Duration,
    /// The protocol options (`-A`, `-6`, `-r`, `-D`).
    pub engine: EngineConfig,
}

/// What a session needs from the daemon while it handles an event.
pub struct Context<'a> {
    pub filter: &'a mut dyn Filter,
    pub ports: &'a mut PortAllocator,
    pub settings: &'a Settings,
    pub now: Instant,
}

/// Which control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Whether the session goes on after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do until the next event.
    Idle,
    /// More bytes may be waiting: call [`Session::pump`] again soon.
    Busy,
    /// The session is over; drop it.
    Ended,
}

/// Bytes waiting to be written to one peer.
#[derive(Debug, Default)]
struct Outbox {
    buf: Vec<u8>,
    start: usize,
}

impl Outbox {
    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Writes as much as the socket takes. `Ok(())` also when it would block.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        while self.start < self.buf.len() {
            match stream.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(())
    }
}

/// One control connection and what waits to be written to it.
#[derive(Debug)]
struct Peer {
    stream: TcpStream,
    outbox: Outbox,
    /// Readiness is edge-triggered: remember that bytes may be waiting until
    /// a read says otherwise.
    readable: bool,
}

/// One FTP session.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    client: Peer,
    server: Peer,
    engine: Engine,
    addrs: SessionAddrs,
    /// The asynchronous connect to the server has completed.
    connected: bool,
    /// The server has sent its first bytes (its timer switches to `-t`).
    server_heard: bool,
    client_deadline: Option<Instant>,
    server_deadline: Option<Instant>,
    /// The proxy port of the session's live pinhole, held in the allocator.
    proxy_port: Option<u16>,
    /// The deadline the daemon's timer queue holds for this session.
    pub scheduled: Option<Instant>,
}

/// Where a new session goes and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub client: SocketAddr,
    /// The original destination (what the client meant to reach).
    pub orig: SocketAddr,
    /// The server to connect to: `orig`, or the `-R` address.
    pub server: SocketAddr,
    /// `-a`: the address to connect from.
    pub source: Option<SocketAddr>,
}

impl Session {
    /// Connects to the server for a newly accepted client and logs the
    /// session's start. On failure the client gets the 421 and is closed.
    pub fn start(
        id: SessionId,
        mut client: TcpStream,
        ends: Endpoints,
        count: usize,
        max: usize,
        ctx: &mut Context<'_>,
    ) -> Option<Session> {
        let server = match connect_server(id, &ends) {
            Ok(s) => s,
            Err(()) => {
                refuse(&mut client, Refusal::ServerUnreachable);
                return None;
            }
        };
        let proxy = match server.local_addr() {
            Ok(a) => a.ip(),
            Err(e) => {
                log_at!(Level::Crit, "#{id} getsockname failed: {e}");
                refuse(&mut client, Refusal::ServerUnreachable);
                return None;
            }
        };
        let addrs = SessionAddrs {
            client: ends.client.ip(),
            orig: ends.orig.ip(),
            server: ends.server.ip(),
            proxy,
        };
        log_at!(
            Level::Info,
            "#{id} FTP session {count}/{max} started: client {} to server {} via proxy {}",
            addrs.client,
            addrs.server,
            addrs.proxy
        );
        for stream in [&client, &server] {
            let _ = socket::setsockopt(stream, sockopt::KeepAlive, &true);
            // Every write is one or more whole lines. With Nagle, a reply
            // forwarded right after another (150 then 226) would wait for
            // the peer's delayed ACK, some 40 ms per transfer.
            let _ = stream.set_nodelay(true);
        }
        let client_deadline = ctx.settings.idle_timeout.map(|t| ctx.now + t);
        Some(Session {
            id,
            client: Peer {
                stream: client,
                outbox: Outbox::default(),
                readable: true,
            },
            server: Peer {
                stream: server,
                outbox: Outbox::default(),
                readable: true,
            },
            engine: Engine::new(ctx.settings.engine, addrs),
            addrs,
            connected: false,
            server_heard: false,
            client_deadline,
            server_deadline: Some(ctx.now + ctx.settings.connect_timeout),
            proxy_port: None,
            scheduled: None,
        })
    }

    /// The two sockets, for registering with the event loop.
    pub fn streams(&mut self) -> (&mut TcpStream, &mut TcpStream) {
        (&mut self.client.stream, &mut self.server.stream)
    }

    /// The session's addresses.
    pub fn addrs(&self) -> &SessionAddrs {
        &self.addrs
    }

    /// The earliest of the two idle deadlines.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.client_deadline, self.server_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A readiness event on one side.
    pub fn on_event(&mut self, side: Side, readable: bool, ctx: &mut Context<'_>) -> Outcome {
        match side {
            Side::Client => self.client.readable |= readable,
            Side::Server => self.server.readable |= readable,
        }
        self.pump(ctx)
    }

    /// Moves bytes until both sockets would block (or the round limit).
    pub fn pump(&mut self, ctx: &mut Context<'_>) -> Outcome {
        if !self.connected {
            match self.server.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.server_refused(e, ctx),
            }
            match self.server.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
                Err(e) => return self.server_refused(e, ctx),
            }
        }
        for _ in 0..PUMP_ROUNDS {
            if let Err(e) = self.client.outbox.flush(&mut self.client.stream) {
                log_at!(Level::Err, "#{} client write error: {e}", self.id);
                return self.end(None, ctx);
            }
            if self.connected {
                if let Err(e) = self.server.outbox.flush(&mut self.server.stream) {
                    log_at!(Level::Err, "#{} server write error: {e}", self.id);
                    return self.end(None, ctx);
                }
            }
            let mut progress = false;
            if self.client.readable && self.server.outbox.len() < OUTBOX_LIMIT {
                match self.read_side(Side::Client, ctx) {
                    Ok(p) => progress |= p,
                    Err(end) => return end,
                }
            }
            if self.connected && self.server.readable && self.client.outbox.len() < OUTBOX_LIMIT {
                match self.read_side(Side::Server, ctx) {
                    Ok(p) => progress |= p,
                    Err(end) => return end,
                }
            }
            if !progress {
                return Outcome::Idle;
            }
        }
        Outcome::Busy
    }

    /// One read from a side, fed to the engine. `Ok(true)` when bytes came.
    fn read_side(&mut self, side: Side, ctx: &mut Context<'_>) -> Result<bool, Outcome> {
        let mut buf = [0u8; READ_CHUNK];
        let peer = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        let n = match peer.stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                peer.readable = false;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => {
                match side {
                    Side::Client => {
                        log_at!(Level::Err, "#{} client reset connection: {e}", self.id)
                    }
                    Side::Server => {
                        log_at!(Level::Err, "#{} server refused connection: {e}", self.id)
                    }
                }
                return Err(self.end(None, ctx));
            }
        };
        if n == 0 {
            match side {
                Side::Client => log_at!(Level::Info, "#{} client close", self.id),
                Side::Server => log_at!(Level::Info, "#{} server close", self.id),
            }
            return Err(self.end(None, ctx));
        }
        let mut actions = Vec::new();
        match side {
            Side::Client => {
                self.client_deadline = ctx.settings.idle_timeout.map(|t| ctx.now + t);
                self.engine.client_input(&buf[..n], ctx.ports, &mut actions);
            }
            Side::Server => {
                self.server_heard = true;
                self.server_deadline = ctx.settings.idle_timeout.map(|t| ctx.now + t);
                self.engine.server_input(&buf[..n], ctx.ports, &mut actions);
            }
        }
        match self.carry_out(actions, ctx) {
            Outcome::Ended => Err(Outcome::Ended),
            _ => Ok(true),
        }
    }

    /// Carries out the engine's actions in order.
    fn carry_out(&mut self, actions: Vec<Action>, ctx: &mut Context<'_>) -> Outcome {
        let mut actions = actions.into_iter();
        while let Some(action) = actions.next() {
            match action {
                Action::ToServer(bytes) => self.server.outbox.push(&bytes),
                Action::ToClient(bytes) => self.client.outbox.push(&bytes),
                Action::Log(level, text) => log_at!(level, "#{} {}", self.id, text),
                Action::Open(pinhole) => match ctx.filter.open(self.id, &pinhole) {
                    Ok(()) => {
                        if let Some(old) = self.proxy_port.replace(pinhole.proxy_port) {
                            ctx.ports.release(old);
                        }
                        if crate::log::enabled(Level::Debug) {
                            // In the backend's own syntax (Filter::describe).
                            for rule in ctx.filter.describe(self.id) {
                                log_at!(Level::Debug, "#{} rules: {rule}", self.id);
                            }
                        }
                    }
                    Err(e) => {
                        ctx.ports.release(pinhole.proxy_port);
                        log_at!(
                            Level::Crit,
                            "#{} {} operation failed: {e}",
                            self.id,
                            ctx.filter.name()
                        );
                        // Drop what the engine meant to send after the pinhole.
                        actions.for_each(drop);
                        return self.end(Some(Refusal::Pinhole), ctx);
                    }
                },
                Action::End => return self.end(None, ctx),
            }
        }
        Outcome::Idle
    }

    /// Checks the idle timers against `ctx.now`.
    pub fn expire(&mut self, ctx: &mut Context<'_>) -> Outcome {
        if self.client_deadline.is_some_and(|d| d <= ctx.now) {
            log_at!(Level::Err, "#{} client timeout", self.id);
            return self.end(Some(Refusal::ClientTimeout), ctx);
        }
        if self.server_deadline.is_some_and(|d| d <= ctx.now) {
            log_at!(Level::Notice, "#{} server timeout", self.id);
            let why = if self.server_heard {
                Refusal::ServerIdle
            } else {
                Refusal::ServerTimeout
            };
            return self.end(Some(why), ctx);
        }
        Outcome::Idle
    }

    fn server_refused(&mut self, e: io::Error, ctx: &mut Context<'_>) -> Outcome {
        log_at!(Level::Err, "#{} server refused connection: {e}", self.id);
        self.end(Some(Refusal::ServerUnreachable), ctx)
    }

    /// Ends the session as ftp-proxy(8) does: one best-effort write of what
    /// is still queued (so a server's goodbye reaches the client), plus the
    /// refusal's 421 line; then the pinhole is removed. The sockets close
    /// when the caller drops the session.
    pub fn end(&mut self, why: Option<Refusal>, ctx: &mut Context<'_>) -> Outcome {
        log_at!(Level::Info, "#{} ending session", self.id);
        if let Some(why) = why {
            self.client.outbox.push(refusal(why));
        }
        let _ = self.client.outbox.flush(&mut self.client.stream);
        if self.connected {
            let _ = self.server.outbox.flush(&mut self.server.stream);
        }
        if let Err(e) = ctx.filter.close(self.id) {
            log_at!(
                Level::Err,
                "#{} {} rule removal failed: {e}",
                self.id,
                ctx.filter.name()
            );
        }
        if let Some(port) = self.proxy_port.take() {
            ctx.ports.release(port);
        }
        Outcome::Ended
    }
}

/// Best effort: tells a client that is turned away why, then closes.
pub fn refuse(client: &mut TcpStream, why: Refusal) {
    let _ = client.write(refusal(why));
}

/// Opens the non-blocking connection to the server, from the `-a` address
/// if given. Failures are logged with the original's words.
fn connect_server(id: SessionId, ends: &Endpoints) -> Result<TcpStream, ()> {
    let family = match ends.server.ip() {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| log_at!(Level::Crit, "#{id} server socket failed: {e}"))?;
    use std::os::fd::AsRawFd;
    if let Some(source) = ends.source {
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(source))
            .map_err(|e| log_at!(Level::Crit, "#{id} cannot bind fixed proxy address: {e}"))?;
    }
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(ends.server)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => {
            log_at!(
                Level::Crit,
                "#{id} proxy cannot connect to server {}: {e}",
                ends.server.ip()
            );
            return Err(());
        }
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(fd)))
}
