//! Small, obviously-correct reference pieces the invariants are stated in:
//! line framing, the first-letter classification of client lines, the ports
//! a line could possibly name, and the byte-exact lines that announce a
//! pinhole to a peer (ftp-proxy.c's `allow_data_connection`).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

/// The longest line either side may send, LF included (MAX_LINE).
pub const MAX_LINE: usize = 500;

/// Splits one direction's bytes into LF-terminated lines.
#[derive(Debug, Default)]
pub struct Framer {
    tail: Vec<u8>,
}

impl Framer {
    /// Appends bytes; returns the lines they complete, LF included.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &b in bytes {
            self.tail.push(b);
            if b == b'\n' {
                lines.push(std::mem::take(&mut self.tail));
            }
        }
        lines
    }
}

/// Framing as ftp-proxy(8) defines it (ftp-proxy.c's `getline`): a line ends with LF and
/// may be 500 bytes long with it; 500 bytes without an LF, or a NUL before
/// the LF, is an error that ends the session.
#[derive(Debug, Default)]
pub struct LineModel {
    tail: Vec<u8>,
    /// The good complete lines before the first bad one, concatenated.
    pub good: Vec<u8>,
    bad: bool,
}

impl LineModel {
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.bad {
                return;
            }
            self.tail.push(b);
            if b == b'\n' {
                if self.tail.contains(&0) {
                    self.bad = true;
                } else {
                    self.good.append(&mut self.tail);
                }
            } else if self.tail.len() >= MAX_LINE {
                self.bad = true;
            }
        }
    }

    /// A complete line with a NUL, or 500 bytes without an LF, was seen:
    /// the session must have ended.
    pub fn must_end(&self) -> bool {
        self.bad
    }

    /// The session may already have ended: a NUL may be caught before its
    /// line is complete.
    pub fn may_end(&self) -> bool {
        self.bad || self.tail.contains(&0)
    }
}

/// What a client line is, by the original's first-letter rules (ftp-proxy.c's `client_parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Pasv,
    Port,
    Epsv,
    Eprt,
    Other,
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

pub fn classify_client(line: &[u8]) -> ClientKind {
    if line.len() < 4 {
        ClientKind::Other
    } else if starts_with_ci(line, b"PASV") {
        ClientKind::Pasv
    } else if starts_with_ci(line, b"PORT") && is_blank_after_keyword(line) {
        ClientKind::Port
    } else if starts_with_ci(line, b"EPSV") {
        ClientKind::Epsv
    } else if starts_with_ci(line, b"EPRT") && is_blank_after_keyword(line) {
        ClientKind::Eprt
    } else {
        ClientKind::Other
    }
}

/// A line a server would take as PORT or EPRT: the keyword in any case and
/// a blank after it. Such a line names an address for the server to connect
/// to; only the proxy's own rewrite may ever carry one.
pub fn is_port_like(line: &[u8]) -> bool {
    (starts_with_ci(line, b"PORT") || starts_with_ci(line, b"EPRT")) && is_blank_after_keyword(line)
}

/// A blank (C's isspace() without CR and LF) right after the 4-letter
/// keyword: what a server splitting on any blank ends the command word on.
fn is_blank_after_keyword(line: &[u8]) -> bool {
    matches!(line.get(4), Some(b' ' | b'\t' | 0x0b | 0x0c))
}

/// A USER line (any case) as a server would take it.
pub fn is_user(line: &[u8]) -> bool {
    starts_with_ci(line, b"USER") && !matches!(line.get(4), Some(c) if c.is_ascii_alphanumeric())
}

/// `USER ftp` or `USER anonymous`, any case, ending in CRLF or LF.
pub fn is_anonymous_user(line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    body.eq_ignore_ascii_case(b"USER ftp") || body.eq_ignore_ascii_case(b"USER anonymous")
}

/// Every port a line could be read to name, however it is parsed: each
/// decimal number that fits in 16 bits, and `a * 256 + b` for each two
/// numbers in a row below 256 (PORT and 227's last two fields). A pinhole
/// port outside this set was not named by the peer: it came from an
/// overflow, a truncation, or state that belongs to another line.
pub fn port_candidates(line: &[u8]) -> HashSet<u16> {
    let mut numbers: Vec<u64> = Vec::new();
    let mut current: Option<u64> = None;
    for &b in line {
        if b.is_ascii_digit() {
            let v = current.unwrap_or(0);
            current = Some(v.saturating_mul(10).saturating_add(u64::from(b - b'0')));
        } else if let Some(v) = current.take() {
            numbers.push(v);
        }
    }
    numbers.extend(current);
    let mut ports: HashSet<u16> = numbers
        .iter()
        .filter_map(|&n| u16::try_from(n).ok())
        .collect();
    for pair in numbers.windows(2) {
        if pair[0] < 256 && pair[1] < 256 {
            ports.insert((pair[0] * 256 + pair[1]) as u16);
        }
    }
    ports
}

/// The IPv4 form of an address, if it has one (plain or IPv4-mapped).
pub fn as_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

fn commas(a: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = a.octets();
    format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

/// The original's PORT/227 address field: inet_ntop(3), then every `.`
/// of the line turned into `,` (ftp-proxy.c's `allow_data_connection`). For an IPv6 address (or an
/// IPv4-mapped one) that gives a line no client can use; it is accepted
/// here because it opens nothing wrong, and reported as a weakness.
fn spec_form(template: &str, addr: IpAddr, pport: u16) -> String {
    template
        .replace("{}", &format!("{addr},{},{}", pport >> 8, pport & 0xff))
        .replace('.', ",")
}

/// The lines that may tell the server about an active-mode pinhole on
/// `proxy:pport` (ftp-proxy.c's `allow_data_connection`): PORT with the proxy's address, or EPRT in
/// the proxy's family (`|1|` also for an IPv4-mapped address).
pub fn active_announcements(proxy: IpAddr, pport: u16) -> Vec<Vec<u8>> {
    let mut lines = vec![spec_form("PORT {}\r\n", proxy, pport)];
    if let Some(v4) = as_v4(proxy) {
        lines.push(format!("PORT {}\r\n", commas(v4, pport)));
        lines.push(format!("EPRT |1|{v4}|{pport}|\r\n"));
    }
    if let IpAddr::V6(v6) = proxy {
        lines.push(format!("EPRT |2|{v6}|{pport}|\r\n"));
    }
    lines.into_iter().map(String::into_bytes).collect()
}

/// The lines that may tell the client about a passive-mode pinhole on
/// `orig:pport`: 227 with orig's address, or 229, which names only the
/// port.
pub fn passive_announcements(orig: IpAddr, pport: u16) -> Vec<Vec<u8>> {
    let mut lines = vec![spec_form("227 Entering Passive Mode ({})\r\n", orig, pport)];
    if let Some(v4) = as_v4(orig) {
        lines.push(format!(
            "227 Entering Passive Mode ({})\r\n",
            commas(v4, pport)
        ));
    }
    lines.push(format!(
        "229 Entering Extended Passive Mode (|||{pport}|)\r\n"
    ));
    lines.into_iter().map(String::into_bytes).collect()
}

fn parse_u8s(text: &str, sep: char, n: usize) -> Option<Vec<u8>> {
    let parts: Vec<&str> = text.split(sep).collect();
    if parts.len() != n {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u8>().ok()
            }
        })
        .collect()
}

fn plain_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The port of a textbook PORT or EPRT line, which every implementation
/// must understand: `PORT h1,h2,h3,h4,p1,p2\r\n` or
/// `EPRT |1|a.b.c.d|port|\r\n` / `EPRT |2|v6|port|\r\n`, keyword uppercase.
pub fn canonical_client_port(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?.strip_suffix("\r\n")?;
    if let Some(args) = text.strip_prefix("PORT ") {
        let v = parse_u8s(args, ',', 6)?;
        return Some(u16::from(v[4]) << 8 | u16::from(v[5]));
    }
    let args = text.strip_prefix("EPRT |")?;
    let fields: Vec<&str> = args.split('|').collect();
    match fields.as_slice() {
        ["1", a, p, ""] if a.parse::<Ipv4Addr>().is_ok() && parse_u8s(a, '.', 4).is_some() => {
            plain_port(p)
        }
        ["2", a, p, ""]
            if a.parse::<std::net::Ipv6Addr>().is_ok()
                && a.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') =>
        {
            plain_port(p)
        }
        _ => None,
    }
}

/// The port of a textbook 227 or 229 reply:
/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)\r\n` or
/// `229 Entering Extended Passive Mode (|||port|)\r\n`.
pub fn canonical_server_port(line: &[u8]) -> Option<(u16, bool)> {
    let text = std::str::from_utf8(line).ok()?.strip_suffix("\r\n")?;
    if let Some(args) = text.strip_prefix("227 Entering Passive Mode (") {
        let v = parse_u8s(args.strip_suffix(')')?, ',', 6)?;
        return Some((u16::from(v[4]) << 8 | u16::from(v[5]), false));
    }
    let args = text
        .strip_prefix("229 Entering Extended Passive Mode (|||")?
        .strip_suffix("|)")?;
    Some((plain_port(args)?, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_boundaries() {
        let mut m = LineModel::default();
        let mut line = vec![b'x'; MAX_LINE - 1];
        line.push(b'\n');
        m.push(&line);
        assert!(!m.must_end());
        assert_eq!(m.good.len(), MAX_LINE);
        m.push(&vec![b'y'; MAX_LINE - 1]);
        assert!(!m.must_end());
        m.push(b"y");
        assert!(m.must_end());
        let mut m = LineModel::default();
        m.push(b"ab\0");
        assert!(!m.must_end() && m.may_end());
        m.push(b"\n");
        assert!(m.must_end());
        assert!(m.good.is_empty());
    }

    #[test]
    fn candidates() {
        let c = port_candidates(b"PORT 10,0,0,2,4,1\r\n");
        assert!(c.contains(&1025));
        let c = port_candidates(b"PORT 10,0,0,2,300,5\r\n");
        assert!(!c.contains(&((300u32 * 256 + 5) as u16)));
        let c = port_candidates(b"EPRT |1|10.0.0.2|66560|\r\n");
        assert!(!c.contains(&1024));
    }

    #[test]
    fn canonical_lines() {
        assert_eq!(canonical_client_port(b"PORT 10,0,0,2,4,1\r\n"), Some(1025));
        assert_eq!(
            canonical_client_port(b"EPRT |2|2001:db8::1|5000|\r\n"),
            Some(5000)
        );
        assert_eq!(canonical_client_port(b"PORT 10,0,0,2,4,1 \r\n"), None);
        assert_eq!(
            canonical_server_port(b"227 Entering Passive Mode (192,0,2,10,195,80)\r\n"),
            Some((50000, false))
        );
        assert_eq!(
            canonical_server_port(b"229 Entering Extended Passive Mode (|||50000|)\r\n"),
            Some((50000, true))
        );
        assert_eq!(
            active_announcements("203.0.113.1".parse().unwrap(), 50000)[0],
            b"PORT 203,0,113,1,195,80\r\n"
        );
        assert!(is_port_like(b"port\t1,2,3,4,5,6\r\n"));
        assert!(!is_port_like(b"PORTS\r\n"));
        assert!(is_anonymous_user(b"user ANONYMOUS\r\n"));
        assert!(!is_anonymous_user(b"USER ftp \r\n"));
    }
}
