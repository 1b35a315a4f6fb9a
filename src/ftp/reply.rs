//! Server lines: reply structure and the data port in 227 and 229 (RFC 959
//! sections 4.2 and 4.1.2, RFC 2428 section 3; ftp-proxy.c's `server_parse`
//! and `parse_port`).
//!
//! The original only compares the first four bytes of each line with
//! `227 ` or `229 `, so a multi-line reply or a pipelined command breaks the
//! rewrite. Here every line is placed in the reply structure of
//! RFC 959 section 4.2 — one-line `ddd text`, or `ddd-text` … `ddd text` — so the
//! engine can tell final replies from preliminary ones and from lines inside
//! a multi-line reply, and match replies to commands.

use super::scan::{self, Scanner};

/// The RFC 959 reply code, `100..=999` (three digits).
pub type Code = u16;

/// Whether a reply with this code answers its command: 1xx replies are
/// preliminary and another reply follows.
pub fn is_final(code: Code) -> bool {
    code >= 200
}

/// Where a server line stands in the reply structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyLine {
    /// `ddd text`: a whole reply in one line.
    Single(Code),
    /// `ddd-text`: the first line of a multi-line reply.
    First(Code),
    /// A line inside a multi-line reply.
    Inner,
    /// `ddd text` with the code of the open multi-line reply: its last line.
    Last(Code),
    /// A line outside any reply; it answers nothing.
    Stray,
}

/// Follows the server's replies line by line.
#[derive(Debug, Default)]
pub struct ReplyTracker {
    /// The code of the multi-line reply in progress.
    open: Option<[u8; 3]>,
}

impl ReplyTracker {
    pub fn new() -> ReplyTracker {
        ReplyTracker::default()
    }

    /// Places the next server line, LF included, in the reply structure.
    /// Inside a multi-line reply only a line that starts with the same code
    /// and a space ends it (RFC 959 section 4.2); anything else is text.
    pub fn place(&mut self, line: &[u8]) -> ReplyLine {
        let start = code_and_separator(line);
        match (self.open, start) {
            (Some(open), Some((digits, b' '))) if digits == open => {
                self.open = None;
                ReplyLine::Last(code_value(digits))
            }
            (Some(_), _) => ReplyLine::Inner,
            (None, Some((digits, b'-'))) => {
                self.open = Some(digits);
                ReplyLine::First(code_value(digits))
            }
            (None, Some((digits, _))) => ReplyLine::Single(code_value(digits)),
            (None, None) => ReplyLine::Stray,
        }
    }
}

/// Three digits, the first 1 to 9, then a space or a hyphen.
fn code_and_separator(line: &[u8]) -> Option<([u8; 3], u8)> {
    match line {
        [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', separator @ (b' ' | b'-'), ..] => {
            Some(([*a, *b, *c], *separator))
        }
        _ => None,
    }
}

fn code_value(digits: [u8; 3]) -> Code {
    digits
        .iter()
        .fold(0, |code, &digit| code * 10 + Code::from(digit - b'0'))
}

/// The server's data port in a 227 line: the pattern
/// `"(%u,%u,%u,%u,%u,%u)"` from the last space or `(`, each number below
/// 256. The closing parenthesis is not checked, and the address is
/// ignored. A reply without parentheses, or with a blank after them
/// (`(…). OK`), does not parse. `None` counts as port 0.
pub fn passive_port(line: &[u8]) -> Option<u16> {
    let mut scanner = Scanner::new(scan::from_last_space_or_paren(line)?);
    scanner.literal(b"(")?;
    scan::port_from_six(scanner.unsigned_list::<6>(b',')?)
}

/// The server's data port in a 229 line: the pattern `"(|||%u|)"` from the
/// last space or `(`, below 65536. Only `|` works as the delimiter and the
/// trailing `|)` is not checked. `None` counts as port 0.
pub fn extended_passive_port(line: &[u8]) -> Option<u16> {
    let mut scanner = Scanner::new(scan::from_last_space_or_paren(line)?);
    scanner.literal(b"(|||")?;
    scan::port_from_u32(scanner.unsigned()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_all(lines: &[&[u8]]) -> Vec<ReplyLine> {
        let mut tracker = ReplyTracker::new();
        lines.iter().map(|line| tracker.place(line)).collect()
    }

    #[test]
    fn one_line_replies() {
        assert_eq!(
            place_all(&[b"220 ready\r\n", b"150 opening\r\n", b"227 x\r\n"]),
            vec![
                ReplyLine::Single(220),
                ReplyLine::Single(150),
                ReplyLine::Single(227)
            ]
        );
    }

    #[test]
    fn multi_line_reply_ends_only_on_its_own_code() {
        assert_eq!(
            place_all(&[
                b"230-Welcome\r\n",
                b"227 not the end\r\n",
                b" 230 indented\r\n",
                b"230-still inside\r\n",
                b"230 done\r\n",
                b"200 next\r\n",
            ]),
            vec![
                ReplyLine::First(230),
                ReplyLine::Inner,
                ReplyLine::Inner,
                ReplyLine::Inner,
                ReplyLine::Last(230),
                ReplyLine::Single(200),
            ]
        );
    }

    #[test]
    fn lines_that_are_not_replies() {
        assert_eq!(
            place_all(&[
                b"hello\r\n",
                b"22\r\n",
                b"2270 x\r\n",
                b"027 x\r\n",
                b"227\r\n"
            ]),
            vec![ReplyLine::Stray; 5]
        );
    }

    #[test]
    fn only_codes_from_200_are_final() {
        assert!(!is_final(150));
        assert!(!is_final(199));
        assert!(is_final(200));
        assert!(is_final(227));
        assert!(is_final(550));
    }

    #[test]
    fn passive_port_from_227() {
        assert_eq!(
            passive_port(b"227 Entering Passive Mode (192,0,2,10,195,80)\r\n"),
            Some(50000)
        );
        assert_eq!(passive_port(b"227 =(192,0,2,10,4,0)\r\n"), Some(1024));
        assert_eq!(passive_port(b"227 x (192,0,2,10,3,255)\r\n"), Some(1023));
        // The closing parenthesis is not checked, and what follows is ignored.
        assert_eq!(passive_port(b"227 x (192,0,2,10,4,0\r\n"), Some(1024));
        assert_eq!(passive_port(b"227 x (192,0,2,10,4,0).\r\n"), Some(1024));
        // The address is ignored.
        assert_eq!(passive_port(b"227 x (6,6,6,6,4,1)\r\n"), Some(1025));
    }

    #[test]
    fn passive_port_refuses_what_the_original_s_scan_refuses() {
        // RFC 959 allows a 227 without parentheses; the original does not.
        assert_eq!(
            passive_port(b"227 Entering Passive Mode 192,0,2,10,4,1\r\n"),
            None
        );
        // A blank after the group: the scan starts there.
        assert_eq!(
            passive_port(b"227 Entering Passive Mode (192,0,2,10,4,1). OK\r\n"),
            None
        );
        assert_eq!(passive_port(b"227 x (192,0,2,10,4,1) \r\n"), None);
        // Blanks inside the group.
        assert_eq!(passive_port(b"227 x (192, 0, 2, 10, 4, 1)\r\n"), None);
        // Numbers of 256 or more.
        assert_eq!(passive_port(b"227 x (192,0,2,300,4,1)\r\n"), None);
        assert_eq!(passive_port(b"227 x (192,0,2,10,4,256)\r\n"), None);
        assert_eq!(passive_port(b"227 x ()\r\n"), None);
    }

    #[test]
    fn extended_passive_port_from_229() {
        assert_eq!(
            extended_passive_port(b"229 Entering Extended Passive Mode (|||6446|)\r\n"),
            Some(6446)
        );
        assert_eq!(extended_passive_port(b"229 x (|||1024|)\r\n"), Some(1024));
        assert_eq!(extended_passive_port(b"229 x (|||1023|)\r\n"), Some(1023));
        assert_eq!(extended_passive_port(b"229 x (|||65535|)\r\n"), Some(65535));
        assert_eq!(extended_passive_port(b"229 x (|||65536|)\r\n"), None);
        // The trailing `|)` is not checked.
        assert_eq!(extended_passive_port(b"229 x (|||6446\r\n"), Some(6446));
    }

    #[test]
    fn extended_passive_port_accepts_only_the_original_s_form() {
        // RFC 2428 allows any delimiter; the original only `|`.
        assert_eq!(extended_passive_port(b"229 x (!!!6446!)\r\n"), None);
        assert_eq!(extended_passive_port(b"229 x (###6446#)\r\n"), None);
        assert_eq!(extended_passive_port(b"229 x (|||6446|) \r\n"), None);
        assert_eq!(extended_passive_port(b"229 x |||6446|\r\n"), None);
        assert_eq!(extended_passive_port(b"229 x (||6446|)\r\n"), None);
    }
}
