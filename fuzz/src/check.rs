//! One engine under watch: every batch of actions it returns is checked
//! against the security properties of the daemon, and a violation panics,
//! which libFuzzer reports as a crash with the input that caused it.
//!
//! The properties, and why each matters:
//!
//! 1. **Pinholes stay between the session's own hosts.** Every
//!    [`Action::Open`] is exactly the pinhole [`Pinhole::passive`] or
//!    [`Pinhole::active`] builds from the session's client, orig, server and
//!    proxy addresses. The address in a PORT, EPRT or 227 line is never
//!    used: a client that could name it would make the firewall forward to
//!    any host behind it (an FTP bounce through the firewall), a server that
//!    could name it would make the client's data go to a third party.
//! 2. **The side that negotiates decides the direction.** Only a client line
//!    opens an active pinhole and only a server line a passive one; a
//!    server that could open an active pinhole would reach into the
//!    client's network at a port of its choosing.
//! 3. **No privileged ports.** The negotiated port is at least 1024, so no
//!    peer can use the proxy to reach ssh, smtp or another system service
//!    of the other side.
//! 4. **The port is the one the peer named.** It is among the numbers the
//!    peer's lines contain; a port from an overflow or a truncation (EPRT
//!    port 66560 read as 1024) or from stale state is a hole nobody asked
//!    for.
//! 5. **The proxy port comes from the allocator, and every one it gives is
//!    used.** The daemon releases a proxy port only when it sees the pinhole
//!    that holds it, so a port picked without an `Open` leaks for the life
//!    of the daemon, and a port not picked can clash with another session's
//!    redirect.
//! 6. **Each pinhole is announced, correctly, to the peer that will use it.**
//!    The action after an `Open` is the byte-exact PORT/EPRT to the server
//!    (proxy's address) or 227/229 to the client (orig's address) with the
//!    pinhole's proxy port. With `-6` it is never PORT or 227, and source
//!    port 20 is only used for PORT under `-r`.
//! 7. **No passive pinhole without a request.** Each pinhole announced
//!    with a 227 answers a PASV the client sent, each 229 an EPSV: a server
//!    cannot open holes with unsolicited or repeated replies.
//! 8. **No PORT or EPRT reaches the server except that announcement**, so a
//!    client can never hand the server an address of its choosing (an FTP
//!    bounce). "PORT or EPRT" is what a server may take as one: the keyword
//!    in any case followed by a space or a tab, since servers that split
//!    words with isspace(3) read `PORT\t…` as PORT.
//! 9. **With `-A`, only anonymous USER lines reach the server.**
//! 10. **Well-formed output.** Every line sent to either side ends with LF,
//!     is at most 500 bytes long and holds no NUL: peers and the daemon's
//!     own framing rely on it, and a proxy that forwarded an overlong or
//!     NUL-laden line would pass on what it is there to stop.
//! 11. **Ending is final and explained.** Nothing follows `End`; the action
//!     before it is the 421 line for the client (the driver adds none).
//! 12. **With `-6`, PASV and PORT end the session** in the batch that
//!     carries them.
//! 13. Log actions respect the `-D` threshold.

use std::collections::HashSet;

use ftp_proxy::ftp::rewrite::refusal;
use std::time::{Duration, Instant};

use ftp_proxy::ftp::{Action, Engine, Refusal, Timeouts};
use ftp_proxy::pinhole::{Mode, Pinhole, FTP_DATA_PORT};

use crate::input::{Setup, Side};
use crate::model::{self, ClientKind, Framer, MAX_LINE};
use crate::ports::{FuzzPorts, FIRST, LAST};

/// Splits bytes into lines, the last one without LF if the bytes do not
/// end with one.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split_inclusive(|&b| b == b'\n')
}

/// Printable form of a line for failure messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// The timers of the engine under test; the harness's clock never moves,
/// so they never fire.
const TIMEOUTS: Timeouts = Timeouts {
    idle: Some(Duration::from_secs(60)),
    first_reply: Duration::from_secs(30),
};

/// An engine and the state needed to judge what it does.
pub struct Harness {
    pub setup: Setup,
    engine: Engine,
    /// The time the engine was started, and the only time it is given.
    start: Instant,
    ports: FuzzPorts,
    ended: bool,
    client: Framer,
    server: Framer,
    client_ports: HashSet<u16>,
    server_ports: HashSet<u16>,
    /// PASV and EPSV lines the client sent that no 227/229 pinhole has
    /// answered yet.
    unanswered_pasv: usize,
    unanswered_epsv: usize,
    refusals: Vec<&'static [u8]>,
}

impl Harness {
    pub fn new(setup: Setup) -> Harness {
        let start = Instant::now();
        Harness {
            start,
            engine: Engine::new(setup.config, TIMEOUTS, setup.addrs, start),
            ports: FuzzPorts::new(setup.first_port),
            setup,
            ended: false,
            client: Framer::default(),
            server: Framer::default(),
            client_ports: HashSet::new(),
            server_ports: HashSet::new(),
            unanswered_pasv: 0,
            unanswered_epsv: 0,
            refusals: Refusal::ALL.iter().map(|&r| refusal(r)).collect(),
        }
    }

    /// Whether the engine has ended the session.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Feeds bytes from one side and checks the actions; returns them. After
    /// `End` the session is over: the driver drops it, so nothing is fed.
    pub fn feed(&mut self, side: Side, bytes: &[u8]) -> Vec<Action> {
        if self.ended {
            return Vec::new();
        }
        // The clock stands still: the timers are tested by the engine's own
        // virtual-clock tests, and here they must never fire.
        let now = self.start;
        self.engine.input(side, bytes, now, &mut self.ports);
        let out: Vec<Action> = std::iter::from_fn(|| self.engine.poll_action()).collect();
        let new_lines = match side {
            Side::Client => self.client.push(bytes),
            Side::Server => self.server.push(bytes),
        };
        let seen = match side {
            Side::Client => &mut self.client_ports,
            Side::Server => &mut self.server_ports,
        };
        for line in &new_lines {
            seen.extend(model::port_candidates(line));
            if side == Side::Client && line.len() <= MAX_LINE && !line.contains(&0) {
                match model::classify_client(line) {
                    ClientKind::Pasv => self.unanswered_pasv += 1,
                    ClientKind::Epsv => self.unanswered_epsv += 1,
                    _ => {}
                }
            }
        }
        let picked = self.ports.take();
        self.check_batch(side, &out, &picked);
        assert_eq!(
            self.engine.ended(),
            self.ended,
            "the engine's own account of the end differs from its actions"
        );
        assert!(
            self.ended || self.engine.poll_timeout().is_some(),
            "a live session without a timer (the first-reply and -t timers run)"
        );
        if self.setup.config.ipv6 && side == Side::Client {
            let pasv_or_port = new_lines.iter().any(|l| {
                l.len() <= MAX_LINE
                    && matches!(
                        model::classify_client(l),
                        ClientKind::Pasv | ClientKind::Port
                    )
            });
            assert!(
                !pasv_or_port || self.ended,
                "-6: PASV or PORT did not end the session: {:?}",
                new_lines.iter().map(|l| show(l)).collect::<Vec<_>>()
            );
        }
        out
    }

    fn check_batch(&mut self, side: Side, out: &[Action], picked: &[u16]) {
        let mut opened: Vec<u16> = Vec::new();
        let mut unannounced: Option<&Pinhole> = None;
        let mut previous: Option<&Action> = None;
        for action in out {
            assert!(!self.ended, "action after End: {action:?}");
            match action {
                Action::Log(level, text) => {
                    assert!(
                        *level <= self.setup.config.log_level,
                        "log at {level:?} above the -D threshold {:?}: {text}",
                        self.setup.config.log_level
                    );
                    continue;
                }
                Action::ToServer(bytes) | Action::ToClient(bytes) => {
                    self.check_lines(action, bytes);
                    let to_server = matches!(action, Action::ToServer(_));
                    let mut rest = lines(bytes);
                    if let Some(pinhole) = unannounced.take() {
                        let first = rest.next().unwrap_or_default();
                        self.check_announcement(pinhole, to_server, first);
                    }
                    if to_server {
                        for line in rest {
                            assert!(
                                !model::is_port_like(line),
                                "PORT/EPRT reaches the server without a pinhole: {}",
                                show(line)
                            );
                        }
                    }
                }
                Action::Open(pinhole) => {
                    assert!(
                        unannounced.is_none(),
                        "pinhole opened without announcing the previous one: {pinhole:?}"
                    );
                    self.check_pinhole(side, pinhole);
                    opened.push(pinhole.proxy_port);
                    unannounced = Some(pinhole);
                }
                Action::End => {
                    let announced = match previous {
                        Some(Action::ToClient(bytes)) => lines(bytes)
                            .last()
                            .is_some_and(|l| self.refusals.contains(&l)),
                        _ => false,
                    };
                    assert!(
                        announced,
                        "End without a 421 line for the client just before it: {previous:?}"
                    );
                    self.ended = true;
                }
            }
            previous = Some(action);
        }
        assert!(
            unannounced.is_none(),
            "pinhole never announced to the peer: {unannounced:?}"
        );
        assert_eq!(
            opened, picked,
            "proxy ports of the opened pinholes differ from the ports picked"
        );
    }

    fn check_lines(&self, action: &Action, bytes: &[u8]) {
        for line in lines(bytes) {
            assert!(
                line.ends_with(b"\n"),
                "line without LF in {action:?}: {}",
                show(line)
            );
            assert!(
                line.len() <= MAX_LINE,
                "line of {} bytes in {action:?}",
                line.len()
            );
            assert!(!line.contains(&0), "NUL in a line sent: {}", show(line));
            if self.setup.config.anonymous_only && matches!(action, Action::ToServer(_)) {
                assert!(
                    !model::is_user(line) || model::is_anonymous_user(line),
                    "-A: a non-anonymous USER reaches the server: {}",
                    show(line)
                );
            }
        }
    }

    fn check_pinhole(&self, side: Side, p: &Pinhole) {
        let addrs = &self.setup.addrs;
        let port = p.rdr.target_port;
        let from_20 = p.nat.source_ports == (FTP_DATA_PORT..=FTP_DATA_PORT);
        let (expected, named) = match p.mode {
            Mode::Passive => {
                assert_eq!(
                    side,
                    Side::Server,
                    "passive pinhole from a client line: {p:?}"
                );
                (
                    Pinhole::passive(addrs, port, p.proxy_port),
                    &self.server_ports,
                )
            }
            Mode::Active => {
                assert_eq!(
                    side,
                    Side::Client,
                    "active pinhole from a server line: {p:?}"
                );
                (
                    Pinhole::active(addrs, port, p.proxy_port, from_20),
                    &self.client_ports,
                )
            }
        };
        assert_eq!(
            p, &expected,
            "pinhole outside the session's addresses {addrs:?}"
        );
        assert!(port >= 1024, "pinhole to privileged port {port}: {p:?}");
        assert!(
            (FIRST..=LAST).contains(&p.proxy_port),
            "proxy port {} out of range",
            p.proxy_port
        );
        assert!(
            named.contains(&port),
            "pinhole port {port} was not named by the peer: {p:?}"
        );
    }

    fn check_announcement(&mut self, p: &Pinhole, to_server: bool, line: &[u8]) {
        let config = &self.setup.config;
        let addrs = &self.setup.addrs;
        let (valid, peer) = match p.mode {
            Mode::Active => (model::active_announcements(addrs.proxy, p.proxy_port), true),
            Mode::Passive => (
                model::passive_announcements(addrs.orig, p.proxy_port),
                false,
            ),
        };
        assert_eq!(
            to_server,
            peer,
            "{:?} pinhole announced to the wrong side: {}",
            p.mode,
            show(line)
        );
        assert!(
            valid.iter().any(|v| v.as_slice() == line),
            "pinhole {p:?} announced as {}, expected one of {:?}",
            show(line),
            valid.iter().map(|v| show(v)).collect::<Vec<_>>()
        );
        let old_style = line.starts_with(b"PORT") || line.starts_with(b"227");
        assert!(
            !(config.ipv6 && old_style),
            "-6: pinhole for PASV/PORT: {}",
            show(line)
        );
        if p.mode == Mode::Passive {
            let unanswered = if line.starts_with(b"227") {
                &mut self.unanswered_pasv
            } else {
                &mut self.unanswered_epsv
            };
            assert!(
                *unanswered > 0,
                "passive pinhole without a PASV/EPSV to answer: {}",
                show(line)
            );
            *unanswered -= 1;
        }
        if p.nat.source_ports == (FTP_DATA_PORT..=FTP_DATA_PORT) {
            assert!(
                config.rfc_mode && line.starts_with(b"PORT"),
                "source port 20 without -r and PORT: {}",
                show(line)
            );
        }
    }
}
