//! The pieces of OpenBSD ftp-proxy.c's `parse_port` shared by client and
//! server lines: where the scan starts, and a matcher that behaves like the
//! `sscanf` patterns the original uses.
//!
//! Being exactly as lenient and as strict as `sscanf` matters: the corner
//! cases (a trailing blank, spaces inside PORT, `(…). OK`, other 229
//! delimiters) all fall out of these rules, and clients in the field depend
//! on what passes.

/// The text `parse_port` matches its pattern against: from the last space
/// or `(` to the end of the line. The first byte of the line is never a
/// starting point; reaching it means the line has no port (`None`).
pub fn from_last_space_or_paren(line: &[u8]) -> Option<&[u8]> {
    (1..line.len())
        .rev()
        .find(|&at| line[at] == b' ' || line[at] == b'(')
        .map(|at| &line[at..])
}

/// `isspace` in the C locale: what `%u` and a blank in a format skip.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// A cursor over the text, one method per kind of `sscanf` directive.
/// Each returns `None` where `sscanf` would stop converting.
#[derive(Debug)]
pub struct Scanner<'a> {
    rest: &'a [u8],
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a [u8]) -> Scanner<'a> {
        Scanner { rest: text }
    }

    /// A blank in the format: skips any number of spaces, none included.
    pub fn blanks(&mut self) {
        let skip = self.rest.iter().take_while(|&&b| is_c_space(b)).count();
        self.rest = &self.rest[skip..];
    }

    /// Ordinary characters in the format: each must match exactly, with no
    /// blanks skipped before them.
    pub fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.rest = self.rest.strip_prefix(expected)?;
        Some(())
    }

    /// `%u`: leading blanks, an optional sign, then at least one decimal
    /// digit. `+5` reads as 5 and `-0` as 0, as in C. Where C would wrap
    /// (a negative number or one beyond 32 bits) the value saturates at
    /// `u32::MAX`, which every caller's range check then rejects.
    pub fn unsigned(&mut self) -> Option<u32> {
        self.blanks();
        let negative = self.rest.first() == Some(&b'-');
        if matches!(self.rest.first(), Some(b'+' | b'-')) {
            self.rest = &self.rest[1..];
        }
        let digits = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let magnitude = self.rest[..digits].iter().fold(0u32, |value, &digit| {
            value
                .saturating_mul(10)
                .saturating_add(u32::from(digit - b'0'))
        });
        self.rest = &self.rest[digits..];
        Some(if negative && magnitude != 0 {
            u32::MAX
        } else {
            magnitude
        })
    }

    /// `N` `%u` conversions separated by the literal `separator`.
    pub fn unsigned_list<const N: usize>(&mut self, separator: u8) -> Option<[u32; N]> {
        let mut values = [0; N];
        for (index, value) in values.iter_mut().enumerate() {
            if index > 0 {
                self.literal(&[separator])?;
            }
            *value = self.unsigned()?;
        }
        Some(values)
    }

    /// `%<max>[set]`: one to `max` bytes of the set, no blanks skipped.
    pub fn run_of(&mut self, max: usize, in_set: impl Fn(u8) -> bool) -> Option<&'a [u8]> {
        let len = self
            .rest
            .iter()
            .take(max)
            .take_while(|&&b| in_set(b))
            .count();
        if len == 0 {
            return None;
        }
        let (run, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(run)
    }
}

/// The six numbers of PORT and 227 (`h1,h2,h3,h4,p1,p2`), each below 256,
/// give the port `p1 * 256 + p2`; the address bytes are ignored, so
/// third-party transfers are impossible on purpose (RFC 2577 section 3).
pub fn port_from_six(values: [u32; 6]) -> Option<u16> {
    if values.iter().all(|&v| v < 256) {
        Some((values[4] * 256 + values[5]) as u16)
    } else {
        None
    }
}

/// A port number read with `%u`, which must be below 65536.
pub fn port_from_u32(value: u32) -> Option<u16> {
    u16::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_starts_at_the_last_space_or_paren() {
        assert_eq!(
            from_last_space_or_paren(b"PORT 1,2,3,4,5,6\r\n"),
            Some(&b" 1,2,3,4,5,6\r\n"[..])
        );
        assert_eq!(
            from_last_space_or_paren(b"227 Mode (1,2,3,4,5,6)\r\n"),
            Some(&b"(1,2,3,4,5,6)\r\n"[..])
        );
        assert_eq!(from_last_space_or_paren(b" PORT\r\n"), None);
        assert_eq!(from_last_space_or_paren(b"(x\r\n"), None);
        assert_eq!(from_last_space_or_paren(b""), None);
    }

    #[test]
    fn unsigned_is_scanf_like() {
        let mut s = Scanner::new(b" \t 42,+7,-0,-3,99999999999,x");
        assert_eq!(s.unsigned(), Some(42));
        s.literal(b",").unwrap();
        assert_eq!(s.unsigned(), Some(7));
        s.literal(b",").unwrap();
        assert_eq!(s.unsigned(), Some(0));
        s.literal(b",").unwrap();
        assert_eq!(s.unsigned(), Some(u32::MAX));
        s.literal(b",").unwrap();
        assert_eq!(s.unsigned(), Some(u32::MAX));
        s.literal(b",").unwrap();
        assert_eq!(s.unsigned(), None);
    }

    #[test]
    fn literal_skips_no_blanks() {
        let mut s = Scanner::new(b" ,");
        assert_eq!(s.literal(b","), None);
    }

    #[test]
    fn run_of_is_bounded() {
        let hex = |b: u8| b.is_ascii_hexdigit() || b == b':';
        assert_eq!(Scanner::new(b"ab:1|").run_of(39, hex), Some(&b"ab:1"[..]));
        assert_eq!(Scanner::new(b"|").run_of(39, hex), None);
        let long = [b'a'; 45];
        let mut s = Scanner::new(&long);
        assert_eq!(s.run_of(39, hex).map(<[u8]>::len), Some(39));
        assert_eq!(s.literal(b"|"), None);
    }
}
