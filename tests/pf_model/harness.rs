//! The daemon's real event loop and sessions over loopback sockets, its
//! real pf backend on a [`Kernel`] model, a scripted FTP server and a
//! client, and the trace files.
//!
//! Addresses: IPv4 uses four different loopback addresses, so that every
//! field of a rule shows which one it took: the client 127.0.0.3, the proxy
//! listening on 127.0.0.1 (the original destination), the proxy's own
//! address towards the server 127.0.0.4 (`-a`), the server 127.0.0.1 (as if
//! redirected) or 127.0.0.2 (reverse mode, `-R`). IPv6 has only ::1.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ftp_proxy::filter::pf::{Pf, RuleOptions};
use ftp_proxy::filter::{Filter, SessionId};
use ftp_proxy::ftp::EngineConfig;
use ftp_proxy::log::Level;
use ftp_proxy::pinhole::Pinhole;
use ftp_proxy::serve::{Config, Server, StopHandle};
use ftp_proxy::session::{Settings, CONNECT_TIMEOUT};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::kernel::{Call, Kernel, ModelDev};

/// Every wait is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

/// The data port the scripted server announces for its n-th passive reply.
pub const SERVER_DATA_PORT: u16 = 40000;
/// The data port the client announces in PORT/EPRT.
pub const CLIENT_DATA_PORT: u16 = 2000;
/// The connections a lab's scripted server accepts before its thread ends
/// (one per session); [`Lab::connect`] refuses to start more sessions.
pub const SERVER_CONNECTIONS: usize = 16;

/// One scenario's command line, as far as pf is concerned.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub ipv6: bool,
    /// `-R`: a fixed server other than the original destination.
    pub reverse: bool,
    /// `-r`.
    pub rfc: bool,
    /// `-T`.
    pub tag: Option<String>,
    /// `-q`.
    pub queue: Option<String>,
    /// `-v` count.
    pub log: u8,
    /// The client's rdomain as SO_RTABLE would report it (Linux sockets
    /// have none: the filter is told this value instead).
    pub client_rdomain: Option<u32>,
    /// The proxy's rdomain (getrtable()).
    pub proxy_rdomain: u32,
}

/// The addresses of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub client: IpAddr,
    pub orig: IpAddr,
    pub server: IpAddr,
    pub proxy: IpAddr,
}

impl Addrs {
    fn of(o: &Opts) -> Addrs {
        if o.ipv6 {
            let lo = IpAddr::V6(Ipv6Addr::LOCALHOST);
            return Addrs {
                client: lo,
                orig: lo,
                server: lo,
                proxy: lo,
            };
        }
        let v4 = |d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d));
        Addrs {
            client: v4(3),
            orig: v4(1),
            server: if o.reverse { v4(2) } else { v4(1) },
            proxy: v4(4),
        }
    }
}

/// The real [`Pf`] told the client rdomain the test chose instead of the
/// socket's, recording what the backend said it installed
/// (`Filter::describe`, the text the daemon logs as `#<id> rules:`).
struct PfWithChosenRdomain {
    inner: Pf,
    client_rdomain: Option<u32>,
    described: Arc<Mutex<Vec<String>>>,
}

impl Filter for PfWithChosenRdomain {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()> {
        self.inner.open(id, pinhole)?;
        *self.described.lock().unwrap() = self.inner.describe(id);
        Ok(())
    }
    fn close(&mut self, id: SessionId) -> io::Result<()> {
        self.inner.close(id)
    }
    fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown()
    }
    fn set_client_rdomain(&mut self, id: SessionId, rdomain: Option<u32>) {
        self.inner
            .set_client_rdomain(id, self.client_rdomain.or(rdomain));
    }
    fn describe(&self, id: SessionId) -> Vec<String> {
        self.inner.describe(id)
    }
}

/// A running daemon on a model kernel, with its scripted server.
pub struct Lab {
    pub name: &'static str,
    pub opts: Opts,
    pub addrs: Addrs,
    pub dev: ModelDev,
    pub listen: SocketAddr,
    /// Lines the scripted server received (PORT/EPRT arguments).
    server_lines: Receiver<String>,
    described: Arc<Mutex<Vec<String>>>,
    /// Clients connected so far, each a connection to the scripted server.
    sessions: AtomicUsize,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<i32>>>,
    /// What start-up logged beyond the checks.
    pub startup: Vec<String>,
    trace: Option<PathBuf>,
}

impl Lab {
    /// Starts the daemon on `kernel`; panics if the backend refuses.
    pub fn start(name: &'static str, opts: Opts, kernel: Kernel) -> Lab {
        Lab::try_start(name, opts, kernel).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn try_start(name: &'static str, opts: Opts, kernel: Kernel) -> Result<Lab, String> {
        let addrs = Addrs::of(&opts);
        let dev = ModelDev::new(kernel);
        let rules = RuleOptions {
            log: opts.log,
            tag: opts.tag.clone(),
            queue: opts.queue.clone(),
            client_rdomain: None,
            proxy_rdomain: Some(opts.proxy_rdomain),
        };
        let pf = Pf::with_device(Box::new(dev.clone()), rules)?;
        let startup = pf.startup_messages().to_vec();
        let described = Arc::new(Mutex::new(Vec::new()));
        let filter = PfWithChosenRdomain {
            inner: pf,
            client_rdomain: opts.client_rdomain,
            described: Arc::clone(&described),
        };
        let (tx, server_lines) = mpsc::channel();
        let server = ftp_server(SocketAddr::new(addrs.server, 0), tx);
        let listener = TcpListener::bind(SocketAddr::new(addrs.orig, 0)).unwrap();
        let listen = listener.local_addr().unwrap();
        let config = Config {
            max_sessions: 100,
            ipv6: opts.ipv6,
            fixed_server: Some(server),
            source_addr: (!opts.ipv6).then(|| SocketAddr::new(addrs.proxy, 0)),
            session: Settings {
                idle_timeout: None,
                connect_timeout: CONNECT_TIMEOUT,
                engine: EngineConfig {
                    anonymous_only: false,
                    ipv6: opts.ipv6,
                    rfc_mode: opts.rfc,
                    log_level: Level::Debug,
                },
            },
        };
        let (ready_tx, ready) = mpsc::channel();
        let thread = thread::spawn(move || {
            let server = Server::new(listener, Box::new(filter), config)?;
            ready_tx.send(server.stop_handle()).unwrap();
            server.run()
        });
        let stop = ready.recv_timeout(WAIT).map_err(|e| e.to_string())?;
        let trace = std::env::var_os("PF_TRACE_DIR").map(|d| {
            let path = PathBuf::from(d).join(format!("{name}.trace"));
            let _ = std::fs::remove_file(&path);
            path
        });
        Ok(Lab {
            name,
            opts,
            addrs,
            dev,
            listen,
            server_lines,
            described,
            sessions: AtomicUsize::new(0),
            stop,
            thread: Some(thread),
            startup,
            trace,
        })
    }

    /// A client connected from the client address, past the banner.
    pub fn connect(&self) -> Client {
        let earlier = self.sessions.fetch_add(1, Ordering::SeqCst);
        assert!(
            earlier < SERVER_CONNECTIONS,
            "{}: the scripted server serves {SERVER_CONNECTIONS} sessions",
            self.name
        );
        let fd = socket::socket(
            if self.opts.ipv6 {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            },
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(SocketAddr::new(self.addrs.client, 0)),
        )
        .unwrap();
        socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(self.listen),
        )
        .unwrap();
        let stream = TcpStream::from(fd);
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        let banner = c.line();
        assert!(
            banner.starts_with("220 "),
            "{}: banner {banner:?}",
            self.name
        );
        c
    }

    /// The next line the scripted server received that is not a passive
    /// command or QUIT.
    pub fn server_got(&self) -> String {
        self.server_lines.recv_timeout(WAIT).unwrap()
    }

    /// The model's calls since the last take.
    pub fn calls(&self) -> Vec<Call> {
        self.dev.with(Kernel::take_calls)
    }

    /// What the backend last described as installed.
    pub fn described(&self) -> Vec<String> {
        self.described.lock().unwrap().clone()
    }

    /// The anchor of session `id` of this process.
    pub fn anchor(&self, id: SessionId) -> String {
        format!("ftp-proxy/{}.{id}", std::process::id())
    }

    /// Polls the model until `f` holds, at most [`WAIT`].
    pub fn wait_for(&self, what: &str, f: impl Fn(&Kernel) -> bool) {
        let start = Instant::now();
        while !self.dev.with(|k| f(k)) {
            assert!(
                start.elapsed() < WAIT,
                "{}: timed out waiting for {what}",
                self.name
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Appends a negotiation to the trace: the `pinhole` line, the calls,
    /// and the backend's own description of the rules.
    pub fn trace_pinhole(&self, n: &Negotiation, calls: &[Call]) {
        let o = &self.opts;
        let a = &self.addrs;
        let mut text = format!(
            "pinhole mode={} cmd={} client={} orig={} server={} proxy={} pport={} port={} \
             crd={} prd={} r={} tag={} queue={} log={} anchor={}\n",
            n.mode,
            n.cmd,
            a.client,
            a.orig,
            a.server,
            a.proxy,
            n.pport,
            n.port,
            o.client_rdomain.unwrap_or(0),
            o.proxy_rdomain,
            u8::from(o.rfc),
            o.tag.as_deref().unwrap_or("-"),
            o.queue.as_deref().unwrap_or("-"),
            o.log,
            n.anchor,
        );
        text += &calls_text(calls);
        for line in self.described() {
            text += &format!("describe {line}\n");
        }
        self.append(&text);
    }

    /// Appends a session's end to the trace.
    pub fn trace_close(&self, anchor: &str, calls: &[Call]) {
        self.append(&format!(
            "pinhole mode=close anchor={anchor}\n{}",
            calls_text(calls)
        ));
    }

    fn append(&self, text: &str) {
        if let Some(path) = &self.trace {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        }
    }

    /// Stops the daemon as SIGTERM would; returns the signal it reports.
    pub fn stop(mut self) -> i32 {
        self.stop.stop();
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

fn calls_text(calls: &[Call]) -> String {
    calls
        .iter()
        .map(|c| {
            let hex: String = c.bytes.iter().map(|b| format!("{b:02x}")).collect();
            match c.result {
                Ok(()) => format!("{} {hex}\n", c.name),
                Err(e) => format!("{} {hex} errno={}\n", c.name, e as i32),
            }
        })
        .collect()
}

/// What a negotiation was, as the test itself knows it.
#[derive(Debug, Clone)]
pub struct Negotiation {
    pub mode: &'static str,
    pub cmd: &'static str,
    pub pport: u16,
    pub port: u16,
    pub anchor: String,
}

pub struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    pub fn send(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
    }

    /// Sends `line` and returns the one-line reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Reads until the proxy closes.
    pub fn rest(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.reader.read_to_string(&mut rest);
        rest
    }
}

/// A scripted FTP server: a banner, then one reply per line. The n-th
/// PASV/EPSV of a connection announces port SERVER_DATA_PORT + n; PORT and
/// EPRT lines are sent to `lines` and answered 200.
fn ftp_server(addr: SocketAddr, lines: mpsc::Sender<String>) -> SocketAddr {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().take(SERVER_CONNECTIONS) {
            let Ok(mut conn) = conn else { return };
            let lines = lines.clone();
            thread::spawn(move || {
                conn.set_read_timeout(Some(WAIT)).unwrap();
                let ip = conn.local_addr().unwrap().ip();
                let _ = conn.write_all(b"220 model server\r\n");
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let mut passive = 0;
                while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                    let verb = line.split_whitespace().next().unwrap_or("").to_string();
                    let reply = match verb.as_str() {
                        "PASV" | "EPSV" => {
                            passive += 1;
                            let port = SERVER_DATA_PORT + passive;
                            if verb == "PASV" {
                                let IpAddr::V4(v4) = ip else { unreachable!() };
                                let [a, b, c, d] = v4.octets();
                                format!(
                                    "227 Entering Passive Mode ({a},{b},{c},{d},{},{})\r\n",
                                    port >> 8,
                                    port & 0xff
                                )
                            } else {
                                format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
                            }
                        }
                        "PORT" | "EPRT" => {
                            let _ = lines.send(line.trim_end().to_string());
                            "200 command successful\r\n".to_string()
                        }
                        "QUIT" => "221 bye\r\n".to_string(),
                        _ => "200 ok\r\n".to_string(),
                    };
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    if verb == "QUIT" {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}
