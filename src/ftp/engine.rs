//! The per-session protocol state machine: both directions' bytes and the
//! clock in, [`Action`]s out.
//!
//! Like quinn-proto's connection, it never reads a clock: the driver passes
//! `now` with every input and asks [`Engine::poll_timeout`] when to call
//! [`Engine::handle_timeout`]. The two idle rules of ftp-proxy(8) (the
//! server's 30 seconds until its first reply, then `-t` for each side) and
//! the choice between their 421 lines are therefore tested on a virtual
//! clock. The driver reports a pinhole the filter refused with
//! [`Engine::pinhole_failed`]; the engine drops what it had queued behind
//! it (giving back the proxy ports it had picked for it) and ends the
//! session.
//!
//! It follows OpenBSD's ftp-proxy.c (`client_parse`, `server_parse`,
//! `allow_data_connection`) with two decided improvements:
//!
//! - **Replies are matched to commands with a queue** instead of the
//!   original's single "pending command" that every line clears. Each
//!   forwarded command waits for its final reply (RFC 959 section 4.2), so
//!   a command pipelined after PASV/EPSV no longer stops the 227/229
//!   rewrite, and an unsolicited 227/229 opens nothing.
//! - **Multi-line 227/229 replies are understood**: their lines are held
//!   and replaced by the one rewritten line.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::log::Level;
use crate::pinhole::{Pinhole, SessionAddrs};

use super::command::{self, Command};
use super::line::{LineReader, Unclean};
use super::reply::{self, Code, ReplyLine, ReplyTracker};
use super::rewrite;
use super::{Action, ProxyPorts, Refusal, Side};

/// Data ports below this end the session, as in ftp-proxy.c's
/// `client_parse_cmd`/`server_parse`: the proxy never opens a pinhole to a
/// privileged port (the FTP bounce attack of RFC 2577 section 3). A port
/// that does not parse counts as 0.
const MIN_DATA_PORT: u16 = 1024;

/// The most commands awaiting replies; beyond it the oldest is forgotten, so
/// a client that pipelines without end cannot grow the session's memory.
const MAX_PENDING: usize = 256;

/// The most lines, and bytes, of a multi-line 227/229 reply held back.
const MAX_HELD_LINES: usize = 16;
const MAX_HELD_BYTES: usize = 4096;

/// What the engine needs from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// `-A`: only USER ftp / USER anonymous reach the server.
    pub anonymous_only: bool,
    /// `-6`: PASV and PORT end the session; EPRT is re-emitted as `|2|`.
    pub ipv6: bool,
    /// `-r`: active-mode data connections from PORT come from port 20.
    pub rfc_mode: bool,
    /// The `-D` threshold: [`Action::Log`] is only produced at or above it.
    pub log_level: Level,
}

/// The engine's two timers, fixed at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `-t`: how long either side may stay silent; `None` for `-t 0`.
    pub idle: Option<Duration>,
    /// How long the server has to send its first bytes, whatever `-t`
    /// says (ftp-proxy.c's CONNECT_TIMEOUT, 30 seconds).
    pub first_reply: Duration,
}

/// A passive-mode negotiation, whose reply the proxy rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passive {
    /// PASV, answered by `227`.
    Pasv,
    /// EPSV, answered by `229`.
    Epsv,
}

impl Passive {
    const ALL: [Passive; 2] = [Passive::Pasv, Passive::Epsv];

    fn reply_code(self) -> Code {
        match self {
            Passive::Pasv => 227,
            Passive::Epsv => 229,
        }
    }

    fn port(self, line: &[u8]) -> Option<u16> {
        match self {
            Passive::Pasv => reply::passive_port(line),
            Passive::Epsv => reply::extended_passive_port(line),
        }
    }

    /// The line the client gets instead: it names `orig`, the server the
    /// client believes it talks to, not the `-R` server behind the proxy.
    fn rewritten(self, orig: IpAddr, proxy_port: u16) -> Vec<u8> {
        match self {
            Passive::Pasv => rewrite::passive_reply(orig, proxy_port),
            Passive::Epsv => rewrite::extended_passive_reply(proxy_port),
        }
    }
}

/// One entry of the queue that matches replies to commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A command sent to the server (or the greeting the server owes),
    /// waiting for its final reply; `Some` for PASV and EPSV.
    Reply(Option<Passive>),
    /// The proxy's own `-A` answer, held until the replies to earlier
    /// commands have reached the client. Never at the head of the queue.
    AnonymousRefusal,
}

/// A multi-line 227/229 reply being held back until its last line.
#[derive(Debug)]
struct HeldReply {
    passive: Passive,
    text: Vec<u8>,
    lines: usize,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    addrs: SessionAddrs,
    client_lines: LineReader,
    server_lines: LineReader,
    replies: ReplyTracker,
    pending: VecDeque<Pending>,
    held: Option<HeldReply>,
    ended: bool,
    timeouts: Timeouts,
    /// When the client's silence ends the session (`-t`).
    client_deadline: Option<Instant>,
    /// When the server's silence ends the session: the first-reply limit
    /// until it has sent a byte, `-t` after.
    server_deadline: Option<Instant>,
    /// The server has sent bytes: its silence is now idleness, not a
    /// server that never answered, and its 421 says so.
    server_heard: bool,
    /// Actions not yet taken by [`Engine::poll_action`].
    queue: VecDeque<Action>,
}

impl Engine {
    /// A session whose connection to the server has just been started at
    /// `now`: the server owes the greeting, and both timers run.
    pub fn new(
        config: EngineConfig,
        timeouts: Timeouts,
        addrs: SessionAddrs,
        now: Instant,
    ) -> Engine {
        Engine {
            config,
            addrs,
            client_lines: LineReader::new(),
            server_lines: LineReader::new(),
            replies: ReplyTracker::new(),
            pending: VecDeque::from([Pending::Reply(None)]),
            held: None,
            ended: false,
            timeouts,
            client_deadline: timeouts.idle.map(|idle| now + idle),
            server_deadline: Some(now + timeouts.first_reply),
            server_heard: false,
            queue: VecDeque::new(),
        }
    }

    /// Bytes one side sent, received at `now`. What to do is then taken
    /// from [`Engine::poll_action`]. Any bytes restart that side's idle
    /// timer; nothing is taken after the session has ended.
    pub fn input(&mut self, side: Side, bytes: &[u8], now: Instant, ports: &mut dyn ProxyPorts) {
        if self.ended || bytes.is_empty() {
            return;
        }
        let idle_end = self.timeouts.idle.map(|idle| now + idle);
        match side {
            Side::Client => self.client_deadline = idle_end,
            Side::Server => {
                self.server_heard = true;
                self.server_deadline = idle_end;
            }
        }
        self.frame(side, bytes, ports);
    }

    /// The next thing to do, in order. After [`Action::End`] there is none.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.queue.pop_front()
    }

    /// When [`Engine::handle_timeout`] must be called next; `None` when no
    /// timer runs (`-t 0` once the server has spoken, or the session ended).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        match (self.client_deadline, self.server_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Checks the timers against `now`. A side silent past its deadline
    /// ends the session with its 421: the client's first, then the
    /// server's, whose line says whether the server never answered or went
    /// idle. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if self.client_deadline.is_some_and(|d| d <= now) {
            self.refuse(Refusal::ClientTimeout, Level::Err, || {
                "client timeout".to_owned()
            });
        } else if self.server_deadline.is_some_and(|d| d <= now) {
            let why = if self.server_heard {
                Refusal::ServerIdle
            } else {
                Refusal::ServerTimeout
            };
            self.refuse(why, Level::Notice, || "server timeout".to_owned());
        }
    }

    /// The filter refused the pinhole of the last [`Action::Open`] taken.
    /// What the engine queued after it (the rewritten line that would name
    /// a port nobody can reach) is dropped, the proxy ports of the pinholes
    /// dropped with it are given back to `ports` (they were picked, and
    /// will never be installed or released by the driver), and the session
    /// ends with the pinhole's 421. The driver has logged the filter's
    /// error and released the refused pinhole's own port.
    ///
    /// A later line of the same read may already have ended the session
    /// (a bad port): its refusal is still queued behind the rewritten line,
    /// and is replaced too, so that line never reaches the server. Once
    /// [`Action::End`] has been taken there is nothing left to change.
    pub fn pinhole_failed(&mut self, ports: &mut dyn ProxyPorts) {
        if self.ended && self.queue.is_empty() {
            return;
        }
        for action in self.queue.drain(..) {
            if let Action::Open(pinhole) = action {
                ports.release(pinhole.proxy_port);
            }
        }
        self.end(Refusal::Pinhole);
    }

    /// Whether the session has ended ([`Action::End`] has been queued).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Frames one side's bytes into lines and handles each, until the
    /// bytes run out or the session ends.
    fn frame(&mut self, side: Side, bytes: &[u8], ports: &mut dyn ProxyPorts) {
        let mut rest = bytes;
        while !self.ended {
            let next = match side {
                Side::Client => self.client_lines.next_line(&mut rest),
                Side::Server => self.server_lines.next_line(&mut rest),
            };
            match (next, side) {
                (Ok(Some(line)), Side::Client) => self.client_line(&line, ports),
                (Ok(Some(line)), Side::Server) => self.server_line(&line, ports),
                (Ok(None), _) => break,
                (Err(Unclean), Side::Client) => {
                    self.refuse(Refusal::ClientLine, Level::Err, || {
                        "client command too long or not clean".to_owned()
                    })
                }
                (Err(Unclean), Side::Server) => {
                    self.refuse(Refusal::ServerLine, Level::Err, || {
                        "server reply too long or not clean".to_owned()
                    })
                }
            }
        }
    }

    /// One complete client line (ftp-proxy.c's `client_parse`).
    fn client_line(&mut self, line: &[u8], ports: &mut dyn ProxyPorts) {
        self.log(Level::Debug, || format!("client: {}", shown(line)));
        match command::classify(line) {
            Command::Pasv | Command::Port if self.config.ipv6 => {
                self.refuse(Refusal::Ipv6PasvPort, Level::Crit, || {
                    "PASV and PORT not allowed with IPv6".to_owned()
                })
            }
            kind @ (Command::Port | Command::Eprt) => self.active(line, kind, ports),
            Command::Pasv => self.forward_command(line, Some(Passive::Pasv)),
            Command::Epsv => self.forward_command(line, Some(Passive::Epsv)),
            Command::StartsWithU
                if self.config.anonymous_only && !command::is_anonymous_login(line) =>
            {
                self.refuse_login()
            }
            Command::StartsWithU | Command::Other => self.forward_command(line, None),
        }
    }

    /// Sends a client line on unchanged. A line with command text will get
    /// a reply, so it joins the queue; a blank line does not.
    fn forward_command(&mut self, line: &[u8], passive: Option<Passive>) {
        self.queue.push_back(Action::ToServer(line.to_vec()));
        if command::has_command_text(line) {
            self.expect(Pending::Reply(passive));
        }
    }

    /// PORT or EPRT: the server is told to connect to the proxy, and the
    /// pinhole goes in at once, before the line reaches the server, so
    /// [`Action::Open`] comes first: a server that connects as soon as it
    /// reads PORT finds the pinhole in place.
    fn active(&mut self, line: &[u8], kind: Command, ports: &mut dyn ProxyPorts) {
        let is_port = kind == Command::Port;
        let port = if is_port {
            command::port_argument(line)
        } else {
            command::eprt_argument(line)
        };
        let Some(port) = port.filter(|&port| port >= MIN_DATA_PORT) else {
            return self.refuse_bad_port(line);
        };
        let proxy_port = ports.pick(port);
        let rewritten = if is_port {
            rewrite::port_command(self.addrs.proxy, proxy_port)
        } else {
            rewrite::eprt_command(self.addrs.proxy, proxy_port)
        };
        self.log(Level::Debug, || format!("proxy: {}", shown(&rewritten)));
        self.log(Level::Info, || {
            format!("active: server to client port {port} via port {proxy_port}")
        });
        let from_port_20 = self.config.rfc_mode && is_port;
        let pinhole = Pinhole::active(&self.addrs, port, proxy_port, from_port_20);
        self.queue.push_back(Action::Open(pinhole));
        self.queue.push_back(Action::ToServer(rewritten));
        self.expect(Pending::Reply(None));
    }

    /// `-A` and a `U` line other than USER ftp/anonymous: the proxy answers
    /// 500 itself, in turn after the replies the client still waits for, and
    /// the session goes on, as ftp-proxy.c's `client_parse_anon`.
    fn refuse_login(&mut self) {
        if self.pending.is_empty() {
            self.send_anonymous_refusal();
        } else {
            self.expect(Pending::AnonymousRefusal);
        }
    }

    fn send_anonymous_refusal(&mut self) {
        self.log(Level::Debug, || {
            format!("proxy: {}", shown(rewrite::ANONYMOUS_ONLY))
        });
        self.queue
            .push_back(Action::ToClient(rewrite::ANONYMOUS_ONLY.to_vec()));
    }

    /// One complete server line (ftp-proxy.c's `server_parse`, with the reply queue and
    /// multi-line 227/229 of the improvements).
    fn server_line(&mut self, line: &[u8], ports: &mut dyn ProxyPorts) {
        self.log(Level::Debug, || format!("server: {}", shown(line)));
        let place = self.replies.place(line);
        if let Some(held) = self.held.take() {
            return self.hold_line(held, line, place, ports);
        }
        match place {
            ReplyLine::Single(code) if reply::is_final(code) => match self.awaited_passive(code) {
                Some(passive) => self.rewrite_passive(passive, line, ports),
                None => {
                    self.queue.push_back(Action::ToClient(line.to_vec()));
                    self.complete_oldest();
                }
            },
            ReplyLine::First(code) => match self.awaited_passive(code) {
                Some(passive) => {
                    self.held = Some(HeldReply {
                        passive,
                        text: line.to_vec(),
                        lines: 1,
                    })
                }
                None => self.queue.push_back(Action::ToClient(line.to_vec())),
            },
            ReplyLine::Last(code) => {
                self.queue.push_back(Action::ToClient(line.to_vec()));
                if reply::is_final(code) {
                    self.complete_oldest();
                }
            }
            ReplyLine::Single(_) | ReplyLine::Inner | ReplyLine::Stray => {
                self.queue.push_back(Action::ToClient(line.to_vec()))
            }
        }
    }

    /// The passive negotiation a reply with this code answers, if one is
    /// outstanding: 227 for PASV, 229 for EPSV. Anything else, including an
    /// unsolicited 227/229, passes through.
    fn awaited_passive(&self, code: Code) -> Option<Passive> {
        Passive::ALL.into_iter().find(|&passive| {
            passive.reply_code() == code && self.pending.contains(&Pending::Reply(Some(passive)))
        })
    }

    /// A line of a held multi-line 227/229: held too, up to a bound, until
    /// the last line releases the whole reply as one rewritten line.
    fn hold_line(
        &mut self,
        mut held: HeldReply,
        line: &[u8],
        place: ReplyLine,
        ports: &mut dyn ProxyPorts,
    ) {
        held.text.extend_from_slice(line);
        held.lines += 1;
        if held.lines > MAX_HELD_LINES || held.text.len() > MAX_HELD_BYTES {
            let code = held.passive.reply_code();
            return self.refuse(Refusal::ServerLine, Level::Err, || {
                format!("server multi-line {code} reply too long")
            });
        }
        if matches!(place, ReplyLine::Last(_)) {
            self.rewrite_passive(held.passive, &held.text, ports);
        } else {
            self.held = Some(held);
        }
    }

    /// A 227/229 reply (one line, or all the lines of a multi-line one) to
    /// an outstanding PASV/EPSV: the port comes from the first line that
    /// parses, the pinhole goes in, and the client gets one rewritten line.
    fn rewrite_passive(&mut self, passive: Passive, reply: &[u8], ports: &mut dyn ProxyPorts) {
        let port = reply
            .split_inclusive(|&byte| byte == b'\n')
            .find_map(|line| passive.port(line));
        let Some(port) = port.filter(|&port| port >= MIN_DATA_PORT) else {
            return self.refuse_bad_port(reply);
        };
        let proxy_port = ports.pick(port);
        let rewritten = passive.rewritten(self.addrs.orig, proxy_port);
        self.log(Level::Info, || {
            format!("passive: client to server port {port} via port {proxy_port}")
        });
        self.log(Level::Debug, || format!("proxy: {}", shown(&rewritten)));
        self.complete_through(passive);
        self.queue.push_back(Action::Open(Pinhole::passive(
            &self.addrs,
            port,
            proxy_port,
        )));
        self.queue.push_back(Action::ToClient(rewritten));
        self.release_anonymous_refusals();
    }

    /// Adds an entry to the reply queue, forgetting the oldest beyond
    /// [`MAX_PENDING`].
    fn expect(&mut self, entry: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(entry);
        self.release_anonymous_refusals();
    }

    /// A final reply answered the oldest command.
    fn complete_oldest(&mut self) {
        self.pending.pop_front();
        self.release_anonymous_refusals();
    }

    /// A 227/229 answered the first outstanding PASV/EPSV: the commands
    /// before it are taken as answered too, and the proxy's own answers
    /// among them are sent first. The caller releases those after it.
    fn complete_through(&mut self, passive: Passive) {
        let awaited = Pending::Reply(Some(passive));
        if !self.pending.contains(&awaited) {
            self.pending.pop_front();
            return;
        }
        while let Some(entry) = self.pending.pop_front() {
            match entry {
                Pending::AnonymousRefusal => self.send_anonymous_refusal(),
                _ if entry == awaited => break,
                Pending::Reply(_) => {}
            }
        }
    }

    /// Sends the `-A` answers that no earlier command waits in front of.
    fn release_anonymous_refusals(&mut self) {
        while self.pending.front() == Some(&Pending::AnonymousRefusal) {
            self.pending.pop_front();
            self.send_anonymous_refusal();
        }
    }

    fn refuse_bad_port(&mut self, line: &[u8]) {
        self.refuse(Refusal::BadPort, Level::Crit, || {
            format!("bad port in '{}'", shown(line))
        });
    }

    /// Ends the session: the log line, the client's 421, then
    /// [`Action::End`]; nothing is produced after it.
    fn refuse(&mut self, why: Refusal, level: Level, message: impl FnOnce() -> String) {
        self.log(level, message);
        self.end(why);
    }

    /// The client's 421, then [`Action::End`]; nothing is produced after.
    fn end(&mut self, why: Refusal) {
        self.queue
            .push_back(Action::ToClient(rewrite::refusal(why).to_vec()));
        self.queue.push_back(Action::End);
        self.ended = true;
        self.held = None;
        self.pending.clear();
    }

    /// Produces a log action only when `-D` lets the level through, and
    /// only then formats the message.
    fn log(&mut self, level: Level, message: impl FnOnce() -> String) {
        if level <= self.config.log_level {
            self.queue.push_back(Action::Log(level, message()));
        }
    }
}

/// A protocol line as log text. The logger vis(3)-encodes it, so CR and LF
/// show as `\r\n`; bytes that are not UTF-8 show as U+FFFD.
fn shown(line: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(line)
}

#[cfg(test)]
mod tests;
