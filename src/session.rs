//! One FTP session: the protocol engine driven by two sockets.
//!
//! The driver owns the client's and the server's control connections. It
//! feeds whatever bytes arrive into the [`Engine`], with the time, and
//! carries out the engine's actions in order: queue bytes for a peer, open
//! a pinhole (and tell the engine when the filter refuses it), log, end.
//! Every protocol rule, the idle timers included, is the engine's; what is
//! left here is moving bytes with as few system calls as the kernel allows.
//!
//! Readiness is edge-triggered, so each side remembers whether bytes may
//! still be waiting. A read that fills less than the buffer has emptied the
//! socket, and the next bytes to arrive raise a new edge, so the driver
//! does not read again only to be told EAGAIN. Two cases break that rule
//! and are read until the kernel says so: a peer that has closed or reset
//! (the end of the stream is one more read), and urgent data (a read stops
//! short at the urgent mark, as RFC 959 section 4.1.3's Telnet Synch of
//! ABOR produces). Writable readiness is watched only while an outbox is
//! blocked. Not even the connect to the server is watched for: the server
//! speaks first (its 220 greeting, RFC 959 section 5.4), and its first
//! bytes, its refusal or its silence past the first-reply limit say how the
//! connect went; client bytes sent before then wait in the outbox.
//!
//! A socket is not read before an event says so: registering it reports
//! bytes that are already waiting.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::filter::{Filter, SessionId};
use crate::ftp::rewrite::refusal;
pub use crate::ftp::Side;
use crate::ftp::{Action, Engine, EngineConfig, ProxyPorts, Refusal, Timeouts};
use crate::log::Level;
use crate::log_at;
use crate::pinhole::SessionAddrs;
use crate::ports::PortAllocator;

/// How long the server has to send its first bytes (ftp-proxy.c's
/// CONNECT_TIMEOUT).
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

/// Whether a read shorter than the buffer may be taken to have emptied the
/// socket. Linux reports urgent data (EPOLLPRI), after which a side is read
/// to EAGAIN again; mio's kqueue does not, so elsewhere every side is.
const SHORT_READ_EMPTIES: bool = cfg!(any(target_os = "linux", target_os = "android"));

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

impl Settings {
    /// The engine's timers.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            idle: self.idle_timeout,
            first_reply: self.connect_timeout,
        }
    }
}

/// What a session needs from the daemon while it handles an event.
pub struct Context<'a> {
    pub filter: &'a mut dyn Filter,
    pub ports: &'a mut PortAllocator,
    pub settings: &'a Settings,
    pub now: Instant,
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

/// What a readiness event says about one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes (or the end of the stream) may be waiting.
    pub readable: bool,
    /// The peer has closed or reset: read until the read says so.
    pub hangup: bool,
    /// Urgent data is pending: reads may stop short at its mark.
    pub urgent: bool,
}

impl Readiness {
    /// From a poll event.
    pub fn of(event: &Event) -> Readiness {
        let hangup = event.is_read_closed() || event.is_error();
        Readiness {
            readable: event.is_readable() || hangup,
            hangup,
            urgent: event.is_priority(),
        }
    }
}

/// The interest a socket is registered with: always readable (and urgent
/// data where the poller reports it), writable only when asked.
fn interest(writable: bool) -> Interest {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let read = Interest::READABLE | Interest::PRIORITY;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let read = Interest::READABLE;
    if writable {
        read | Interest::WRITABLE
    } else {
        read
    }
}

/// Bytes waiting to be written to one peer.
#[derive(Debug, Default)]
struct Outbox {
    buf: Vec<u8>,
    start: usize,
    /// The last write would have blocked with bytes left: the socket's
    /// writability must be watched until they are gone.
    blocked: bool,
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
    fn flush(&mut self, stream: &mut impl Write) -> io::Result<()> {
        self.blocked = false;
        while self.start < self.buf.len() {
            match stream.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    break;
                }
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

/// What the driver knows about the bytes waiting in one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadState {
    /// Bytes may be waiting: set by a readable event, cleared by a read
    /// that says the socket is empty.
    readable: bool,
    /// The peer has closed or reset, or sent urgent data (or the platform
    /// does not report urgent data): only EAGAIN or the end of the stream
    /// says the socket is empty.
    read_to_eagain: bool,
}

impl ReadState {
    /// A socket just registered: if it already holds bytes, the
    /// registration raises an event for them.
    fn new(short_read_empties: bool) -> ReadState {
        ReadState {
            readable: false,
            read_to_eagain: !short_read_empties,
        }
    }

    fn note(&mut self, readiness: Readiness) {
        self.readable |= readiness.readable;
        self.read_to_eagain |= readiness.hangup || readiness.urgent;
    }

    /// A read gave `n` bytes (at least one) into a buffer of `capacity`.
    fn after_read(&mut self, n: usize, capacity: usize) {
        self.readable = n == capacity || self.read_to_eagain;
    }

    /// A read would have blocked.
    fn after_eagain(&mut self) {
        self.readable = false;
    }
}

/// One control connection and what waits to be written to it.
#[derive(Debug)]
struct Peer {
    stream: TcpStream,
    outbox: Outbox,
    reading: ReadState,
    /// The socket's token and whether its writability is watched.
    token: Token,
    watching_writes: bool,
}

impl Peer {
    fn new(stream: TcpStream) -> Peer {
        Peer {
            stream,
            outbox: Outbox::default(),
            reading: ReadState::new(SHORT_READ_EMPTIES),
            token: Token(usize::MAX),
            watching_writes: false,
        }
    }
}

/// One FTP session.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    client: Peer,
    server: Peer,
    engine: Engine,
    /// The asynchronous connect to the server has completed.
    connected: bool,
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
            Err(why) => {
                refuse(&mut client, why);
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
        let settings = ctx.settings;
        Some(Session {
            id,
            client: Peer::new(client),
            server: Peer::new(server),
            engine: Engine::new(settings.engine, settings.timeouts(), addrs, ctx.now),
            connected: false,
            proxy_port: None,
            scheduled: None,
        })
    }

    /// Registers both sockets with the event loop, readable only.
    pub fn register(
        &mut self,
        registry: &Registry,
        client: Token,
        server: Token,
    ) -> io::Result<()> {
        self.client.token = client;
        self.server.token = server;
        registry.register(&mut self.client.stream, client, interest(false))?;
        registry.register(&mut self.server.stream, server, interest(false))
    }

    /// Takes both sockets off the event loop.
    pub fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.client.stream);
        let _ = registry.deregister(&mut self.server.stream);
    }

    /// Watches a socket's writability exactly while its outbox is blocked.
    /// One epoll_ctl(2) per change, none while nothing changes.
    pub fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let wants = [self.client.outbox.blocked, self.server.outbox.blocked];
        for (peer, wants) in [&mut self.client, &mut self.server].into_iter().zip(wants) {
            if peer.watching_writes != wants {
                registry.reregister(&mut peer.stream, peer.token, interest(wants))?;
                peer.watching_writes = wants;
            }
        }
        Ok(())
    }

    /// When [`Session::expire`] must run next: the engine's deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// A readiness event on one side.
    pub fn on_event(&mut self, side: Side, readiness: Readiness, ctx: &mut Context<'_>) -> Outcome {
        self.peer(side).reading.note(readiness);
        self.pump(ctx)
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
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
            if self.client.reading.readable && self.server.outbox.len() < OUTBOX_LIMIT {
                match self.read_side(Side::Client, ctx) {
                    Ok(p) => progress |= p,
                    Err(end) => return end,
                }
            }
            if self.connected
                && self.server.reading.readable
                && self.client.outbox.len() < OUTBOX_LIMIT
            {
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
        let peer = self.peer(side);
        let n = match peer.stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                peer.reading.after_eagain();
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
        peer.reading.after_read(n, buf.len());
        self.engine.input(side, &buf[..n], ctx.now, ctx.ports);
        match self.carry_out(ctx) {
            Outcome::Ended => Err(Outcome::Ended),
            _ => Ok(true),
        }
    }

    /// Carries out the engine's actions in order.
    fn carry_out(&mut self, ctx: &mut Context<'_>) -> Outcome {
        while let Some(action) = self.engine.poll_action() {
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
                        self.engine.pinhole_failed(ctx.ports);
                    }
                },
                Action::End => return self.end(None, ctx),
            }
        }
        Outcome::Idle
    }

    /// Lets the engine check its timers against `ctx.now`.
    pub fn expire(&mut self, ctx: &mut Context<'_>) -> Outcome {
        self.engine.handle_timeout(ctx.now);
        self.carry_out(ctx)
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
/// if given. Failures are logged with the original's words; the refusal
/// says whether the server or the daemon's descriptors were the trouble.
fn connect_server(id: SessionId, ends: &Endpoints) -> Result<TcpStream, Refusal> {
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
    .map_err(|e| {
        log_at!(Level::Crit, "#{id} server socket failed: {e}");
        match e {
            nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE => Refusal::NoDescriptors,
            _ => Refusal::ServerUnreachable,
        }
    })?;
    use std::os::fd::AsRawFd;
    if let Some(source) = ends.source {
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(source)).map_err(|e| {
            log_at!(Level::Crit, "#{id} cannot bind fixed proxy address: {e}");
            Refusal::ServerUnreachable
        })?;
    }
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(ends.server)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => {
            log_at!(
                Level::Crit,
                "#{id} proxy cannot connect to server {}: {e}",
                ends.server.ip()
            );
            return Err(Refusal::ServerUnreachable);
        }
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(fd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes `room` bytes, then would block.
    struct Tight {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Tight {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn outbox_is_blocked_exactly_while_bytes_remain() {
        let mut outbox = Outbox::default();
        outbox.push(b"200 one\r\n");
        outbox.push(b"200 two\r\n");
        let mut sock = Tight {
            room: 12,
            got: Vec::new(),
        };
        outbox.flush(&mut sock).unwrap();
        assert!(outbox.blocked);
        assert_eq!(outbox.len(), 6);
        assert_eq!(sock.got, b"200 one\r\n200");
        outbox.push(b"200 three\r\n");
        sock.room = 100;
        outbox.flush(&mut sock).unwrap();
        assert!(!outbox.blocked);
        assert_eq!(outbox.len(), 0);
        assert_eq!(sock.got, b"200 one\r\n200 two\r\n200 three\r\n");
        // Nothing to write: never blocked, whatever the socket says.
        sock.room = 0;
        outbox.flush(&mut sock).unwrap();
        assert!(!outbox.blocked);
    }

    #[test]
    fn outbox_reports_a_socket_that_takes_nothing() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut outbox = Outbox::default();
        outbox.push(b"NOOP\r\n");
        let err = outbox.flush(&mut Zero).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

    const READABLE: Readiness = Readiness {
        readable: true,
        hangup: false,
        urgent: false,
    };

    #[test]
    fn short_read_empties_the_socket_and_a_full_one_does_not() {
        let mut r = ReadState::new(true);
        assert!(!r.readable, "a new socket waits for its first event");
        r.note(READABLE);
        r.after_read(6, READ_CHUNK);
        assert!(!r.readable);
        r.note(READABLE);
        r.after_read(READ_CHUNK, READ_CHUNK);
        assert!(r.readable, "a full buffer may have left bytes behind");
        r.after_read(100, READ_CHUNK);
        assert!(!r.readable);
        // A writable event says nothing of the bytes waiting.
        r.note(Readiness::default());
        assert!(!r.readable);
    }

    #[test]
    fn hangup_and_urgent_data_are_read_until_eagain() {
        for readiness in [
            Readiness {
                hangup: true,
                ..READABLE
            },
            Readiness {
                urgent: true,
                ..READABLE
            },
        ] {
            let mut r = ReadState::new(true);
            r.after_read(6, READ_CHUNK);
            r.note(readiness);
            r.after_read(6, READ_CHUNK);
            assert!(
                r.readable,
                "{readiness:?}: the end of the stream or the bytes after the urgent mark wait"
            );
            r.after_eagain();
            assert!(!r.readable);
            r.note(READABLE);
            r.after_read(1, READ_CHUNK);
            assert!(r.readable, "{readiness:?}: the rule holds for the session");
        }
    }

    #[test]
    fn without_urgent_reports_every_read_goes_to_eagain() {
        let mut r = ReadState::new(false);
        r.after_read(1, READ_CHUNK);
        assert!(r.readable);
        r.after_eagain();
        assert!(!r.readable);
    }

    #[test]
    fn writable_interest_only_when_asked() {
        assert!(interest(true).is_writable());
        assert!(!interest(false).is_writable());
        assert!(interest(false).is_readable());
    }

    /// A filter that refuses every pinhole.
    struct Refusing;

    impl Filter for Refusing {
        fn name(&self) -> &'static str {
            "refusing"
        }
        fn open(&mut self, _: SessionId, _: &crate::pinhole::Pinhole) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        }
        fn close(&mut self, _: SessionId) -> io::Result<()> {
            Ok(())
        }
        fn shutdown(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn refused_pinhole_leaves_no_proxy_port_held() {
        use std::net::{Ipv4Addr, TcpListener};
        let settings = Settings {
            idle_timeout: None,
            connect_timeout: CONNECT_TIMEOUT,
            engine: EngineConfig {
                anonymous_only: false,
                ipv6: false,
                rfc_mode: false,
                log_level: Level::Emerg,
            },
        };
        let mut filter = Refusing;
        let mut ports = PortAllocator::new();
        let server_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let front = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut client = std::net::TcpStream::connect(front.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (accepted, peer) = front.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let server_addr = server_listener.local_addr().unwrap();
        let ends = Endpoints {
            client: peer,
            orig: server_addr,
            server: server_addr,
            source: None,
        };
        let mut ctx = Context {
            filter: &mut filter,
            ports: &mut ports,
            settings: &settings,
            now: Instant::now(),
        };
        let mut session =
            Session::start(1, TcpStream::from_std(accepted), ends, 1, 1, &mut ctx).unwrap();
        let (mut server, _) = server_listener.accept().unwrap();
        server.write_all(b"220 ready\r\n").unwrap();
        // Two PORT lines in one read: the first pinhole is refused, and the
        // second's proxy port was picked with it.
        client
            .write_all(b"PORT 127,0,0,1,4,1\r\nPORT 127,0,0,1,4,2\r\n")
            .unwrap();
        let readable = Readiness {
            readable: true,
            hangup: false,
            urgent: false,
        };
        let start = Instant::now();
        let mut outcome = Outcome::Idle;
        while outcome != Outcome::Ended {
            assert!(start.elapsed() < Duration::from_secs(10), "never ended");
            outcome = session.on_event(Side::Server, readable, &mut ctx);
            if outcome != Outcome::Ended {
                outcome = session.on_event(Side::Client, readable, &mut ctx);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(session);
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert!(
            got.ends_with("421 Cannot open the data connection in the firewall.\r\n"),
            "{got:?}"
        );
        assert_eq!(
            ports.live(),
            0,
            "a proxy port is held after the session ended"
        );
    }

    #[test]
    fn timeouts_come_from_the_settings() {
        let settings = Settings {
            idle_timeout: Some(Duration::from_secs(7)),
            connect_timeout: CONNECT_TIMEOUT,
            engine: EngineConfig {
                anonymous_only: false,
                ipv6: false,
                rfc_mode: false,
                log_level: Level::Err,
            },
        };
        assert_eq!(
            settings.timeouts(),
            Timeouts {
                idle: Some(Duration::from_secs(7)),
                first_reply: Duration::from_secs(30),
            }
        );
    }
}
