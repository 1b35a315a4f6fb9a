//! The fuzz targets' bodies. Each takes libFuzzer's input and panics on a
//! violated invariant; the binaries in `fuzz_targets/` only call them, so
//! `cargo test` can replay the corpus on any toolchain.

use ftp_proxy::ftp::command::{self, Command};
use ftp_proxy::ftp::line::{LineReader, Unclean};
use ftp_proxy::ftp::reply::{self, ReplyLine, ReplyTracker};
use ftp_proxy::ftp::Action;
use ftp_proxy::pinhole::Mode;

use crate::check::{lines, show, Harness};
use crate::input::{self, Setup, Side};
use crate::model::{self, ClientKind, LineModel, MAX_LINE};

/// The whole engine: both sides' bytes, in chunks, interleaved as the
/// input says, under every combination of options and address families.
/// All invariants of [`crate::check`] apply to every batch of actions.
pub fn session(data: &[u8]) {
    let (setup, rest) = input::setup(data);
    let mut h = Harness::new(setup);
    for (side, bytes) in input::chunks(rest) {
        h.feed(side, &bytes);
        if h.ended() {
            break;
        }
    }
}

/// Client bytes with every letter that starts a command the proxy reads
/// (PASV/PORT/EPSV/EPRT, USER under -A) turned into `X`, so that every
/// client line is one the proxy only frames and forwards.
fn uninterpreted(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in &mut bytes {
        if matches!(b, b'P' | b'p' | b'E' | b'e' | b'U' | b'u') {
            *b = b'X';
        }
    }
    bytes
}

/// One direction's [`LineReader`], fed the same chunks as the engine.
#[derive(Default)]
struct DirectReader {
    reader: LineReader,
    lines: Vec<u8>,
    failed: bool,
}

impl DirectReader {
    /// Feeds a chunk and checks the reader against the model: the same
    /// lines, an error exactly where the model allows one, and never a
    /// whole line's worth of bytes held.
    fn push(&mut self, side: Side, bytes: &[u8], model: &LineModel) {
        if self.failed {
            return;
        }
        let mut rest = bytes;
        loop {
            match self.reader.next_line(&mut rest) {
                Ok(Some(line)) => {
                    assert!(
                        line.ends_with(b"\n") && line.len() <= MAX_LINE && !line.contains(&0),
                        "LineReader gave {}",
                        show(&line)
                    );
                    self.lines.extend_from_slice(&line);
                }
                Ok(None) => {
                    assert!(rest.is_empty(), "LineReader left input unread");
                    assert!(self.reader.buffered() < MAX_LINE);
                    break;
                }
                Err(Unclean) => {
                    self.failed = true;
                    break;
                }
            }
        }
        assert!(
            self.lines == model.good,
            "{side:?}: LineReader lines {}, framing says {}",
            show(&self.lines),
            show(&model.good)
        );
        if self.failed {
            assert!(model.may_end(), "{side:?}: LineReader refused good lines");
        } else {
            assert!(!model.must_end(), "{side:?}: LineReader missed a bad line");
        }
    }
}

/// Line framing, checked against [`LineModel`], both for
/// [`LineReader`] alone and through the engine: lines the proxy does not
/// rewrite are forwarded byte for byte, in order, as soon as they are
/// complete, up to 500 bytes with the LF; 500 bytes without an LF or a NUL
/// ends the session before anything of that line is sent. A proxy that
/// forwarded part of an overlong line, or a line with a NUL, would let a
/// peer smuggle what the proxy exists to filter (a second command hidden
/// behind a NUL, a line split at the limit); one that held complete lines
/// back would stall the session.
pub fn line_framing(data: &[u8]) {
    let (setup, rest) = input::setup(data);
    let mut h = Harness::new(setup);
    let mut models = [LineModel::default(), LineModel::default()];
    let mut forwarded: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut direct = [DirectReader::default(), DirectReader::default()];
    for (side, bytes) in input::chunks(rest) {
        let bytes = match side {
            Side::Client => uninterpreted(bytes),
            Side::Server => bytes,
        };
        let out = h.feed(side, &bytes);
        let i = side as usize;
        models[i].push(&bytes);
        direct[i].push(side, &bytes, &models[i]);
        let mut ahead = Vec::new();
        let mut back = Vec::new();
        let mut ended = false;
        for action in &out {
            match (side, action) {
                (Side::Client, Action::ToServer(b)) | (Side::Server, Action::ToClient(b)) => {
                    ahead.extend_from_slice(b)
                }
                (_, Action::ToServer(b) | Action::ToClient(b)) => back.extend_from_slice(b),
                (_, Action::End) => ended = true,
                (_, Action::Log(..)) => {}
                (_, Action::Open(p)) => panic!("pinhole for an uninterpreted line: {p:?}"),
            }
        }
        if ended {
            // The harness checked that the last line to the client is a 421.
            let to_client = match side {
                Side::Client => &mut back,
                Side::Server => &mut ahead,
            };
            let n = lines(to_client).last().map_or(0, <[u8]>::len);
            to_client.truncate(to_client.len() - n);
        }
        assert!(
            back.is_empty(),
            "{side:?} input answered with {}",
            show(&back)
        );
        forwarded[i].extend_from_slice(&ahead);
        assert!(
            forwarded[i] == models[i].good,
            "{side:?} lines forwarded as {:?}, framing says {:?}",
            show(&forwarded[i]),
            show(&models[i].good)
        );
        if ended {
            assert!(models[i].may_end(), "session ended on good {side:?} lines");
            break;
        }
        assert!(
            !models[i].must_end(),
            "{side:?} line over 500 bytes or with a NUL did not end the session"
        );
    }
}

/// The input's rest as the peer's bytes: as they are if they end with LF,
/// with CRLF added otherwise. Returns whether it is a single line.
fn one_reply(rest: &[u8]) -> (Vec<u8>, bool) {
    let mut line = rest.to_vec();
    if !line.ends_with(b"\n") {
        line.extend_from_slice(b"\r\n");
    }
    let single = line.iter().filter(|&&b| b == b'\n').count() == 1;
    (line, single)
}

fn opened(out: &[Action]) -> Vec<&ftp_proxy::pinhole::Pinhole> {
    out.iter()
        .filter_map(|a| match a {
            Action::Open(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// One client line (`options`, `families`, then the line) after the banner.
/// Beyond the invariants: a line the proxy takes as PORT or EPRT either
/// opens a pinhole or ends the session (never reaches the server as it
/// is), and a textbook PORT/EPRT opens exactly the pinhole it names, or
/// ends the session when it names a port below 1024.
pub fn client_command(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let setup = Setup {
        config: input::config(byte(0)),
        addrs: input::addrs(byte(0), byte(1)),
        first_port: 50000,
    };
    let (line, single) = one_reply(data.get(2..).unwrap_or(&[]));
    for l in lines(&line) {
        command_parsers(l);
    }
    let mut h = Harness::new(setup);
    h.feed(Side::Server, b"220 ready\r\n");
    let out = h.feed(Side::Client, &line);
    if !single || line.len() > MAX_LINE || line.contains(&0) {
        return;
    }
    let pinholes = opened(&out);
    if matches!(
        model::classify_client(&line),
        ClientKind::Port | ClientKind::Eprt
    ) {
        assert!(
            pinholes.len() == 1 || h.ended(),
            "PORT/EPRT neither opened a pinhole nor ended the session: {}",
            show(&line)
        );
    }
    if let Some(port) = model::canonical_client_port(&line) {
        if port < 1024 {
            assert!(
                h.ended(),
                "PORT/EPRT to port {port} did not end the session"
            );
        } else if !(setup.config.ipv6 && line.starts_with(b"PORT")) {
            assert!(
                pinholes.len() == 1
                    && pinholes[0].mode == Mode::Active
                    && pinholes[0].rdr.target_port == port,
                "{} opened {pinholes:?}",
                show(&line)
            );
        }
    }
}

/// `ftp::command` on one line: classification as the original's first
/// letter rules, ports only among the numbers of the line, textbook lines
/// understood, and `-A` letting through nothing but anonymous logins.
fn command_parsers(line: &[u8]) {
    let kind = command::classify(line);
    let expected = match model::classify_client(line) {
        ClientKind::Pasv => Command::Pasv,
        ClientKind::Port => Command::Port,
        ClientKind::Epsv => Command::Epsv,
        ClientKind::Eprt => Command::Eprt,
        ClientKind::Other if line.len() >= 4 && matches!(line[0], b'U' | b'u') => {
            Command::StartsWithU
        }
        ClientKind::Other => Command::Other,
    };
    assert_eq!(kind, expected, "classify({})", show(line));
    let named = model::port_candidates(line);
    for (what, port) in [
        ("port_argument", command::port_argument(line)),
        ("eprt_argument", command::eprt_argument(line)),
    ] {
        if let Some(port) = port {
            assert!(
                named.contains(&port),
                "{what}({}) = {port}, not a number of the line",
                show(line)
            );
        }
    }
    if let Some(port) = model::canonical_client_port(line) {
        let parsed = if line.starts_with(b"PORT") {
            command::port_argument(line)
        } else {
            command::eprt_argument(line)
        };
        assert_eq!(parsed, Some(port), "textbook line {}", show(line));
    }
    assert!(
        !command::is_anonymous_login(line) || model::is_anonymous_user(line),
        "is_anonymous_login({})",
        show(line)
    );
}

/// `ftp::reply` on a reply's lines: ports only among the numbers of the
/// line, textbook 227/229 understood, and the RFC 959 section 4.2 reply structure
/// (a multi-line reply ends only at its own code and a space).
fn reply_parsers(reply_bytes: &[u8]) {
    let mut tracker = ReplyTracker::new();
    let mut open: Option<&[u8]> = None;
    for line in lines(reply_bytes) {
        let named = model::port_candidates(line);
        let passive = reply::passive_port(line);
        let extended = reply::extended_passive_port(line);
        for (what, port) in [
            ("passive_port", passive),
            ("extended_passive_port", extended),
        ] {
            if let Some(port) = port {
                assert!(
                    named.contains(&port),
                    "{what}({}) = {port}, not a number of the line",
                    show(line)
                );
            }
        }
        if let Some((port, is_229)) = model::canonical_server_port(line) {
            let parsed = if is_229 { extended } else { passive };
            assert_eq!(parsed, Some(port), "textbook line {}", show(line));
        }
        let code = match line {
            [b'1'..=b'9', b'0'..=b'9', b'0'..=b'9', b' ' | b'-', ..] => Some(&line[..3]),
            _ => None,
        };
        let value = || {
            code.unwrap()
                .iter()
                .fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'))
        };
        let expected = match (open, code) {
            (Some(o), Some(c)) if o == c && line[3] == b' ' => {
                open = None;
                ReplyLine::Last(value())
            }
            (Some(_), _) => ReplyLine::Inner,
            (None, Some(c)) if line[3] == b'-' => {
                open = Some(c);
                ReplyLine::First(value())
            }
            (None, Some(_)) => ReplyLine::Single(value()),
            (None, None) => ReplyLine::Stray,
        };
        assert_eq!(tracker.place(line), expected, "place({})", show(line));
    }
}

/// One server reply (`options`, `families`, bit 0 of the third byte: EPSV
/// rather than PASV, then the reply's lines) to a pending PASV or EPSV.
/// Beyond the invariants: a textbook 227 to PASV or 229 to EPSV opens
/// exactly the pinhole it names, or ends the session when it names a port
/// below 1024.
pub fn server_reply(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let setup = Setup {
        config: input::config(byte(0)),
        addrs: input::addrs(byte(0), byte(1)),
        first_port: 50000,
    };
    // PASV would end an -6 session before the reply.
    let epsv = byte(2) & 1 != 0 || setup.config.ipv6;
    let (reply, single) = one_reply(data.get(3..).unwrap_or(&[]));
    reply_parsers(&reply);
    let mut h = Harness::new(setup);
    h.feed(Side::Server, b"220 ready\r\n");
    h.feed(Side::Client, if epsv { b"EPSV\r\n" } else { b"PASV\r\n" });
    let out = h.feed(Side::Server, &reply);
    if !single || reply.len() > MAX_LINE || reply.contains(&0) {
        return;
    }
    let Some((port, is_229)) = model::canonical_server_port(&reply) else {
        return;
    };
    if is_229 != epsv || (!is_229 && model::as_v4(setup.addrs.orig).is_none()) {
        return;
    }
    if port < 1024 {
        assert!(h.ended(), "{} did not end the session", show(&reply));
        return;
    }
    let pinholes = opened(&out);
    assert!(
        pinholes.len() == 1
            && pinholes[0].mode == Mode::Passive
            && pinholes[0].rdr.target_port == port,
        "{} opened {pinholes:?}",
        show(&reply)
    );
}
