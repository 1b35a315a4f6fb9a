//! The daemon's event loop: the listener (with one descriptor in reserve
//! for when accept(2) runs out), the session table and its `-m` limit, the
//! timer queue that wakes each session at its engine's deadline, and the
//! signals that end it all.
//!
//! One thread, one poll (epoll on Linux, kqueue on OpenBSD), as the
//! original's libevent loop. Everything that needs a new file descriptor of
//! a kind the sandbox forbids (the poll instance, the signal pipe) is created
//! in [`Server::new`], before the sandbox is entered; [`Server::run`] only
//! accepts, connects, reads and writes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::SigId;

use crate::filter::{Filter, SessionId};
use crate::ftp::Refusal;
use crate::log::Level;
use crate::log_at;
use crate::ports::PortAllocator;
use crate::session::{self, Context, Endpoints, Outcome, Readiness, Session, Settings, Side};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Session tokens: `FIRST_SESSION + 2 * slot + side`.
const FIRST_SESSION: usize = 2;

/// How long accepting pauses after EMFILE/ENFILE when not even the
/// reserve descriptor helps, as the original always does, and after any
/// accept(2) error that is not one connection's own.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// One descriptor held back for the moment accept(2) fails for want of
/// descriptors (EMFILE, ENFILE): closing it lets the waiting client be
/// accepted and told why with a 421 instead of waiting in the backlog in
/// silence. It is an unconnected TCP socket: the kind of descriptor the
/// daemon creates for every server connection, so the sandbox allows it.
#[derive(Debug)]
struct Reserve {
    family: AddressFamily,
    fd: Option<OwnedFd>,
}

impl Reserve {
    fn new(family: AddressFamily) -> Reserve {
        let mut reserve = Reserve { family, fd: None };
        reserve.refill();
        reserve
    }

    /// Takes the descriptor back if it is not held; `false` when there is
    /// still none to take.
    fn refill(&mut self) -> bool {
        if self.fd.is_none() {
            self.fd =
                socket::socket(self.family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).ok();
        }
        self.fd.is_some()
    }

    /// Closes the descriptor, if held, so that one is free.
    fn release(&mut self) -> bool {
        self.fd.take().is_some()
    }
}

/// What the reserve descriptor's accept found.
#[derive(Debug)]
enum ReserveAccept {
    /// A client, now turned away with the 421, or one whose connection
    /// failed before it was taken: more may wait.
    TryAgain,
    /// Nobody waits: the backlog is empty.
    NobodyWaits,
    /// There was no reserve descriptor to free.
    NoReserve,
    /// The accept with the reserve failed with this error.
    AcceptFailed(io::Error),
}

/// What an accept(2) error means for the connections still waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptError {
    /// One connection failed (or the call was interrupted): the next may
    /// be fine, so accepting goes on.
    Connection,
    /// No descriptor left (EMFILE, ENFILE): the reserve's turn.
    NoDescriptors,
    /// Anything else (ENOBUFS, ENOMEM, …): accepting pauses and is tried
    /// again, since the edge-triggered listener raises no new event for
    /// the clients already waiting.
    Other,
}

/// Errors of one connection, or of the call itself, that accept(2) passes
/// on (Linux's accept(2) lists the network errors under "Error handling":
/// they are to be treated like EAGAIN, by accepting again).
const CONNECTION_ERRORS: &[i32] = &[
    libc::ECONNABORTED,
    libc::EINTR,
    libc::EPROTO,
    libc::ENOPROTOOPT,
    libc::ENETDOWN,
    libc::ENETUNREACH,
    libc::EHOSTDOWN,
    libc::EHOSTUNREACH,
    libc::EOPNOTSUPP,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    libc::ENONET,
];

fn accept_error(e: &io::Error) -> AcceptError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => AcceptError::NoDescriptors,
        Some(errno) if CONNECTION_ERRORS.contains(&errno) => AcceptError::Connection,
        _ if e.kind() == io::ErrorKind::Interrupted => AcceptError::Connection,
        _ => AcceptError::Other,
    }
}

/// Sessions that stopped pumping at the round limit with bytes waiting, in
/// turn. A session is queued at most once, however many readiness events
/// it has between two turns, so each gets one share of
/// [`Session::pump`]'s rounds per turn of the loop.
#[derive(Debug, Default)]
struct BusyQueue {
    order: VecDeque<(usize, SessionId)>,
    queued: HashSet<(usize, SessionId)>,
}

impl BusyQueue {
    fn push(&mut self, slot: usize, id: SessionId) {
        if self.queued.insert((slot, id)) {
            self.order.push_back((slot, id));
        }
    }

    fn pop(&mut self) -> Option<(usize, SessionId)> {
        let entry = self.order.pop_front()?;
        self.queued.remove(&entry);
        Some(entry)
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What the event loop needs from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-m`.
    pub max_sessions: usize,
    /// `-6`: original destinations are IPv6.
    pub ipv6: bool,
    /// `-R`/`-P`: reverse mode.
    pub fixed_server: Option<SocketAddr>,
    /// `-a`.
    pub source_addr: Option<SocketAddr>,
    pub session: Settings,
}

/// Stops a running [`Server`] as SIGTERM would, from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    pipe: Arc<StdUnixStream>,
    which: Arc<AtomicUsize>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.which.store(SIGTERM as usize, Ordering::SeqCst);
        let _ = (&*self.pipe).write(&[0]);
    }
}

/// The daemon.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    listen_addr: SocketAddr,
    filter: Box<dyn Filter>,
    ports: PortAllocator,
    config: Config,
    sessions: Vec<Option<Session>>,
    free: Vec<usize>,
    count: usize,
    next_id: SessionId,
    /// (deadline, slot, session id); stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, usize, SessionId)>>,
    busy: BusyQueue,
    accept_paused_until: Option<Instant>,
    reserve: Reserve,
    signal_pipe: UnixStream,
    signal_write: Arc<StdUnixStream>,
    signal_which: Arc<AtomicUsize>,
    signal_ids: Vec<SigId>,
}

impl Server {
    /// Sets up the poll instance and the signal handlers. `listener` is
    /// bound and listening.
    pub fn new(
        listener: std::net::TcpListener,
        filter: Box<dyn Filter>,
        config: Config,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let listen_addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;

        let (read, write) = StdUnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut signal_pipe = UnixStream::from_std(read);
        poll.registry()
            .register(&mut signal_pipe, SIGNALS, Interest::READABLE)?;
        let signal_which = Arc::new(AtomicUsize::new(0));
        let signal_ids = crate::sys::notify_signals(
            &[SIGHUP, SIGINT, SIGTERM],
            write.as_raw_fd(),
            Arc::clone(&signal_which),
        )?;
        Ok(Server {
            poll,
            listener,
            listen_addr,
            filter,
            ports: PortAllocator::new(),
            config,
            sessions: Vec::new(),
            free: Vec::new(),
            count: 0,
            next_id: 1,
            timers: BinaryHeap::new(),
            busy: BusyQueue::default(),
            accept_paused_until: None,
            reserve: Reserve::new(match listen_addr {
                SocketAddr::V4(_) => AddressFamily::Inet,
                SocketAddr::V6(_) => AddressFamily::Inet6,
            }),
            signal_pipe,
            signal_write: Arc::new(write),
            signal_which,
            signal_ids,
        })
    }

    /// The address the listener is bound to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// A handle that stops [`Server::run`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            pipe: Arc::clone(&self.signal_write),
            which: Arc::clone(&self.signal_which),
        }
    }

    /// Serves until SIGTERM, SIGINT or SIGHUP; then ends every session,
    /// removes every pinhole and returns the signal's number.
    pub fn run(mut self) -> io::Result<i32> {
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log_at!(Level::Err, "event loop error: {e}");
                self.shutdown();
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => {
                        if let Some(sig) = self.take_signal() {
                            log_at!(Level::Err, "exiting on signal {sig}");
                            self.shutdown();
                            return Ok(sig);
                        }
                    }
                    Token(t) => {
                        let slot = (t - FIRST_SESSION) / 2;
                        let side = if (t - FIRST_SESSION) % 2 == 0 {
                            Side::Client
                        } else {
                            Side::Server
                        };
                        let readiness = Readiness::of(event);
                        self.with_session(slot, None, |s, ctx| s.on_event(side, readiness, ctx));
                    }
                }
            }
            self.run_busy();
            self.run_timers();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.busy.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let timer = self.timers.peek().map(|Reverse((when, _, _))| *when);
        [timer, self.accept_paused_until]
            .into_iter()
            .flatten()
            .min()
            .map(|when| when.saturating_duration_since(now))
    }

    fn take_signal(&mut self) -> Option<i32> {
        let mut buf = [0u8; 16];
        while matches!(self.signal_pipe.read(&mut buf), Ok(n) if n > 0) {}
        match self.signal_which.swap(0, Ordering::SeqCst) {
            0 => None,
            sig => Some(sig as i32),
        }
    }

    /// Accepts every waiting connection (the listener is edge-triggered).
    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => match accept_error(&e) {
                    AcceptError::Connection => {}
                    // accept(2) takes a descriptor before it looks for a
                    // client, so EMFILE also comes when nobody waits: only
                    // the reserve's accept says whether someone did.
                    AcceptError::NoDescriptors => match self.refuse_with_reserve(&e) {
                        ReserveAccept::TryAgain => {}
                        ReserveAccept::NobodyWaits => return,
                        ReserveAccept::NoReserve => {
                            log_at!(Level::Crit, "accept() failed: {e}");
                            return self.pause_accepting();
                        }
                        ReserveAccept::AcceptFailed(again) => {
                            log_at!(Level::Crit, "accept() failed: {again}");
                            return self.pause_accepting();
                        }
                    },
                    AcceptError::Other => {
                        log_at!(Level::Crit, "accept() failed: {e}");
                        return self.pause_accepting();
                    }
                },
            }
        }
    }

    /// Stops accepting for [`ACCEPT_PAUSE`]; `run_timers` then accepts
    /// again whether or not a new connection raised an event.
    fn pause_accepting(&mut self) {
        self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
    }

    /// accept(2) failed with `e` for want of descriptors: frees the
    /// reserve, accepts the waiting client with it, tells it why with a 421
    /// and closes it, then takes the reserve back, as a client over `-m` is
    /// turned away. Says whether to accept again (a client was refused, or
    /// its connection failed first), nobody waited, or there was no reserve
    /// to free or the accept failed otherwise (the caller then pauses
    /// accepting).
    fn refuse_with_reserve(&mut self, e: &io::Error) -> ReserveAccept {
        if !self.reserve.release() {
            return ReserveAccept::NoReserve;
        }
        let refused = match self.listener.accept() {
            Ok((mut client, peer)) => {
                log_at!(
                    Level::Err,
                    "accept() failed: {e}, refusing connection from {}",
                    peer.ip()
                );
                session::refuse(&mut client, Refusal::NoDescriptors);
                ReserveAccept::TryAgain
            }
            Err(again) if again.kind() == io::ErrorKind::WouldBlock => ReserveAccept::NobodyWaits,
            Err(again) if accept_error(&again) == AcceptError::Connection => {
                ReserveAccept::TryAgain
            }
            Err(again) => ReserveAccept::AcceptFailed(again),
        };
        if !self.reserve.refill() {
            log_at!(Level::Crit, "cannot take the reserve descriptor back");
        }
        refused
    }

    /// Starts a session for an accepted client, or turns it away with a 421.
    fn admit(&mut self, mut client: TcpStream, peer: SocketAddr) {
        if self.count >= self.config.max_sessions {
            log_at!(
                Level::Err,
                "client limit ({}) reached, refusing connection from {}",
                self.config.max_sessions,
                peer.ip()
            );
            session::refuse(&mut client, Refusal::SessionLimit);
            return;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        log_at!(Level::Debug, "#{id} accepted connection from {}", peer.ip());

        let orig = match crate::sys::original_destination(&client, self.config.ipv6) {
            Ok(a) => a,
            Err(e) => {
                log_at!(
                    Level::Crit,
                    "#{id} cannot find the original destination: {e}"
                );
                session::refuse(&mut client, Refusal::ServerUnreachable);
                return;
            }
        };
        let local = client.local_addr().ok();
        if self.config.fixed_server.is_none()
            && Some(orig) == local
            && orig.port() == self.listen_addr.port()
        {
            // Without a redirect the destination is the proxy itself, and
            // connecting there would loop until the session limit.
            log_at!(
                Level::Err,
                "#{id} connection from {} was not redirected to the proxy, refusing",
                peer.ip()
            );
            session::refuse(&mut client, Refusal::NotRedirected);
            return;
        }
        // Noted only for a connection that becomes a session: every path
        // from here on closes the id in the filter, which forgets it.
        match crate::sys::client_rdomain(&client) {
            Ok(rdomain) => self.filter.set_client_rdomain(id, rdomain),
            Err(e) => {
                log_at!(Level::Crit, "#{id} getsockopt failed: {e}");
                session::refuse(&mut client, Refusal::ServerUnreachable);
                return;
            }
        }
        let ends = Endpoints {
            client: peer,
            orig,
            server: self.config.fixed_server.unwrap_or(orig),
            source: self.config.source_addr,
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.sessions.push(None);
            self.sessions.len() - 1
        });
        let mut ctx = Context {
            filter: self.filter.as_mut(),
            ports: &mut self.ports,
            settings: &self.config.session,
            now: Instant::now(),
        };
        let Some(mut session) = Session::start(
            id,
            client,
            ends,
            self.count + 1,
            self.config.max_sessions,
            &mut ctx,
        ) else {
            // Forget what the filter noted for it (the client's rdomain).
            let _ = ctx.filter.close(id);
            self.free.push(slot);
            return;
        };
        let registered = session.register(
            self.poll.registry(),
            Token(FIRST_SESSION + 2 * slot),
            Token(FIRST_SESSION + 2 * slot + 1),
        );
        if let Err(e) = registered {
            log_at!(Level::Crit, "#{id} cannot watch the session's sockets: {e}");
            session.end(Some(Refusal::ServerUnreachable), &mut ctx);
            self.free.push(slot);
            return;
        }
        self.sessions[slot] = Some(session);
        self.count += 1;
        self.schedule(slot);
    }

    /// Runs `f` on the session in `slot` (if it is session `id`, when given)
    /// and does the bookkeeping its outcome asks for.
    fn with_session(
        &mut self,
        slot: usize,
        id: Option<SessionId>,
        f: impl FnOnce(&mut Session, &mut Context<'_>) -> Outcome,
    ) {
        let Some(Some(session)) = self.sessions.get_mut(slot) else {
            return;
        };
        if id.is_some_and(|id| id != session.id) {
            return;
        }
        let mut ctx = Context {
            filter: self.filter.as_mut(),
            ports: &mut self.ports,
            settings: &self.config.session,
            now: Instant::now(),
        };
        let mut outcome = f(session, &mut ctx);
        if outcome != Outcome::Ended {
            if let Err(e) = session.update_interest(self.poll.registry()) {
                log_at!(
                    Level::Crit,
                    "#{} cannot watch the session's sockets: {e}",
                    session.id
                );
                outcome = session.end(None, &mut ctx);
            }
        }
        let id = session.id;
        match outcome {
            Outcome::Ended => self.remove(slot),
            Outcome::Busy => {
                self.busy.push(slot, id);
                self.schedule(slot);
            }
            Outcome::Idle => self.schedule(slot),
        }
    }

    fn run_busy(&mut self) {
        for _ in 0..self.busy.len() {
            let Some((slot, id)) = self.busy.pop() else {
                break;
            };
            self.with_session(slot, Some(id), |s, ctx| s.pump(ctx));
        }
    }

    /// Puts the session's earliest deadline in the timer queue if it is
    /// earlier than what the queue holds for it.
    fn schedule(&mut self, slot: usize) {
        let Some(Some(session)) = self.sessions.get_mut(slot) else {
            return;
        };
        if let Some(deadline) = session.deadline() {
            if session.scheduled.is_none_or(|s| deadline < s) {
                session.scheduled = Some(deadline);
                self.timers.push(Reverse((deadline, slot, session.id)));
            }
        }
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((when, slot, id))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let Some(Some(session)) = self.sessions.get_mut(slot) else {
                continue;
            };
            if session.id != id || session.scheduled != Some(when) {
                continue;
            }
            session.scheduled = None;
            self.with_session(slot, Some(id), |s, ctx| s.expire(ctx));
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.accept_all();
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(mut session) = self.sessions[slot].take() {
            session.deregister(self.poll.registry());
            self.free.push(slot);
            self.count -= 1;
        }
        // Its descriptors are free: if the reserve was lost, take it back.
        self.reserve.refill();
    }

    /// Ends every session with a 421 and removes everything the filter holds.
    fn shutdown(&mut self) {
        for slot in 0..self.sessions.len() {
            self.with_session(slot, None, |s, ctx| s.end(Some(Refusal::Shutdown), ctx));
        }
        if let Err(e) = self.filter.shutdown() {
            log_at!(Level::Err, "{} clean-up failed: {e}", self.filter.name());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for id in self.signal_ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_frees_one_descriptor_and_takes_it_back() {
        let mut reserve = Reserve::new(AddressFamily::Inet);
        let held = reserve.fd.as_ref().map(|fd| fd.as_raw_fd());
        assert!(held.is_some(), "the reserve is taken at start-up");
        assert!(reserve.release());
        assert!(!reserve.release(), "there is only one to free");
        assert!(reserve.refill());
        assert!(reserve.fd.is_some());
        assert!(reserve.refill(), "taking it back twice holds one");
    }

    #[test]
    fn a_session_is_in_the_busy_queue_at_most_once() {
        let mut busy = BusyQueue::default();
        busy.push(0, 1);
        busy.push(1, 2);
        busy.push(0, 1);
        assert_eq!(busy.len(), 2, "a second event does not queue it again");
        assert_eq!(busy.pop(), Some((0, 1)));
        busy.push(0, 1);
        assert_eq!(busy.pop(), Some((1, 2)));
        assert_eq!(
            busy.pop(),
            Some((0, 1)),
            "once taken, it may be queued again"
        );
        assert_eq!(busy.pop(), None);
        assert!(busy.is_empty());
    }

    #[test]
    fn accept_errors_go_on_use_the_reserve_or_pause() {
        for (errno, want) in [
            (libc::EMFILE, AcceptError::NoDescriptors),
            (libc::ENFILE, AcceptError::NoDescriptors),
            (libc::ECONNABORTED, AcceptError::Connection),
            (libc::EINTR, AcceptError::Connection),
            (libc::EPROTO, AcceptError::Connection),
            (libc::ENETDOWN, AcceptError::Connection),
            (libc::EHOSTUNREACH, AcceptError::Connection),
            (libc::ENETUNREACH, AcceptError::Connection),
            (libc::EOPNOTSUPP, AcceptError::Connection),
            (libc::ENOBUFS, AcceptError::Other),
            (libc::ENOMEM, AcceptError::Other),
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(accept_error(&e), want, "{e}");
        }
    }
}
