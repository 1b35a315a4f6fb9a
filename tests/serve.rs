//! The event loop and session driver over real loopback sockets: a client,
//! the daemon in reverse mode (`-R`, so no redirect is needed) and a
//! scripted FTP server, with a filter that records what it was asked to do.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ftp_proxy::filter::{Filter, SessionId};
use ftp_proxy::ftp::EngineConfig;
use ftp_proxy::log::Level;
use ftp_proxy::pinhole::{Mode, Pinhole};
use ftp_proxy::serve::{Config, Server, StopHandle};
use ftp_proxy::session::{Settings, CONNECT_TIMEOUT};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Record {
    opened: Vec<(SessionId, Pinhole)>,
    /// The sessions whose client rdomain was noted.
    rdomain_noted: Vec<SessionId>,
    closed: Vec<SessionId>,
    shut_down: bool,
    fail_open: bool,
    /// When set, the next `open` holds the event loop until this receives
    /// (at most [`WAIT`]), and `holding` says that it does.
    hold_open: Option<mpsc::Receiver<()>>,
    holding: bool,
}

/// A filter that records its calls, shared with the test thread.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Record>>);

impl Recorder {
    fn get<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.0.lock().unwrap())
    }

    /// Polls until `f` holds, at most [`WAIT`].
    fn wait_for(&self, what: &str, f: impl Fn(&Record) -> bool) {
        let start = Instant::now();
        while !self.get(&f) {
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Filter for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()> {
        let hold = self.0.lock().unwrap().hold_open.take();
        if let Some(release) = hold {
            self.0.lock().unwrap().holding = true;
            let _ = release.recv_timeout(WAIT);
            self.0.lock().unwrap().holding = false;
        }
        let mut r = self.0.lock().unwrap();
        if r.fail_open {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        r.opened.push((id, pinhole.clone()));
        Ok(())
    }
    fn close(&mut self, id: SessionId) -> io::Result<()> {
        self.0.lock().unwrap().closed.push(id);
        Ok(())
    }
    fn set_client_rdomain(&mut self, id: SessionId, _rdomain: Option<u32>) {
        self.0.lock().unwrap().rdomain_noted.push(id);
    }
    fn shutdown(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().shut_down = true;
        Ok(())
    }
}

fn config(server: Option<SocketAddr>) -> Config {
    Config {
        max_sessions: 100,
        ipv6: false,
        fixed_server: server,
        source_addr: None,
        session: Settings {
            idle_timeout: None,
            connect_timeout: CONNECT_TIMEOUT,
            engine: EngineConfig {
                anonymous_only: false,
                ipv6: false,
                rfc_mode: false,
                log_level: Level::Notice,
            },
        },
    }
}

struct Proxy {
    addr: SocketAddr,
    stop: StopHandle,
    thread: JoinHandle<io::Result<i32>>,
}

impl Proxy {
    fn start(config: Config, filter: Recorder) -> Proxy {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let server = Server::new(listener, Box::new(filter), config).unwrap();
            tx.send((server.listen_addr(), server.stop_handle()))
                .unwrap();
            server.run()
        });
        let (addr, stop) = rx.recv_timeout(WAIT).unwrap();
        Proxy { addr, stop, thread }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn stop(self) -> i32 {
        self.stop.stop();
        self.thread.join().unwrap().unwrap()
    }
}

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until the proxy closes; returns what came.
    fn rest(&mut self) -> String {
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest).unwrap();
        rest
    }
}

/// A scripted FTP server on loopback: sends `banner` (if any) to each
/// connection, then answers each line with `reply(line)`.
fn ftp_server(banner: Option<&'static [u8]>, reply: fn(&str) -> String) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().take(8) {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                conn.set_read_timeout(Some(WAIT)).unwrap();
                if let Some(b) = banner {
                    conn.write_all(b).unwrap();
                }
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                    let _ = conn.write_all(reply(&line).as_bytes());
                    line.clear();
                }
            });
        }
    });
    addr
}

fn echo_server() -> SocketAddr {
    ftp_server(Some(b"220 fake server\r\n"), |line| match line {
        "QUIT\r\n" => "221 bye\r\n".into(),
        "PASV\r\n" => "227 Entering Passive Mode (127,0,0,1,200,10)\r\n".into(),
        _ => format!("200 got {}", line),
    })
}

/// A port on loopback where nothing listens.
fn closed_port() -> SocketAddr {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn relays_lines_both_ways_and_closes_with_the_client() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut c = proxy.connect();
    assert_eq!(c.line(), "220 fake server\r\n");
    c.send(b"NOOP\r\n");
    assert_eq!(c.line(), "200 got NOOP\r\n");
    c.send(b"QUIT\r\n");
    assert_eq!(c.line(), "221 bye\r\n");
    drop(c);
    filter.wait_for("the session's pinholes to be removed", |r| r.closed == [1]);
    assert_eq!(proxy.stop(), libc::SIGTERM);
    assert!(filter.get(|r| r.shut_down));
}

#[test]
fn passive_reply_opens_a_pinhole_before_the_client_sees_it() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut c = proxy.connect();
    c.line();
    c.send(b"PASV\r\n");
    let reply = c.line();
    assert!(
        reply.starts_with("227 Entering Passive Mode (127,0,0,1,"),
        "{reply:?}"
    );
    let opened = filter.get(|r| r.opened.clone());
    assert_eq!(opened.len(), 1);
    let (id, pinhole) = &opened[0];
    assert_eq!(*id, 1);
    assert_eq!(pinhole.mode, Mode::Passive);
    assert_eq!(pinhole.rdr.target_port, 200 * 256 + 10);
    let pport = pinhole.proxy_port;
    assert!(
        reply.ends_with(&format!(",{},{})\r\n", pport / 256, pport % 256)),
        "{reply:?}"
    );
    proxy.stop();
}

#[test]
fn failed_pinhole_ends_the_session_with_421_and_no_227() {
    let filter = Recorder::default();
    filter.0.lock().unwrap().fail_open = true;
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut c = proxy.connect();
    c.line();
    c.send(b"PASV\r\n");
    let rest = c.rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    assert!(!rest.contains("227"), "{rest:?}");
    filter.wait_for("the session to end", |r| r.closed == [1]);
    proxy.stop();
}

#[test]
fn session_limit_turns_the_next_client_away_with_421() {
    let mut cfg = config(Some(echo_server()));
    cfg.max_sessions = 1;
    let proxy = Proxy::start(cfg, Recorder::default());
    let mut first = proxy.connect();
    assert_eq!(first.line(), "220 fake server\r\n");
    let mut second = proxy.connect();
    let rest = second.rest();
    assert!(
        rest.starts_with("421 ") && rest.ends_with("\r\n"),
        "{rest:?}"
    );
    // The first session is unaffected.
    first.send(b"NOOP\r\n");
    assert_eq!(first.line(), "200 got NOOP\r\n");
    proxy.stop();
}

#[test]
fn idle_client_gets_421_after_the_timeout() {
    let mut cfg = config(Some(echo_server()));
    cfg.session.idle_timeout = Some(Duration::from_secs(1));
    let proxy = Proxy::start(cfg, Recorder::default());
    let started = Instant::now();
    let mut c = proxy.connect();
    c.line();
    let rest = c.rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    proxy.stop();
}

#[test]
fn server_that_never_speaks_times_out_with_421() {
    let mut cfg = config(Some(ftp_server(None, |_| String::new())));
    cfg.session.connect_timeout = Duration::from_secs(1);
    let proxy = Proxy::start(cfg, Recorder::default());
    let started = Instant::now();
    let rest = proxy.connect().rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    proxy.stop();
}

#[test]
fn unreachable_server_gets_421_and_the_filter_forgets_the_session() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(closed_port())), filter.clone());
    let rest = proxy.connect().rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    // What a backend noted at accept (OpenBSD: the client's rdomain) is
    // released even though the session never started.
    filter.wait_for("the session to be closed in the filter", |r| {
        r.closed == [1]
    });
    proxy.stop();
}

#[test]
fn connection_that_was_not_redirected_is_refused() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(None), filter.clone());
    let rest = proxy.connect().rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    proxy.stop();
    // Nothing is noted in the filter for it that no close would forget
    // (pf's map of client rdomains would grow with each such connection).
    filter.get(|r| {
        for id in &r.rdomain_noted {
            assert!(r.closed.contains(id), "session {id} noted, never closed");
        }
    });
}

#[test]
fn stop_ends_every_session_with_421_and_removes_everything() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut a = proxy.connect();
    let mut b = proxy.connect();
    a.line();
    b.line();
    assert_eq!(proxy.stop(), libc::SIGTERM);
    for c in [&mut a, &mut b] {
        let rest = c.rest();
        assert!(rest.starts_with("421 "), "{rest:?}");
    }
    let (mut closed, shut_down) = filter.get(|r| (r.closed.clone(), r.shut_down));
    closed.sort();
    assert_eq!(closed, [1, 2]);
    assert!(shut_down);
}

#[test]
fn lines_and_the_close_sent_together_are_all_handled() {
    // The client's last line and its FIN may arrive in one readiness
    // event; the read that returns the line is short, and the end of the
    // stream must still be read, not left for an event that never comes.
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    for round in 1..=5 {
        let mut c = proxy.connect();
        assert_eq!(c.line(), "220 fake server\r\n");
        c.send(b"NOOP\r\nQUIT\r\n");
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        filter.wait_for("the half-closed session to end", |r| {
            r.closed.len() == round
        });
    }
    proxy.stop();
}

#[test]
fn a_5000_line_pipeline_is_answered_line_for_line() {
    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut c = proxy.connect();
    assert_eq!(c.line(), "220 fake server\r\n");
    let lines: Vec<String> = (0..5000).map(|i| format!("NOOP {i}\r\n")).collect();
    let writer = {
        let mut stream = c.stream.try_clone().unwrap();
        let all = lines.concat();
        thread::spawn(move || stream.write_all(all.as_bytes()))
    };
    for line in &lines {
        assert_eq!(c.line(), format!("200 got {line}"));
    }
    writer.join().unwrap().unwrap();
    proxy.stop();
}

#[test]
fn bytes_after_urgent_data_are_read_without_a_new_event() {
    // A client's ABOR may come with urgent data (RFC 959's Telnet Synch).
    // A read stops short at the urgent mark; what follows the mark must
    // still be read, though no new bytes will raise another event. The
    // event loop is held in the filter while the bytes arrive, so the
    // daemon sees them all in one event.
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd;

    let filter = Recorder::default();
    let proxy = Proxy::start(config(Some(echo_server())), filter.clone());
    let mut holder = proxy.connect();
    assert_eq!(holder.line(), "220 fake server\r\n");
    let (release, held) = mpsc::channel();
    filter.0.lock().unwrap().hold_open = Some(held);
    holder.send(b"PASV\r\n");
    filter.wait_for("the event loop to be held in the filter", |r| r.holding);

    let mut c = proxy.connect();
    c.stream.set_nodelay(true).unwrap();
    let fd = c.stream.as_raw_fd();
    // "X" is the urgent byte: out of band, so the stream is the two NOOPs.
    send(fd, b"NOOP 1\r\nX", MsgFlags::MSG_OOB).unwrap();
    send(fd, b"NOOP 2\r\n", MsgFlags::empty()).unwrap();
    release.send(()).unwrap();

    assert!(holder.line().starts_with("227 "));
    assert_eq!(c.line(), "220 fake server\r\n");
    assert_eq!(c.line(), "200 got NOOP 1\r\n");
    assert_eq!(c.line(), "200 got NOOP 2\r\n");
    proxy.stop();
}
