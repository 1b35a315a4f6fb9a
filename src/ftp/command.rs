//! Client lines: which ones the proxy looks at, and the data port in PORT
//! and EPRT (RFC 959 section 4.1.2, RFC 2428 section 2; OpenBSD
//! ftp-proxy.c's `client_parse` and `parse_port`).
//!
//! Classification is deliberately the original's: a prefix compare on lines
//! of at least 4 bytes, so `PASVX` counts as PASV and `EPSV ALL` as EPSV,
//! while `PORT` needs its space. Everything not classified is forwarded
//! byte for byte.

use super::scan::{self, Scanner};

/// Lines shorter than this (LF included) are passed through unexamined:
/// every command the proxy looks for has at least 4 letters.
pub const MIN_COMMAND_LINE: usize = 4;

/// What the proxy does with a client line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `PASV…`: forwarded; its 227 reply is rewritten.
    Pasv,
    /// `PORT …`: rewritten, and a pinhole opened at once.
    Port,
    /// `EPSV…`: forwarded; its 229 reply is rewritten.
    Epsv,
    /// `EPRT …`: rewritten, and a pinhole opened at once.
    Eprt,
    /// Any line whose first letter is `U`: what `-A` inspects (the original
    /// checks the letter, not the word USER).
    StartsWithU,
    /// Anything else: forwarded unchanged.
    Other,
}

/// Classifies a client line, LF included, as ftp-proxy.c's
/// `client_parse` does: case-insensitive prefixes, chosen by the first
/// byte.
pub fn classify(line: &[u8]) -> Command {
    if line.len() < MIN_COMMAND_LINE {
        return Command::Other;
    }
    let starts = |prefix: &[u8]| line[..prefix.len()].eq_ignore_ascii_case(prefix);
    // The original wants a space after PORT/EPRT. Servers that split
    // commands on any blank would take `PORT\t…` as PORT too, so such a
    // line would carry the client's own address and port to the server
    // unrewritten (FTP bounce). Any blank counts here; the backward scan
    // then finds no argument, and the line ends the session as a bad port.
    let keyword_then_blank =
        |keyword: &[u8]| line.len() > 4 && starts(keyword) && is_separator(line[4]);
    match line[0] {
        b'P' | b'p' if starts(b"PASV") => Command::Pasv,
        b'P' | b'p' if keyword_then_blank(b"PORT") => Command::Port,
        b'E' | b'e' if starts(b"EPSV") => Command::Epsv,
        b'E' | b'e' if keyword_then_blank(b"EPRT") => Command::Eprt,
        b'U' | b'u' => Command::StartsWithU,
        _ => Command::Other,
    }
}

/// The blanks a server may take as the end of a command word: space, tab,
/// vertical tab, form feed (C's isspace() without the line ends).
fn is_separator(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | 0x0b | 0x0c)
}

/// Under `-A`, whether a `U` line may reach the server: the whole line,
/// CRLF included, must be `USER ftp` or `USER anonymous`, in any case. A
/// bare LF or an extra blank is refused, as in the original.
pub fn is_anonymous_login(line: &[u8]) -> bool {
    line.eq_ignore_ascii_case(b"USER ftp\r\n") || line.eq_ignore_ascii_case(b"USER anonymous\r\n")
}

/// Whether the line holds anything but blanks. Blank lines are forwarded
/// but not expected to get a reply of their own.
pub fn has_command_text(line: &[u8]) -> bool {
    line.iter().any(|b| !b.is_ascii_whitespace())
}

/// The client's data port in `PORT h1,h2,h3,h4,p1,p2`: the pattern
/// `" %u,%u,%u,%u,%u,%u"` from the last space or `(`, each number below
/// 256. `None` is a parse failure, which the caller treats as port 0.
pub fn port_argument(line: &[u8]) -> Option<u16> {
    let mut scanner = Scanner::new(scan::from_last_space_or_paren(line)?);
    scanner.blanks();
    scan::port_from_six(scanner.unsigned_list::<6>(b',')?)
}

/// The client's data port in `EPRT |1|a.b.c.d|port|` or
/// `EPRT |2|v6-address|port|`: the patterns `" |1|%u.%u.%u.%u|%u|"` and
/// `" |2|%39[a-fA-F0-9:]|%u|"`. The closing `|` is not checked and the
/// address is ignored; an IPv6 address with a dot (`::ffff:1.2.3.4`) does
/// not match, so it is a bad port.
pub fn eprt_argument(line: &[u8]) -> Option<u16> {
    let text = scan::from_last_space_or_paren(line)?;
    eprt_inet(text).or_else(|| eprt_inet6(text))
}

fn eprt_inet(text: &[u8]) -> Option<u16> {
    let mut scanner = Scanner::new(text);
    scanner.blanks();
    scanner.literal(b"|1|")?;
    let address = scanner.unsigned_list::<4>(b'.')?;
    scanner.literal(b"|")?;
    let port = scanner.unsigned()?;
    if address.iter().all(|&byte| byte < 256) {
        scan::port_from_u32(port)
    } else {
        None
    }
}

fn eprt_inet6(text: &[u8]) -> Option<u16> {
    /// `INET6_ADDRSTRLEN - 7`: the `%39[…]` width of the original.
    const MAX_INET6_TEXT: usize = 39;
    let mut scanner = Scanner::new(text);
    scanner.blanks();
    scanner.literal(b"|2|")?;
    scanner.run_of(MAX_INET6_TEXT, |b| b.is_ascii_hexdigit() || b == b':')?;
    scanner.literal(b"|")?;
    scan::port_from_u32(scanner.unsigned()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_the_original() {
        assert_eq!(classify(b"PASV\r\n"), Command::Pasv);
        assert_eq!(classify(b"pasv\r\n"), Command::Pasv);
        assert_eq!(classify(b"PASVX\r\n"), Command::Pasv);
        assert_eq!(classify(b"PORT 1,2,3,4,5,6\r\n"), Command::Port);
        assert_eq!(classify(b"port 1,2,3,4,5,6\r\n"), Command::Port);
        assert_eq!(classify(b"PORT\r\n"), Command::Other);
        assert_eq!(classify(b"PORTX 1\r\n"), Command::Other);
        assert_eq!(classify(b"EPSV\r\n"), Command::Epsv);
        assert_eq!(classify(b"EPSV ALL\r\n"), Command::Epsv);
        assert_eq!(classify(b"epsv 2\r\n"), Command::Epsv);
        assert_eq!(classify(b"EPRT |1|1.2.3.4|5000|\r\n"), Command::Eprt);
        assert_eq!(classify(b"eprt |2|::1|5000|\r\n"), Command::Eprt);
        assert_eq!(classify(b"EPRT\r\n"), Command::Other);
        assert_eq!(classify(b"PWD\r\n"), Command::Other);
        assert_eq!(classify(b"PASS x\r\n"), Command::Other);
        assert_eq!(classify(b"USER bob\r\n"), Command::StartsWithU);
        assert_eq!(classify(b"UPLOAD\r\n"), Command::StartsWithU);
        assert_eq!(classify(b"uMASK\r\n"), Command::StartsWithU);
        assert_eq!(classify(b"LPRT 4,4,1,2,3,4,2,5,6\r\n"), Command::Other);
    }

    #[test]
    fn lines_shorter_than_four_bytes_pass() {
        assert_eq!(classify(b"PA\n"), Command::Other);
        assert_eq!(classify(b"U\r\n"), Command::Other);
        assert_eq!(classify(b""), Command::Other);
        assert_eq!(classify(b"PAS\n"), Command::Other);
        assert_eq!(classify(b"UX\r\n"), Command::StartsWithU);
    }

    #[test]
    fn anonymous_login_is_the_whole_line() {
        assert!(is_anonymous_login(b"USER ftp\r\n"));
        assert!(is_anonymous_login(b"user FTP\r\n"));
        assert!(is_anonymous_login(b"USER anonymous\r\n"));
        assert!(is_anonymous_login(b"uSeR AnOnYmOuS\r\n"));
        assert!(!is_anonymous_login(b"USER ftp\n"));
        assert!(!is_anonymous_login(b"USER ftp \r\n"));
        assert!(!is_anonymous_login(b"USER  ftp\r\n"));
        assert!(!is_anonymous_login(b"USER bob\r\n"));
        assert!(!is_anonymous_login(b"UPLOAD\r\n"));
    }

    #[test]
    fn blank_lines_have_no_command_text() {
        assert!(!has_command_text(b"\r\n"));
        assert!(!has_command_text(b" \t\r\n"));
        assert!(has_command_text(b"NOOP\r\n"));
    }

    #[test]
    fn port_takes_the_last_two_numbers() {
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,1\r\n"), Some(1025));
        assert_eq!(port_argument(b"PORT 10,0,0,2,255,255\r\n"), Some(65535));
        assert_eq!(port_argument(b"PORT 10,0,0,2,3,255\r\n"), Some(1023));
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,0\r\n"), Some(1024));
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,0\n"), Some(1024));
        assert_eq!(port_argument(b"PORT  10,0,0,2,4,0\r\n"), Some(1024));
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,0)junk\r\n"), Some(1024));
    }

    #[test]
    fn port_ignores_the_address() {
        assert_eq!(port_argument(b"PORT 6,6,6,6,200,1\r\n"), Some(51201));
    }

    #[test]
    fn port_refuses_what_the_original_s_scan_refuses() {
        // A trailing blank: the backward scan stops at it.
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,1 \r\n"), None);
        // Spaces after the commas: the scan starts at the last one.
        assert_eq!(port_argument(b"PORT 10, 0, 0, 2, 4, 1\r\n"), None);
        // A number of 256 or more.
        assert_eq!(port_argument(b"PORT 10,0,0,256,4,1\r\n"), None);
        assert_eq!(port_argument(b"PORT 10,0,0,2,4,256\r\n"), None);
        // Too few numbers, or none.
        assert_eq!(port_argument(b"PORT 10,0,0,2,4\r\n"), None);
        assert_eq!(port_argument(b"PORT x\r\n"), None);
        // No space or paren after the first byte.
        assert_eq!(port_argument(b"PORT\t1,2,3,4,5,6\r\n"), None);
        // A tab after a comma is skipped by %u, as in C.
        assert_eq!(port_argument(b"PORT 1,2,3,4,\t5,6\r\n"), Some(1286));
    }

    #[test]
    fn eprt_inet() {
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|5000|\r\n"), Some(5000));
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|5000\r\n"), Some(5000));
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|1023|\r\n"), Some(1023));
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|65535|\r\n"), Some(65535));
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|65536|\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.256|5000|\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0|5000|\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT !1!10.0.0.2!5000!\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |1|10.0.0.2|5000| \r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |3|10.0.0.2|5000|\r\n"), None);
    }

    #[test]
    fn eprt_inet6() {
        assert_eq!(eprt_argument(b"EPRT |2|2001:db8::2|5000|\r\n"), Some(5000));
        assert_eq!(eprt_argument(b"EPRT |2|::1|1024|\r\n"), Some(1024));
        assert_eq!(eprt_argument(b"EPRT |2|::FFFF:AB|1024|\r\n"), Some(1024));
        assert_eq!(eprt_argument(b"EPRT |2|::ffff:1.2.3.4|5000|\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |2|fe80::1%em0|5000|\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT |2||5000|\r\n"), None);
        let forty = b"EPRT |2|0000:0000:0000:0000:0000:0000:0000:00001|5000|\r\n";
        assert_eq!(eprt_argument(forty), None);
        let thirty_nine = b"EPRT |2|0000:0000:0000:0000:0000:0000:0000:0001|5000|\r\n";
        assert_eq!(eprt_argument(thirty_nine), Some(5000));
    }

    #[test]
    fn eprt_net_protocol_need_not_match_the_mode() {
        // `|1|` parses under -6 and `|2|` without it: the mode is not known
        // here, and the rewrite uses the proxy's family anyway.
        assert_eq!(eprt_argument(b"EPRT |1|1.2.3.4|2000|\r\n"), Some(2000));
        assert_eq!(eprt_argument(b"EPRT |2|::2|2000|\r\n"), Some(2000));
    }

    #[test]
    fn port_and_eprt_followed_by_any_blank_are_classified() {
        for line in [
            &b"PORT\t8,8,8,8,0,22\r\n"[..],
            b"port\x0b1,2,3,4,5,6\r\n",
            b"PORT\x0c1,2\r\n",
        ] {
            assert_eq!(classify(line), Command::Port, "{line:?}");
        }
        assert_eq!(classify(b"EPRT\t|1|8.8.8.8|22|\r\n"), Command::Eprt);
        // A tab-separated argument has no space or `(` before it: bad port.
        assert_eq!(port_argument(b"PORT\t8,8,8,8,4,1\r\n"), None);
        assert_eq!(eprt_argument(b"EPRT\t|1|8.8.8.8|1025|\r\n"), None);
        // Words that merely start with the keyword are not the command.
        assert_eq!(classify(b"PORTS 1\r\n"), Command::Other);
        assert_eq!(classify(b"EPRTX\r\n"), Command::Other);
    }
}
