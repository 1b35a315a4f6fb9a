//! The per-session protocol state machine: both directions' bytes in,
//! [`Action`]s out.
//!
//! It follows ftp-proxy(8) (spec §4) with two decided improvements:
//!
//! - **Replies are matched to commands with a queue** instead of the
//!   original's single "pending command" that every line clears (§11 trap
//!   9). Each forwarded command waits for its final reply, so a command
//!   pipelined after PASV/EPSV no longer stops the 227/229 rewrite, and an
//!   unsolicited 227/229 opens nothing.
//! - **Multi-line 227/229 replies are understood**: their lines are held
//!   and replaced by the one rewritten line.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;

use crate::log::Level;
use crate::pinhole::{Pinhole, SessionAddrs};

use super::command::{self, Command};
use super::line::{LineReader, Unclean};
use super::reply::{self, Code, ReplyLine, ReplyTracker};
use super::rewrite;
use super::{Action, ProxyPorts, Refusal};

/// Data ports below this end the session (spec §4.4, §11 trap 5); a port
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
    /// client believes it talks to (spec §11 trap 4).
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
}

/// Which control connection bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Client,
    Server,
}

impl Engine {
    pub fn new(config: EngineConfig, addrs: SessionAddrs) -> Engine {
        Engine {
            config,
            addrs,
            client_lines: LineReader::new(),
            server_lines: LineReader::new(),
            replies: ReplyTracker::new(),
            pending: VecDeque::from([Pending::Reply(None)]),
            held: None,
            ended: false,
        }
    }

    /// Bytes the client sent. Appends what to do to `out`.
    pub fn client_input(
        &mut self,
        bytes: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        self.input(Peer::Client, bytes, ports, out);
    }

    /// Bytes the server sent. Appends what to do to `out`.
    pub fn server_input(
        &mut self,
        bytes: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        self.input(Peer::Server, bytes, ports, out);
    }

    /// Frames one side's bytes into lines and handles each, until the
    /// bytes run out or the session ends.
    fn input(
        &mut self,
        peer: Peer,
        bytes: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        let mut rest = bytes;
        while !self.ended {
            let next = match peer {
                Peer::Client => self.client_lines.next_line(&mut rest),
                Peer::Server => self.server_lines.next_line(&mut rest),
            };
            match (next, peer) {
                (Ok(Some(line)), Peer::Client) => self.client_line(&line, ports, out),
                (Ok(Some(line)), Peer::Server) => self.server_line(&line, ports, out),
                (Ok(None), _) => break,
                (Err(Unclean), Peer::Client) => self.refuse(
                    Refusal::ClientLine,
                    Level::Err,
                    || "client command too long or not clean".to_owned(),
                    out,
                ),
                (Err(Unclean), Peer::Server) => self.refuse(
                    Refusal::ServerLine,
                    Level::Err,
                    || "server reply too long or not clean".to_owned(),
                    out,
                ),
            }
        }
    }

    /// One complete client line (spec §4.2).
    fn client_line(&mut self, line: &[u8], ports: &mut dyn ProxyPorts, out: &mut Vec<Action>) {
        self.log(out, Level::Debug, || format!("client: {}", shown(line)));
        match command::classify(line) {
            Command::Pasv | Command::Port if self.config.ipv6 => self.refuse(
                Refusal::Ipv6PasvPort,
                Level::Crit,
                || "PASV and PORT not allowed with IPv6".to_owned(),
                out,
            ),
            kind @ (Command::Port | Command::Eprt) => self.active(line, kind, ports, out),
            Command::Pasv => self.forward_command(line, Some(Passive::Pasv), out),
            Command::Epsv => self.forward_command(line, Some(Passive::Epsv), out),
            Command::StartsWithU
                if self.config.anonymous_only && !command::is_anonymous_login(line) =>
            {
                self.refuse_login(out)
            }
            Command::StartsWithU | Command::Other => self.forward_command(line, None, out),
        }
    }

    /// Sends a client line on unchanged. A line with command text will get
    /// a reply, so it joins the queue; a blank line does not.
    fn forward_command(&mut self, line: &[u8], passive: Option<Passive>, out: &mut Vec<Action>) {
        out.push(Action::ToServer(line.to_vec()));
        if command::has_command_text(line) {
            self.expect(Pending::Reply(passive), out);
        }
    }

    /// PORT or EPRT: the server is told to connect to the proxy, and the
    /// pinhole goes in at once, before the line reaches the server (spec
    /// §11 trap 13), so [`Action::Open`] comes first.
    fn active(
        &mut self,
        line: &[u8],
        kind: Command,
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        let is_port = kind == Command::Port;
        let port = if is_port {
            command::port_argument(line)
        } else {
            command::eprt_argument(line)
        };
        let Some(port) = port.filter(|&port| port >= MIN_DATA_PORT) else {
            return self.refuse_bad_port(line, out);
        };
        let proxy_port = ports.pick(port);
        let rewritten = if is_port {
            rewrite::port_command(self.addrs.proxy, proxy_port)
        } else {
            rewrite::eprt_command(self.addrs.proxy, proxy_port)
        };
        self.log(out, Level::Debug, || {
            format!("proxy: {}", shown(&rewritten))
        });
        self.log(out, Level::Info, || {
            format!("active: server to client port {port} via port {proxy_port}")
        });
        let from_port_20 = self.config.rfc_mode && is_port;
        let pinhole = Pinhole::active(&self.addrs, port, proxy_port, from_port_20);
        out.push(Action::Open(pinhole));
        out.push(Action::ToServer(rewritten));
        self.expect(Pending::Reply(None), out);
    }

    /// `-A` and a `U` line other than USER ftp/anonymous: the proxy answers
    /// 500 itself, in turn after the replies the client still waits for, and
    /// the session goes on (spec §4.2).
    fn refuse_login(&mut self, out: &mut Vec<Action>) {
        if self.pending.is_empty() {
            self.send_anonymous_refusal(out);
        } else {
            self.expect(Pending::AnonymousRefusal, out);
        }
    }

    fn send_anonymous_refusal(&self, out: &mut Vec<Action>) {
        self.log(out, Level::Debug, || {
            format!("proxy: {}", shown(rewrite::ANONYMOUS_ONLY))
        });
        out.push(Action::ToClient(rewrite::ANONYMOUS_ONLY.to_vec()));
    }

    /// One complete server line (spec §4.6, with the reply queue and
    /// multi-line 227/229 of the improvements).
    fn server_line(&mut self, line: &[u8], ports: &mut dyn ProxyPorts, out: &mut Vec<Action>) {
        self.log(out, Level::Debug, || format!("server: {}", shown(line)));
        let place = self.replies.place(line);
        if let Some(held) = self.held.take() {
            return self.hold_line(held, line, place, ports, out);
        }
        match place {
            ReplyLine::Single(code) if reply::is_final(code) => match self.awaited_passive(code) {
                Some(passive) => self.rewrite_passive(passive, line, ports, out),
                None => {
                    out.push(Action::ToClient(line.to_vec()));
                    self.complete_oldest(out);
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
                None => out.push(Action::ToClient(line.to_vec())),
            },
            ReplyLine::Last(code) => {
                out.push(Action::ToClient(line.to_vec()));
                if reply::is_final(code) {
                    self.complete_oldest(out);
                }
            }
            ReplyLine::Single(_) | ReplyLine::Inner | ReplyLine::Stray => {
                out.push(Action::ToClient(line.to_vec()))
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
        out: &mut Vec<Action>,
    ) {
        held.text.extend_from_slice(line);
        held.lines += 1;
        if held.lines > MAX_HELD_LINES || held.text.len() > MAX_HELD_BYTES {
            let code = held.passive.reply_code();
            return self.refuse(
                Refusal::ServerLine,
                Level::Err,
                || format!("server multi-line {code} reply too long"),
                out,
            );
        }
        if matches!(place, ReplyLine::Last(_)) {
            self.rewrite_passive(held.passive, &held.text, ports, out);
        } else {
            self.held = Some(held);
        }
    }

    /// A 227/229 reply (one line, or all the lines of a multi-line one) to
    /// an outstanding PASV/EPSV: the port comes from the first line that
    /// parses, the pinhole goes in, and the client gets one rewritten line.
    fn rewrite_passive(
        &mut self,
        passive: Passive,
        reply: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        let port = reply
            .split_inclusive(|&byte| byte == b'\n')
            .find_map(|line| passive.port(line));
        let Some(port) = port.filter(|&port| port >= MIN_DATA_PORT) else {
            return self.refuse_bad_port(reply, out);
        };
        let proxy_port = ports.pick(port);
        let rewritten = passive.rewritten(self.addrs.orig, proxy_port);
        self.log(out, Level::Info, || {
            format!("passive: client to server port {port} via port {proxy_port}")
        });
        self.log(out, Level::Debug, || {
            format!("proxy: {}", shown(&rewritten))
        });
        self.complete_through(passive, out);
        out.push(Action::Open(Pinhole::passive(
            &self.addrs,
            port,
            proxy_port,
        )));
        out.push(Action::ToClient(rewritten));
        self.release_anonymous_refusals(out);
    }

    /// Adds an entry to the reply queue, forgetting the oldest beyond
    /// [`MAX_PENDING`].
    fn expect(&mut self, entry: Pending, out: &mut Vec<Action>) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(entry);
        self.release_anonymous_refusals(out);
    }

    /// A final reply answered the oldest command.
    fn complete_oldest(&mut self, out: &mut Vec<Action>) {
        self.pending.pop_front();
        self.release_anonymous_refusals(out);
    }

    /// A 227/229 answered the first outstanding PASV/EPSV: the commands
    /// before it are taken as answered too, and the proxy's own answers
    /// among them are sent first. The caller releases those after it.
    fn complete_through(&mut self, passive: Passive, out: &mut Vec<Action>) {
        let awaited = Pending::Reply(Some(passive));
        if !self.pending.contains(&awaited) {
            self.pending.pop_front();
            return;
        }
        while let Some(entry) = self.pending.pop_front() {
            match entry {
                Pending::AnonymousRefusal => self.send_anonymous_refusal(out),
                _ if entry == awaited => break,
                Pending::Reply(_) => {}
            }
        }
    }

    /// Sends the `-A` answers that no earlier command waits in front of.
    fn release_anonymous_refusals(&mut self, out: &mut Vec<Action>) {
        while self.pending.front() == Some(&Pending::AnonymousRefusal) {
            self.pending.pop_front();
            self.send_anonymous_refusal(out);
        }
    }

    fn refuse_bad_port(&mut self, line: &[u8], out: &mut Vec<Action>) {
        self.refuse(
            Refusal::BadPort,
            Level::Crit,
            || format!("bad port in '{}'", shown(line)),
            out,
        );
    }

    /// Ends the session: the log line, the client's 421, then
    /// [`Action::End`]; nothing is produced after it.
    fn refuse(
        &mut self,
        why: Refusal,
        level: Level,
        message: impl FnOnce() -> String,
        out: &mut Vec<Action>,
    ) {
        self.log(out, level, message);
        out.push(Action::ToClient(rewrite::refusal(why).to_vec()));
        out.push(Action::End);
        self.ended = true;
        self.held = None;
        self.pending.clear();
    }

    /// Produces a log action only when `-D` lets the level through, and
    /// only then formats the message.
    fn log(&self, out: &mut Vec<Action>, level: Level, message: impl FnOnce() -> String) {
        if level <= self.config.log_level {
            out.push(Action::Log(level, message()));
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
