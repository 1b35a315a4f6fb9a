//! Byte-exact tests of the engine: whole exchanges in, actions out.

use super::*;
use crate::pinhole::{Mode, FTP_DATA_PORT, NAT_PORTS};
use std::time::{Duration, Instant};

/// Proxy ports handed out in order (from 50000 in most tests), so
/// rewritten lines are known; the ports given back are recorded.
struct Sequential {
    next: u16,
    released: Vec<u16>,
}

impl Sequential {
    fn from(next: u16) -> Sequential {
        Sequential {
            next,
            released: Vec::new(),
        }
    }
}

impl ProxyPorts for Sequential {
    fn pick(&mut self, avoid: u16) -> u16 {
        let mut port = self.next;
        if port == avoid {
            port = port.wrapping_add(1).max(49152);
        }
        self.next = port.wrapping_add(1).max(49152);
        port
    }

    fn release(&mut self, port: u16) {
        self.released.push(port);
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A reverse-mode session, so every address differs and a mix-up shows.
fn addrs() -> SessionAddrs {
    SessionAddrs {
        client: ip("10.0.0.2"),
        orig: ip("192.0.2.10"),
        server: ip("198.51.100.20"),
        proxy: ip("198.51.100.1"),
    }
}

fn addrs6() -> SessionAddrs {
    SessionAddrs {
        client: ip("2001:db8:1::2"),
        orig: ip("2001:db8:2::10"),
        server: ip("2001:db8:3::20"),
        proxy: ip("2001:db8:3::1"),
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        anonymous_only: false,
        ipv6: false,
        rfc_mode: false,
        log_level: Level::Debug,
    }
}

/// The timers of a session started with `-t 60`.
const TIMEOUTS: Timeouts = Timeouts {
    idle: Some(Duration::from_secs(60)),
    first_reply: Duration::from_secs(30),
};

/// The engine, its port source and a virtual clock that only the test
/// moves: no test sleeps.
struct Session {
    engine: Engine,
    ports: Sequential,
    start: Instant,
    now: Instant,
}

impl Session {
    fn new(config: EngineConfig, addrs: SessionAddrs) -> Session {
        Session::with_timeouts(config, addrs, TIMEOUTS)
    }

    fn with_timeouts(config: EngineConfig, addrs: SessionAddrs, timeouts: Timeouts) -> Session {
        let start = Instant::now();
        Session {
            engine: Engine::new(config, timeouts, addrs, start),
            ports: Sequential::from(50000),
            start,
            now: start,
        }
    }

    /// Moves the virtual clock to `secs` seconds (plus `ms` milliseconds)
    /// after the session started.
    fn at(&mut self, secs: u64, ms: u64) -> &mut Session {
        self.now = self.start + Duration::from_secs(secs) + Duration::from_millis(ms);
        self
    }

    /// The engine's timer check at the current virtual time; the actions
    /// out, logs included.
    fn tick(&mut self) -> Vec<Action> {
        self.engine.handle_timeout(self.now);
        self.drain()
    }

    /// The engine's deadline, as an offset from the session's start.
    fn deadline(&self) -> Option<Duration> {
        self.engine.poll_timeout().map(|d| d - self.start)
    }

    /// The next queued action that is not a log line, the rest left queued.
    fn next_effect(&mut self) -> Option<Action> {
        std::iter::from_fn(|| self.engine.poll_action())
            .find(|action| !matches!(action, Action::Log(..)))
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.engine.poll_action()).collect()
    }

    /// A session whose greeting has been passed on.
    fn greeted(config: EngineConfig) -> Session {
        let mut session = Session::new(config, addrs());
        assert_eq!(
            session.server(b"220 ready\r\n"),
            vec![Action::ToClient(b"220 ready\r\n".to_vec())]
        );
        session
    }

    /// Client bytes in; the actions out, without logs.
    fn client(&mut self, bytes: &[u8]) -> Vec<Action> {
        without_logs(self.client_with_logs(bytes))
    }

    /// Server bytes in; the actions out, without logs.
    fn server(&mut self, bytes: &[u8]) -> Vec<Action> {
        without_logs(self.server_with_logs(bytes))
    }

    fn client_with_logs(&mut self, bytes: &[u8]) -> Vec<Action> {
        self.engine
            .input(Side::Client, bytes, self.now, &mut self.ports);
        self.drain()
    }

    fn server_with_logs(&mut self, bytes: &[u8]) -> Vec<Action> {
        self.engine
            .input(Side::Server, bytes, self.now, &mut self.ports);
        self.drain()
    }
}

fn without_logs(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|action| !matches!(action, Action::Log(..)))
        .collect()
}

fn logs(actions: &[Action]) -> Vec<(Level, &str)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Log(level, text) => Some((*level, text.as_str())),
            _ => None,
        })
        .collect()
}

fn to_server(bytes: &[u8]) -> Action {
    Action::ToServer(bytes.to_vec())
}

fn to_client(bytes: &[u8]) -> Action {
    Action::ToClient(bytes.to_vec())
}

fn refused(why: Refusal) -> Vec<Action> {
    vec![to_client(rewrite::refusal(why)), Action::End]
}

const PASV_REPLY: &[u8] = b"227 Entering Passive Mode (198,51,100,20,19,137)\r\n";
const PASV_REWRITTEN: &[u8] = b"227 Entering Passive Mode (192,0,2,10,195,80)\r\n";
const EPSV_REPLY: &[u8] = b"229 Entering Extended Passive Mode (|||5001|)\r\n";
const EPSV_REWRITTEN: &[u8] = b"229 Entering Extended Passive Mode (|||50000|)\r\n";

fn passive_open() -> Action {
    Action::Open(Pinhole::passive(&addrs(), 5001, 50000))
}

// ---- Pass-through and framing -------------------------------------------

#[test]
fn unrecognised_lines_pass_byte_for_byte() {
    let mut s = Session::greeted(config());
    for line in [
        &b"USER bob\r\n"[..],
        b"PASS secret\r\n",
        b"pwd\n",
        b"NO\rOP\r\n",
        b"LPRT 4,4,1,2,3,4,2,5,6\r\n",
        b"\r\n",
        b"\xff\xfe\r\n",
    ] {
        assert_eq!(s.client(line), vec![to_server(line)]);
    }
    for line in [&b"331 password\r\n"[..], b"garbage\n", b"150-x\r\n"] {
        assert_eq!(s.server(line), vec![to_client(line)]);
    }
}

#[test]
fn several_lines_in_one_read_and_a_held_tail() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.client(b"NOOP\r\nSYST\r\nPW"),
        vec![to_server(b"NOOP\r\n"), to_server(b"SYST\r\n")]
    );
    assert_eq!(s.client(b"D\r\n"), vec![to_server(b"PWD\r\n")]);
}

#[test]
fn client_line_of_500_bytes_passes_and_501_is_refused() {
    let mut s = Session::greeted(config());
    let mut line = vec![b'X'; 498];
    line.extend_from_slice(b"\r\n");
    assert_eq!(s.client(&line), vec![to_server(&line)]);
    line.insert(0, b'X');
    let out = s.client_with_logs(&line);
    assert_eq!(
        logs(&out),
        vec![(Level::Err, "client command too long or not clean")]
    );
    assert_eq!(without_logs(out), refused(Refusal::ClientLine));
}

#[test]
fn client_nul_is_refused() {
    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"NO\0OP\r\n"), refused(Refusal::ClientLine));
}

#[test]
fn server_line_too_long_or_nul_is_refused() {
    let mut s = Session::greeted(config());
    let out = s.server_with_logs(&[b'2'; 500]);
    assert_eq!(
        logs(&out)[0],
        (Level::Err, "server reply too long or not clean")
    );
    assert_eq!(without_logs(out), refused(Refusal::ServerLine));

    let mut s = Session::greeted(config());
    assert_eq!(s.server(b"200 \0\r\n"), refused(Refusal::ServerLine));
}

#[test]
fn nothing_after_end() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.client(b"PORT 1,2,3,4,0,21\r\nNOOP\r\n"),
        refused(Refusal::BadPort)
    );
    assert!(s.client_with_logs(b"NOOP\r\n").is_empty());
    assert!(s.server_with_logs(b"200 ok\r\n").is_empty());
    assert!(s.client_with_logs(&[0; 600]).is_empty());
}

#[test]
fn lines_before_an_error_in_the_same_read_are_handled() {
    let mut s = Session::greeted(config());
    let mut expected = vec![to_server(b"NOOP\r\n")];
    expected.extend(refused(Refusal::ClientLine));
    assert_eq!(s.client(b"NOOP\r\nAB\0CD\r\nSYST\r\n"), expected);
}

// ---- Logs ---------------------------------------------------------------

#[test]
fn every_line_is_logged_at_debug() {
    let mut s = Session::new(config(), addrs());
    assert_eq!(
        logs(&s.server_with_logs(b"220 hi\r\n")),
        vec![(Level::Debug, "server: 220 hi\r\n")]
    );
    assert_eq!(
        logs(&s.client_with_logs(b"NOOP\r\n")),
        vec![(Level::Debug, "client: NOOP\r\n")]
    );
}

#[test]
fn logs_below_the_threshold_are_not_produced() {
    let notice = EngineConfig {
        log_level: Level::Notice,
        ..config()
    };
    let mut s = Session::new(notice, addrs());
    let mut out = s.server_with_logs(b"220 hi\r\n");
    out.extend(s.client_with_logs(b"PORT 10,0,0,2,4,1\r\nPASV\r\n"));
    out.extend(s.server_with_logs(b"200 ok\r\n"));
    out.extend(s.server_with_logs(PASV_REPLY));
    assert!(logs(&out).is_empty(), "{out:?}");
    let out = s.client_with_logs(b"PORT 1,2,3,4,0,1\r\n");
    assert_eq!(
        logs(&out),
        vec![(Level::Crit, "bad port in 'PORT 1,2,3,4,0,1\r\n'")]
    );

    let silent = EngineConfig {
        log_level: Level::Emerg,
        ..config()
    };
    let mut s = Session::new(silent, addrs());
    assert_eq!(
        s.client_with_logs(b"PORT 1,2,3,4,0,1\r\n"),
        refused(Refusal::BadPort)
    );
}

// ---- Active mode: PORT and EPRT ----------------------------------------

#[test]
fn port_opens_first_then_sends_the_proxy_address() {
    let mut s = Session::greeted(config());
    let out = s.client_with_logs(b"PORT 10,0,0,2,4,1\r\n");
    assert_eq!(
        logs(&out),
        vec![
            (Level::Debug, "client: PORT 10,0,0,2,4,1\r\n"),
            (Level::Debug, "proxy: PORT 198,51,100,1,195,80\r\n"),
            (
                Level::Info,
                "active: server to client port 1025 via port 50000"
            ),
        ]
    );
    assert_eq!(
        without_logs(out),
        vec![
            Action::Open(Pinhole::active(&addrs(), 1025, 50000, false)),
            to_server(b"PORT 198,51,100,1,195,80\r\n"),
        ]
    );
    assert_eq!(
        s.server(b"200 PORT ok\r\n"),
        vec![to_client(b"200 PORT ok\r\n")]
    );
}

#[test]
fn active_pinhole_uses_the_proxy_toward_the_server_and_orig_toward_the_client() {
    let mut s = Session::greeted(config());
    let out = s.client(b"port 6,6,6,6,200,1\r\n");
    let Action::Open(pinhole) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(pinhole.mode, Mode::Active);
    assert_eq!(pinhole.proxy_port, 50000);
    assert_eq!(
        (pinhole.rdr.from, pinhole.rdr.to, pinhole.rdr.port),
        (ip("198.51.100.20"), ip("198.51.100.1"), 50000)
    );
    assert_eq!(
        (pinhole.rdr.target, pinhole.rdr.target_port),
        (ip("10.0.0.2"), 51201)
    );
    assert_eq!(pinhole.nat.source, ip("192.0.2.10"));
    assert_eq!(pinhole.nat.source_ports, NAT_PORTS);
    assert_eq!(out[1], to_server(b"PORT 198,51,100,1,195,80\r\n"));
}

#[test]
fn rfc_mode_gives_port_20_to_port_but_not_to_eprt() {
    let rfc = EngineConfig {
        rfc_mode: true,
        ..config()
    };
    let mut s = Session::greeted(rfc);
    let out = s.client(b"PORT 10,0,0,2,4,1\r\n");
    assert_eq!(
        out[0],
        Action::Open(Pinhole::active(&addrs(), 1025, 50000, true))
    );
    let Action::Open(pinhole) = &out[0] else {
        unreachable!()
    };
    assert_eq!(pinhole.nat.source_ports, FTP_DATA_PORT..=FTP_DATA_PORT);

    let out = s.client(b"EPRT |1|10.0.0.2|1025|\r\n");
    let Action::Open(pinhole) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(pinhole.nat.source_ports, NAT_PORTS);
}

#[test]
fn eprt_is_rewritten_in_the_proxy_family() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.client(b"EPRT |1|10.0.0.2|6000|\r\n"),
        vec![
            Action::Open(Pinhole::active(&addrs(), 6000, 50000, false)),
            to_server(b"EPRT |1|198.51.100.1|50000|\r\n"),
        ]
    );
    // `|2|` from the client on an IPv4 session still comes out as `|1|`.
    assert_eq!(
        s.client(b"eprt |2|::2|6001|\r\n"),
        vec![
            Action::Open(Pinhole::active(&addrs(), 6001, 50001, false)),
            to_server(b"EPRT |1|198.51.100.1|50001|\r\n"),
        ]
    );
}

#[test]
fn eprt_inet_under_ipv6_is_re_emitted_as_inet6() {
    let six = EngineConfig {
        ipv6: true,
        ..config()
    };
    let mut s = Session::new(six, addrs6());
    assert_eq!(
        s.client(b"EPRT |1|10.0.0.2|6000|\r\n"),
        vec![
            Action::Open(Pinhole::active(&addrs6(), 6000, 50000, false)),
            to_server(b"EPRT |2|2001:db8:3::1|50000|\r\n"),
        ]
    );
}

#[test]
fn data_port_1023_is_refused_and_1024_accepted() {
    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"PORT 10,0,0,2,4,0\r\n").len(), 2);
    let out = s.client_with_logs(b"PORT 10,0,0,2,3,255\r\n");
    assert_eq!(
        logs(&out)[1],
        (Level::Crit, "bad port in 'PORT 10,0,0,2,3,255\r\n'")
    );
    assert_eq!(without_logs(out), refused(Refusal::BadPort));

    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"EPRT |1|1.2.3.4|1024|\r\n").len(), 2);
    assert_eq!(
        s.client(b"EPRT |1|1.2.3.4|1023|\r\n"),
        refused(Refusal::BadPort)
    );
}

#[test]
fn unparsable_ports_count_as_zero() {
    for line in [
        &b"PORT 10,0,0,2,4,1 \r\n"[..],
        b"PORT 10, 0, 0, 2, 4, 1\r\n",
        b"PORT 10,0,0,2,4,256\r\n",
        b"PORT x\r\n",
        b"EPRT |2|::ffff:1.2.3.4|5000|\r\n",
        b"EPRT |1|1.2.3.4|70000|\r\n",
        b"EPRT (1)1.2.3.4(5000(\r\n",
    ] {
        let mut s = Session::greeted(config());
        assert_eq!(s.client(line), refused(Refusal::BadPort), "{line:?}");
    }
}

#[test]
fn ipv6_mode_refuses_pasv_and_port() {
    let six = EngineConfig {
        ipv6: true,
        ..config()
    };
    for line in [&b"PASV\r\n"[..], b"pasv\r\n", b"PORT 1,2,3,4,5,6\r\n"] {
        let mut s = Session::new(six, addrs6());
        let out = s.client_with_logs(line);
        assert_eq!(
            logs(&out)[1],
            (Level::Crit, "PASV and PORT not allowed with IPv6")
        );
        assert_eq!(without_logs(out), refused(Refusal::Ipv6PasvPort));
    }
    let mut s = Session::new(six, addrs6());
    assert_eq!(s.client(b"EPSV\r\n"), vec![to_server(b"EPSV\r\n")]);
}

// ---- Passive mode: PASV and EPSV ---------------------------------------

#[test]
fn pasv_reply_is_rewritten_with_orig_after_the_open() {
    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"PASV\r\n"), vec![to_server(b"PASV\r\n")]);
    let out = s.server_with_logs(PASV_REPLY);
    assert_eq!(
        logs(&out)[1..],
        [
            (
                Level::Info,
                "passive: client to server port 5001 via port 50000"
            ),
            (
                Level::Debug,
                "proxy: 227 Entering Passive Mode (192,0,2,10,195,80)\r\n"
            ),
        ]
    );
    assert_eq!(
        without_logs(out),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
}

#[test]
fn passive_pinhole_uses_orig_toward_the_client_and_the_proxy_toward_the_server() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    let out = s.server(PASV_REPLY);
    let Action::Open(pinhole) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(pinhole.mode, Mode::Passive);
    assert_eq!(
        (pinhole.rdr.from, pinhole.rdr.to, pinhole.rdr.port),
        (ip("10.0.0.2"), ip("192.0.2.10"), 50000)
    );
    assert_eq!(
        (pinhole.rdr.target, pinhole.rdr.target_port),
        (ip("198.51.100.20"), 5001)
    );
    assert_eq!(pinhole.nat.source, ip("198.51.100.1"));
}

#[test]
fn epsv_reply_is_rewritten() {
    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"EPSV\r\n"), vec![to_server(b"EPSV\r\n")]);
    assert_eq!(
        s.server(EPSV_REPLY),
        vec![passive_open(), to_client(EPSV_REWRITTEN)]
    );
}

#[test]
fn passive_replies_with_bad_ports_are_refused() {
    for (command, reply) in [
        (
            &b"PASV\r\n"[..],
            &b"227 Entering Passive Mode 198,51,100,20,19,137\r\n"[..],
        ),
        (
            b"PASV\r\n",
            b"227 Entering Passive Mode (198,51,100,20,19,137). OK\r\n",
        ),
        (b"PASV\r\n", b"227 x (198,51,100,20,3,255)\r\n"),
        (b"EPSV\r\n", b"229 x (!!!5001!)\r\n"),
        (b"EPSV\r\n", b"229 x (|||1023|)\r\n"),
    ] {
        let mut s = Session::greeted(config());
        s.client(command);
        let out = s.server_with_logs(reply);
        let expected_log = format!("bad port in '{}'", String::from_utf8_lossy(reply));
        assert_eq!(logs(&out)[1], (Level::Crit, expected_log.as_str()));
        assert_eq!(without_logs(out), refused(Refusal::BadPort));
    }
}

#[test]
fn unsolicited_passive_replies_pass_untouched() {
    let mut s = Session::greeted(config());
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
    assert_eq!(s.server(EPSV_REPLY), vec![to_client(EPSV_REPLY)]);
    // The wrong code for the outstanding command opens nothing either.
    s.client(b"EPSV\r\n");
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
    s.client(b"PASV\r\n");
    assert_eq!(s.server(EPSV_REPLY), vec![to_client(EPSV_REPLY)]);
}

#[test]
fn error_reply_completes_pasv() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    assert_eq!(s.server(b"425 no\r\n"), vec![to_client(b"425 no\r\n")]);
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
}

#[test]
fn preliminary_reply_does_not_complete_pasv() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    assert_eq!(s.server(b"120 soon\r\n"), vec![to_client(b"120 soon\r\n")]);
    assert_eq!(
        s.server(PASV_REPLY),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
}

#[test]
fn command_pipelined_after_pasv_does_not_break_the_rewrite() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.client(b"PASV\r\nNOOP\r\n"),
        vec![to_server(b"PASV\r\n"), to_server(b"NOOP\r\n")]
    );
    let mut replies = PASV_REPLY.to_vec();
    replies.extend_from_slice(b"200 NOOP ok\r\n");
    assert_eq!(
        s.server(&replies),
        vec![
            passive_open(),
            to_client(PASV_REWRITTEN),
            to_client(b"200 NOOP ok\r\n")
        ]
    );
}

#[test]
fn pasv_pipelined_after_other_commands_is_rewritten() {
    let mut s = Session::new(config(), addrs());
    s.client(b"USER ftp\r\nPASS x\r\nEPSV\r\n");
    assert_eq!(s.server(b"220 hi\r\n").len(), 1);
    assert_eq!(s.server(b"331 pass\r\n").len(), 1);
    assert_eq!(s.server(b"230 in\r\n").len(), 1);
    assert_eq!(
        s.server(EPSV_REPLY),
        vec![passive_open(), to_client(EPSV_REWRITTEN)]
    );
}

#[test]
fn passive_reply_before_earlier_replies_still_rewritten() {
    // A server that skips the reply to an earlier command: the 227 answers
    // the PASV, and the skipped command is taken as answered.
    let mut s = Session::greeted(config());
    s.client(b"NOOP\r\nPASV\r\n");
    assert_eq!(
        s.server(PASV_REPLY),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
}

#[test]
fn each_pasv_gets_its_own_port() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\nPASV\r\n");
    assert_eq!(s.server(PASV_REPLY)[1], to_client(PASV_REWRITTEN));
    assert_eq!(
        s.server(PASV_REPLY)[1],
        to_client(b"227 Entering Passive Mode (192,0,2,10,195,81)\r\n")
    );
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
}

// ---- Multi-line replies ---------------------------------------------------

#[test]
fn multi_line_227_with_the_port_on_the_first_line_becomes_one_line() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    assert!(s
        .server(b"227-Entering Passive Mode (198,51,100,20,19,137)\r\n")
        .is_empty());
    assert!(s.server(b" more text\r\n").is_empty());
    assert_eq!(
        s.server(b"227 OK\r\n"),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
}

#[test]
fn multi_line_227_with_the_port_on_the_last_line_becomes_one_line() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    let reply = b"227-Here it comes\r\n227-(no port here)\r\n227 Entering Passive Mode (198,51,100,20,19,137)\r\n";
    assert_eq!(
        s.server(reply),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
}

#[test]
fn multi_line_229_becomes_one_line() {
    let mut s = Session::greeted(config());
    s.client(b"EPSV\r\n");
    assert_eq!(
        s.server(b"229-Entering Extended Passive Mode (|||5001|)\r\n229 Done\r\n"),
        vec![passive_open(), to_client(EPSV_REWRITTEN)]
    );
}

#[test]
fn multi_line_227_without_a_port_is_a_bad_port() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    let out = s.server_with_logs(b"227-nothing\r\n227 here\r\n");
    assert_eq!(
        logs(&out).last(),
        Some(&(Level::Crit, "bad port in '227-nothing\r\n227 here\r\n'"))
    );
    assert_eq!(without_logs(out), refused(Refusal::BadPort));
}

#[test]
fn multi_line_227_held_only_up_to_a_bound() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    assert!(s.server(b"227-start\r\n").is_empty());
    for _ in 1..MAX_HELD_LINES {
        assert!(s.server(b" filler\r\n").is_empty());
    }
    let out = s.server_with_logs(b" one too many\r\n");
    assert_eq!(
        logs(&out).last(),
        Some(&(Level::Err, "server multi-line 227 reply too long"))
    );
    assert_eq!(without_logs(out), refused(Refusal::ServerLine));

    let mut s = Session::greeted(config());
    s.client(b"EPSV\r\n");
    let long = [&[b' '; 400][..], b"\r\n"].concat();
    assert!(s.server(b"229-start\r\n").is_empty());
    let mut out = Vec::new();
    for _ in 0..11 {
        out = s.server(&long);
    }
    assert_eq!(out, refused(Refusal::ServerLine));
}

#[test]
fn multi_line_227_without_pasv_passes_line_by_line() {
    let mut s = Session::greeted(config());
    assert_eq!(s.server(b"227-a\r\n"), vec![to_client(b"227-a\r\n")]);
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
}

#[test]
fn a_227_inside_another_multi_line_reply_is_text() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    let reply: [&[u8]; 3] = [b"211-Status\r\n", PASV_REPLY, b"211 End\r\n"];
    for line in reply {
        assert_eq!(s.server(line), vec![to_client(line)]);
    }
    assert_eq!(s.server(PASV_REPLY), vec![to_client(PASV_REPLY)]);
}

#[test]
fn multi_line_greeting_then_pasv() {
    let mut s = Session::new(config(), addrs());
    s.client(b"PASV\r\n");
    assert_eq!(s.server(b"220-Welcome\r\n220 ready\r\n").len(), 2);
    assert_eq!(
        s.server(PASV_REPLY),
        vec![passive_open(), to_client(PASV_REWRITTEN)]
    );
}

// ---- -A: anonymous only ---------------------------------------------------

fn anonymous() -> EngineConfig {
    EngineConfig {
        anonymous_only: true,
        ..config()
    }
}

#[test]
fn anonymous_logins_pass_in_any_case() {
    for line in [
        &b"USER ftp\r\n"[..],
        b"user FTP\r\n",
        b"USER anonymous\r\n",
        b"User Anonymous\r\n",
    ] {
        let mut s = Session::greeted(anonymous());
        assert_eq!(s.client(line), vec![to_server(line)]);
    }
}

#[test]
fn other_u_lines_get_500_and_the_session_goes_on() {
    for line in [
        &b"USER ftp\n"[..],
        b"USER bob\r\n",
        b"USER ftp \r\n",
        b"UPLOAD\r\n",
        b"umask 022\r\n",
    ] {
        let mut s = Session::greeted(anonymous());
        let out = s.client_with_logs(line);
        assert_eq!(
            logs(&out)[1],
            (Level::Debug, "proxy: 500 Only anonymous FTP allowed\r\n")
        );
        assert_eq!(
            without_logs(out),
            vec![to_client(rewrite::ANONYMOUS_ONLY)],
            "{line:?}"
        );
        assert_eq!(s.client(b"NOOP\r\n"), vec![to_server(b"NOOP\r\n")]);
    }
}

#[test]
fn without_dash_a_user_lines_pass() {
    let mut s = Session::greeted(config());
    assert_eq!(s.client(b"USER bob\r\n"), vec![to_server(b"USER bob\r\n")]);
}

#[test]
fn short_u_lines_pass_even_with_dash_a() {
    let mut s = Session::greeted(anonymous());
    assert_eq!(s.client(b"U\r\n"), vec![to_server(b"U\r\n")]);
}

#[test]
fn anonymous_refusal_waits_for_earlier_replies() {
    let mut s = Session::greeted(anonymous());
    assert_eq!(
        s.client(b"NOOP\r\nUSER bob\r\nPWD\r\nUPLOAD\r\n"),
        vec![to_server(b"NOOP\r\n"), to_server(b"PWD\r\n")]
    );
    assert_eq!(
        s.server(b"200 ok\r\n"),
        vec![to_client(b"200 ok\r\n"), to_client(rewrite::ANONYMOUS_ONLY)]
    );
    assert_eq!(
        s.server(b"257 \"/\"\r\n"),
        vec![
            to_client(b"257 \"/\"\r\n"),
            to_client(rewrite::ANONYMOUS_ONLY)
        ]
    );
    assert_eq!(
        s.client(b"USER x\r\n"),
        vec![to_client(rewrite::ANONYMOUS_ONLY)]
    );
}

#[test]
fn anonymous_refusal_before_the_greeting_follows_it() {
    let mut s = Session::new(anonymous(), addrs());
    assert!(s.client(b"USER bob\r\n").is_empty());
    assert_eq!(
        s.server(b"220 hi\r\n"),
        vec![to_client(b"220 hi\r\n"), to_client(rewrite::ANONYMOUS_ONLY)]
    );
}

#[test]
fn anonymous_refusal_around_a_passive_reply_keeps_its_place() {
    let mut s = Session::greeted(anonymous());
    s.client(b"NOOP\r\nUSER a\r\nPASV\r\nUSER b\r\n");
    assert_eq!(
        s.server(PASV_REPLY),
        vec![
            to_client(rewrite::ANONYMOUS_ONLY),
            passive_open(),
            to_client(PASV_REWRITTEN),
            to_client(rewrite::ANONYMOUS_ONLY),
        ]
    );
}

#[test]
fn blank_lines_wait_for_no_reply() {
    let mut s = Session::greeted(anonymous());
    assert_eq!(
        s.client(b"\r\nUSER bob\r\n"),
        vec![to_server(b"\r\n"), to_client(rewrite::ANONYMOUS_ONLY)]
    );
}

#[test]
fn the_reply_queue_is_bounded() {
    let mut s = Session::greeted(anonymous());
    for _ in 0..1000 {
        s.client(b"NOOP\r\nUSER bob\r\n");
        assert!(s.engine.pending.len() <= MAX_PENDING);
        assert_ne!(s.engine.pending.front(), Some(&Pending::AnonymousRefusal));
    }
}

// ---- Timers, on a virtual clock -------------------------------------------

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

fn timed_out(level: Level, text: &str, why: Refusal) -> Vec<Action> {
    vec![
        Action::Log(level, text.to_owned()),
        to_client(rewrite::refusal(why)),
        Action::End,
    ]
}

#[test]
fn silent_server_ends_the_session_after_30_seconds_with_its_own_421() {
    let mut s = Session::new(config(), addrs());
    assert_eq!(s.deadline(), secs(30));
    assert_eq!(s.at(29, 999).tick(), vec![]);
    assert_eq!(
        s.at(30, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerTimeout)
    );
    assert_eq!(
        rewrite::refusal(Refusal::ServerTimeout),
        b"421 The FTP server did not answer in time.\r\n"
    );
}

#[test]
fn first_reply_limit_holds_whatever_t_says() {
    // -t 0: no idle timer, but the server still has only 30 seconds.
    let no_idle = Timeouts {
        idle: None,
        first_reply: Duration::from_secs(30),
    };
    let mut s = Session::with_timeouts(config(), addrs(), no_idle);
    assert_eq!(s.deadline(), secs(30));
    assert_eq!(
        s.at(30, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerTimeout)
    );

    // -t 300: longer than 30 seconds, and the server still has only 30.
    let long_idle = Timeouts {
        idle: Some(Duration::from_secs(300)),
        first_reply: Duration::from_secs(30),
    };
    let mut s = Session::with_timeouts(config(), addrs(), long_idle);
    s.at(20, 0).client(b"USER ftp\r\n");
    assert_eq!(s.deadline(), secs(30));
    assert_eq!(
        s.at(30, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerTimeout)
    );
}

#[test]
fn server_that_spoke_then_went_silent_gets_the_idle_421() {
    let mut s = Session::new(config(), addrs());
    s.at(10, 0).server(b"220 ready\r\n");
    // Its first byte switched the server to -t (60 s from 10 s); the
    // client, silent since the start, is due first.
    s.at(50, 0).client(b"NOOP\r\n");
    assert_eq!(s.deadline(), secs(70));
    assert_eq!(s.at(69, 999).tick(), vec![]);
    assert_eq!(
        s.at(70, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerIdle)
    );
    assert_eq!(
        rewrite::refusal(Refusal::ServerIdle),
        b"421 The FTP server went idle, closing the control connection.\r\n"
    );
}

#[test]
fn idle_client_gets_421_after_t_seconds() {
    let mut s = Session::greeted(config());
    s.at(5, 0).client(b"NOOP\r\n");
    s.at(40, 0).server(b"200 ok\r\n");
    assert_eq!(s.deadline(), secs(65));
    assert_eq!(s.at(64, 999).tick(), vec![]);
    assert_eq!(
        s.at(65, 0).tick(),
        timed_out(Level::Err, "client timeout", Refusal::ClientTimeout)
    );
    assert_eq!(
        rewrite::refusal(Refusal::ClientTimeout),
        b"421 Idle timeout, closing the control connection.\r\n"
    );
}

#[test]
fn each_side_restarts_only_its_own_timer() {
    let mut s = Session::greeted(config());
    // A chatty server does not keep a silent client's session alive.
    for t in (10..60).step_by(10) {
        s.at(t, 0).server(b"200-still here\r\n");
    }
    assert_eq!(s.deadline(), secs(60));
    assert_eq!(
        s.at(60, 0).tick(),
        timed_out(Level::Err, "client timeout", Refusal::ClientTimeout)
    );
    // Nor a chatty client a silent server's.
    let mut s = Session::greeted(config());
    for t in (10..60).step_by(10) {
        s.at(t, 0).client(b"NOOP\r\n");
    }
    assert_eq!(s.deadline(), secs(60));
    assert_eq!(
        s.at(60, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerIdle)
    );
}

#[test]
fn client_timeout_wins_a_tie() {
    let mut s = Session::greeted(config());
    assert_eq!(s.deadline(), secs(60));
    assert_eq!(
        s.at(60, 0).tick(),
        timed_out(Level::Err, "client timeout", Refusal::ClientTimeout)
    );
}

#[test]
fn late_timer_check_ends_the_session_once() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.at(3600, 0).tick(),
        timed_out(Level::Err, "client timeout", Refusal::ClientTimeout)
    );
    assert_eq!(s.deadline(), None);
    assert_eq!(s.at(7200, 0).tick(), vec![]);
    assert_eq!(s.client(b"NOOP\r\n"), vec![]);
    assert_eq!(s.server(b"200 ok\r\n"), vec![]);
}

#[test]
fn without_t_a_greeted_session_has_no_timer() {
    let no_idle = Timeouts {
        idle: None,
        first_reply: Duration::from_secs(30),
    };
    let mut s = Session::with_timeouts(config(), addrs(), no_idle);
    s.at(29, 0).server(b"220 ready\r\n");
    assert_eq!(s.deadline(), None);
    assert_eq!(s.at(86_400 * 365, 0).tick(), vec![]);
    assert_eq!(s.client(b"NOOP\r\n"), vec![to_server(b"NOOP\r\n")]);
}

#[test]
fn timeout_logs_follow_the_d_threshold() {
    let quiet = EngineConfig {
        log_level: Level::Crit,
        ..config()
    };
    let mut s = Session::new(quiet, addrs());
    assert_eq!(s.at(30, 0).tick(), refused(Refusal::ServerTimeout));
    let mut s = Session::new(quiet, addrs());
    s.server(b"220 ready\r\n");
    assert_eq!(s.at(60, 0).tick(), refused(Refusal::ClientTimeout));
}

#[test]
fn timeout_drops_a_held_multi_line_reply() {
    let mut s = Session::greeted(config());
    s.at(1, 0).client(b"PASV\r\n");
    assert_eq!(s.server(b"227-first\r\n"), vec![]);
    s.at(30, 0).client(b"NOOP\r\n");
    assert_eq!(
        s.at(61, 0).tick(),
        timed_out(Level::Notice, "server timeout", Refusal::ServerIdle)
    );
}

// ---- A pinhole the filter refused ------------------------------------------

#[test]
fn refused_active_pinhole_never_lets_port_reach_the_server() {
    let mut s = Session::greeted(config());
    s.engine.input(
        Side::Client,
        b"PORT 10,0,0,2,4,1\r\nNOOP\r\n",
        s.now,
        &mut s.ports,
    );
    let first = s.next_effect();
    assert_eq!(
        first,
        Some(Action::Open(Pinhole::active(&addrs(), 1025, 50000, false)))
    );
    s.engine.pinhole_failed(&mut s.ports);
    assert_eq!(s.drain(), refused(Refusal::Pinhole));
    assert_eq!(
        rewrite::refusal(Refusal::Pinhole),
        b"421 Cannot open the data connection in the firewall.\r\n"
    );
    assert_eq!(s.deadline(), None);
    assert_eq!(s.client(b"NOOP\r\n"), vec![]);
}

#[test]
fn refused_passive_pinhole_never_shows_the_client_a_227() {
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    s.engine
        .input(Side::Server, PASV_REPLY, s.now, &mut s.ports);
    let first = s.next_effect();
    assert_eq!(first, Some(passive_open()));
    s.engine.pinhole_failed(&mut s.ports);
    assert_eq!(s.drain(), refused(Refusal::Pinhole));
}

#[test]
fn refused_pinhole_gives_back_the_ports_of_the_pinholes_dropped_after_it() {
    let mut s = Session::greeted(config());
    s.engine.input(
        Side::Client,
        b"PORT 10,0,0,2,4,1\r\nPORT 10,0,0,2,4,2\r\nEPRT |1|10.0.0.2|1027|\r\n",
        s.now,
        &mut s.ports,
    );
    let first = s.next_effect();
    assert_eq!(
        first,
        Some(Action::Open(Pinhole::active(&addrs(), 1025, 50000, false)))
    );
    // The driver gives back 50000 itself; the engine the two never opened.
    s.engine.pinhole_failed(&mut s.ports);
    assert_eq!(s.ports.released, vec![50001, 50002]);
    assert_eq!(s.drain(), refused(Refusal::Pinhole));
}

#[test]
fn refused_pinhole_drops_its_port_line_even_when_a_later_line_ended_the_session() {
    let mut s = Session::greeted(config());
    s.engine.input(
        Side::Client,
        b"PORT 10,0,0,2,4,1\r\nPORT 10,0,0,2,0,21\r\n",
        s.now,
        &mut s.ports,
    );
    let first = s.next_effect();
    assert_eq!(
        first,
        Some(Action::Open(Pinhole::active(&addrs(), 1025, 50000, false)))
    );
    s.engine.pinhole_failed(&mut s.ports);
    assert_eq!(without_logs(s.drain()), refused(Refusal::Pinhole));
    assert_eq!(s.deadline(), None);
}

#[test]
fn pinhole_failure_after_the_end_changes_nothing() {
    let mut s = Session::greeted(config());
    assert_eq!(
        s.client(b"PORT 10,0,0,2,0,21\r\n"),
        refused(Refusal::BadPort)
    );
    s.engine.pinhole_failed(&mut s.ports);
    assert_eq!(s.drain(), vec![]);
}

// ---- Splitting ------------------------------------------------------------

/// A whole exchange, fed in pieces of `chunk` bytes, alternating sides in
/// the order the lines were written.
fn run_exchange(chunk: usize) -> Vec<Action> {
    let client: &[u8] =
        b"USER ftp\r\nPASS x\r\nPASV\r\nNOOP\r\nPORT 10,0,0,2,4,1\r\nEPSV\r\nUSER bob\r\n";
    let server: &[u8] = b"220-hi\r\n220 ready\r\n331 pass\r\n230 in\r\n227-x\r\n227 Entering Passive Mode (1,2,3,4,19,137)\r\n200 noop\r\n200 port\r\n150 wait\r\n229 Entering Extended Passive Mode (|||5001|)\r\n";
    let mut s = Session::new(anonymous(), addrs());
    let mut out = Vec::new();
    for piece in client.chunks(chunk) {
        out.extend(s.client_with_logs(piece));
    }
    for piece in server.chunks(chunk) {
        out.extend(s.server_with_logs(piece));
    }
    out
}

#[test]
fn byte_at_a_time_equals_all_at_once() {
    let whole = run_exchange(usize::MAX);
    assert_eq!(
        whole
            .iter()
            .filter(|a| matches!(a, Action::Open(_)))
            .count(),
        3
    );
    for chunk in [1, 2, 5, 13] {
        assert_eq!(run_exchange(chunk), whole, "chunk {chunk}");
    }
}

// ---- Randomized invariants -----------------------------------------------

/// xorshift64: a tiny, fixed-seed generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, choices: &[&'a T]) -> &'a T {
        choices[self.below(choices.len())]
    }
}

/// Mostly a valid data port, sometimes an edge or a broken number.
fn random_port(rng: &mut XorShift) -> String {
    match rng.below(8) {
        0 => random_number(rng),
        _ => (1024 + rng.below(64512)).to_string(),
    }
}

fn random_number(rng: &mut XorShift) -> String {
    match rng.below(3) {
        0 => rng
            .pick(&[
                "0",
                "3",
                "4",
                "255",
                "256",
                "1023",
                "1024",
                "65535",
                "65536",
                "-0",
                "+7",
                "4294967296",
            ])
            .to_owned(),
        1 => rng.below(70000).to_string(),
        _ => rng.below(256).to_string(),
    }
}

/// The `h1,h2,h3,h4,p1,p2` of PORT and 227: mostly valid.
fn six_numbers(rng: &mut XorShift) -> String {
    if rng.below(8) == 0 {
        return (0..6)
            .map(|_| random_number(rng))
            .collect::<Vec<_>>()
            .join(",");
    }
    let port = 1024 + rng.below(64512);
    let address: Vec<String> = (0..4).map(|_| rng.below(256).to_string()).collect();
    format!("{},{},{}", address.join(","), port / 256, port % 256)
}

fn random_bytes(rng: &mut XorShift) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789,.|()- \r\nPASVEPRTUSER227229";
    let len = if rng.below(20) == 0 {
        480 + rng.below(80)
    } else {
        rng.below(40)
    };
    (0..len)
        .map(|_| match rng.below(50) {
            0 => rng.below(256) as u8,
            _ => ALPHABET[rng.below(ALPHABET.len())],
        })
        .collect()
}

/// Mostly well-formed client lines, some broken, some random bytes.
fn random_client_bytes(rng: &mut XorShift) -> Vec<u8> {
    let line = match rng.below(12) {
        0 => format!("PORT {}\r\n", six_numbers(rng)),
        1 => format!("EPRT |1|1.2.3.4|{}|\r\n", random_port(rng)),
        2 => format!("eprt |2|2001:db8::2|{}|\r\n", random_port(rng)),
        3 => rng.pick(&["PASV\r\n", "pasv\n", "PASVX\r\n"]).to_owned(),
        4 => rng
            .pick(&["EPSV\r\n", "EPSV ALL\r\n", "epsv 2\r\n"])
            .to_owned(),
        5 => rng
            .pick(&[
                "USER ftp\r\n",
                "USER bob\r\n",
                "user anonymous\n",
                "UPLOAD\r\n",
            ])
            .to_owned(),
        6 => rng
            .pick(&["NOOP\r\n", "PWD\r\n", "\r\n", "U\r\n"])
            .to_owned(),
        _ => return random_bytes(rng),
    };
    line.into_bytes()
}

/// Mostly well-formed server replies, some broken, some random bytes.
fn random_server_bytes(rng: &mut XorShift) -> Vec<u8> {
    let line = match rng.below(12) {
        0 => format!("227 Entering Passive Mode ({})\r\n", six_numbers(rng)),
        1 => format!("227-Entering Passive Mode ({})\r\n", six_numbers(rng)),
        2 => format!(
            "229 Entering Extended Passive Mode (|||{}|)\r\n",
            random_port(rng)
        ),
        3 => rng
            .pick(&["229-x\r\n", "227 OK\r\n", "229 OK\r\n", " text\r\n"])
            .to_owned(),
        4 => rng
            .pick(&[
                "220 ready\r\n",
                "200 ok\r\n",
                "150 wait\r\n",
                "425 no\r\n",
                "230-hi\r\n",
                "230 in\r\n",
            ])
            .to_owned(),
        _ => return random_bytes(rng),
    };
    line.into_bytes()
}

/// Checks what one call produced, given whether the session had ended.
fn check_actions(actions: &[Action], addrs: &SessionAddrs, ended: &mut bool) {
    let known = [addrs.client, addrs.orig, addrs.server, addrs.proxy];
    for (index, action) in actions.iter().enumerate() {
        assert!(!*ended, "{action:?} after End");
        match action {
            Action::ToServer(line) | Action::ToClient(line) => {
                assert!(line.len() <= super::super::line::MAX_LINE, "{line:?}");
                assert!(line.ends_with(b"\n"), "{line:?}");
                assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            }
            Action::Open(pinhole) => {
                for address in [
                    pinhole.rdr.from,
                    pinhole.rdr.to,
                    pinhole.rdr.target,
                    pinhole.nat.from,
                    pinhole.nat.to,
                    pinhole.nat.source,
                ] {
                    assert!(known.contains(&address), "{pinhole:?}");
                }
                for port in [
                    pinhole.proxy_port,
                    pinhole.rdr.port,
                    pinhole.rdr.target_port,
                    pinhole.nat.port,
                ] {
                    assert!(port >= MIN_DATA_PORT, "{pinhole:?}");
                }
                let rewritten = match actions.get(index + 1) {
                    Some(Action::ToServer(line)) => {
                        line.starts_with(b"PORT ") || line.starts_with(b"EPRT ")
                    }
                    Some(Action::ToClient(line)) => {
                        line.starts_with(b"227 ") || line.starts_with(b"229 ")
                    }
                    _ => false,
                };
                assert!(rewritten, "Open not followed by its line: {actions:?}");
            }
            Action::End => {
                assert!(
                    matches!(actions.get(index.wrapping_sub(1)), Some(Action::ToClient(line)) if line.starts_with(b"421 ")),
                    "End without a 421: {actions:?}"
                );
                *ended = true;
            }
            Action::Log(..) => {}
        }
    }
}

fn random_session(rng: &mut XorShift) {
    let ipv6 = rng.below(4) == 0;
    let config = EngineConfig {
        anonymous_only: rng.below(2) == 0,
        ipv6,
        rfc_mode: rng.below(2) == 0,
        log_level: *rng.pick(&[&Level::Crit, &Level::Notice, &Level::Debug]),
    };
    let addrs = if ipv6 { addrs6() } else { addrs() };
    let now = Instant::now();
    let mut engine = Engine::new(config, TIMEOUTS, addrs, now);
    let mut ports = Sequential::from(49152 + rng.below(16000) as u16);
    let client: Vec<u8> = (0..20).flat_map(|_| random_client_bytes(rng)).collect();
    let server: Vec<u8> = (0..20).flat_map(|_| random_server_bytes(rng)).collect();
    let (mut client, mut server) = (&client[..], &server[..]);
    let mut ended = false;
    while !client.is_empty() || !server.is_empty() {
        let largest = if rng.below(2) == 0 { 8 } else { 200 };
        let take = 1 + rng.below(largest);
        let from_client = server.is_empty() || (!client.is_empty() && rng.below(2) == 0);
        if from_client {
            let (piece, rest) = client.split_at(take.min(client.len()));
            engine.input(Side::Client, piece, now, &mut ports);
            client = rest;
        } else {
            let (piece, rest) = server.split_at(take.min(server.len()));
            engine.input(Side::Server, piece, now, &mut ports);
            server = rest;
        }
        let out: Vec<Action> = std::iter::from_fn(|| engine.poll_action()).collect();
        check_actions(&out, &addrs, &mut ended);
        assert!(engine.pending.len() <= MAX_PENDING);
    }
}

#[test]
fn random_exchanges_keep_the_invariants() {
    for seed in [1, 0x9e37_79b9_7f4a_7c15, 0xdead_beef] {
        let mut rng = XorShift(seed);
        for _ in 0..1000 {
            random_session(&mut rng);
        }
    }
}

#[test]
fn port_with_a_tab_never_reaches_the_server_unrewritten() {
    // Found by fuzzing: a server that splits on any blank would take this
    // line as PORT and connect to the client's chosen third party.
    for line in [
        &b"PORT\t8,8,8,8,0,22\r\n"[..],
        b"eprt\t|1|8.8.8.8|2000|\r\n",
    ] {
        let mut s = Session::greeted(config());
        assert_eq!(s.client(line), refused(Refusal::BadPort), "{line:?}");
    }
}

#[test]
fn proxy_port_is_never_the_servers_data_port() {
    // Without -R the redirect goes to the same host: a proxy port equal to
    // the server's port would make it no translation at all, and the
    // kernel would then not translate the connection's source either.
    let mut s = Session::greeted(config());
    s.client(b"PASV\r\n");
    // 195,80 is 50000, the port the engine would be handed next.
    let out = s.server(b"227 Entering Passive Mode (198,51,100,20,195,80)\r\n");
    let Some(Action::Open(pinhole)) = out.first() else {
        panic!("no pinhole: {out:?}")
    };
    assert_eq!(pinhole.rdr.target_port, 50000);
    assert_eq!(pinhole.proxy_port, 50001);
    assert_eq!(
        out[1],
        to_client(b"227 Entering Passive Mode (192,0,2,10,195,81)\r\n")
    );
}
