//! Framing of the control connection into lines (OpenBSD ftp-proxy.c's
//! `getline`).
//!
//! ftp-proxy(8) reads each direction into a 500-byte buffer: a line ends
//! with LF, may be at most 500 bytes long including that LF, and must not
//! contain a NUL byte. CR is not special: it stays in the line and is
//! forwarded as it is. A violation ends the session; the line is never
//! truncated or passed on.
//!
//! [`LineReader`] keeps at most 499 bytes of an unterminated line, however
//! the driver splits its input, so one byte at a time and everything at once
//! give the same lines and the same error at the same place.

/// The longest line, LF included (`MAX_LINE` in the original).
pub const MAX_LINE: usize = 500;

/// The input broke the framing rules: 500 bytes without an LF, or a NUL
/// byte before the LF. The session must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclean;

/// Splits one direction's byte stream into LF-terminated lines.
#[derive(Debug, Default)]
pub struct LineReader {
    /// The start of a line whose LF has not arrived yet; always shorter
    /// than [`MAX_LINE`].
    partial: Vec<u8>,
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    /// Takes bytes from the front of `input` until a line is complete and
    /// returns it, LF included. Returns `Ok(None)` once `input` is used up
    /// without completing a line; those bytes stay buffered for the next
    /// call. After an error the reader must not be used again.
    pub fn next_line(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, Unclean> {
        let room = MAX_LINE - self.partial.len();
        let window = &input[..input.len().min(room)];
        match window.iter().position(|&b| b == b'\n' || b == 0) {
            Some(at) if window[at] == 0 => Err(Unclean),
            Some(at) => {
                self.partial.extend_from_slice(&window[..=at]);
                *input = &input[at + 1..];
                Ok(Some(std::mem::take(&mut self.partial)))
            }
            None => {
                self.partial.extend_from_slice(window);
                *input = &input[window.len()..];
                if self.partial.len() >= MAX_LINE {
                    Err(Unclean)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// How many bytes of an unterminated line are held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes; returns the lines and
    /// whether framing failed.
    fn frame(input: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
        let mut reader = LineReader::new();
        let mut lines = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut rest = piece;
            loop {
                match reader.next_line(&mut rest) {
                    Ok(Some(line)) => lines.push(line),
                    Ok(None) => break,
                    Err(Unclean) => return (lines, true),
                }
            }
        }
        (lines, false)
    }

    fn line_of(len: usize) -> Vec<u8> {
        let mut line = vec![b'A'; len - 1];
        line.push(b'\n');
        line
    }

    #[test]
    fn splits_on_lf_and_keeps_cr() {
        let (lines, failed) = frame(b"USER ftp\r\nPASS x\nNO", 1000);
        assert!(!failed);
        assert_eq!(lines, vec![b"USER ftp\r\n".to_vec(), b"PASS x\n".to_vec()]);
    }

    #[test]
    fn lone_cr_is_not_a_line_end() {
        let (lines, _) = frame(b"A\rB\r\n", 1000);
        assert_eq!(lines, vec![b"A\rB\r\n".to_vec()]);
    }

    #[test]
    fn unterminated_tail_stays_buffered() {
        let mut reader = LineReader::new();
        let mut rest: &[u8] = b"NOOP\r\nPWD";
        assert_eq!(reader.next_line(&mut rest), Ok(Some(b"NOOP\r\n".to_vec())));
        assert_eq!(reader.next_line(&mut rest), Ok(None));
        assert_eq!(reader.buffered(), 3);
        let mut rest: &[u8] = b"\r\n";
        assert_eq!(reader.next_line(&mut rest), Ok(Some(b"PWD\r\n".to_vec())));
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn exactly_500_bytes_with_lf_is_accepted() {
        let line = line_of(500);
        let (lines, failed) = frame(&line, 1000);
        assert!(!failed);
        assert_eq!(lines, vec![line]);
    }

    #[test]
    fn line_of_501_bytes_is_refused() {
        let (lines, failed) = frame(&line_of(501), 1000);
        assert!(failed);
        assert!(lines.is_empty());
    }

    #[test]
    fn five_hundred_bytes_without_lf_are_refused() {
        assert!(frame(&[b'A'; 500], 1000).1);
        assert!(!frame(&[b'A'; 499], 1000).1);
    }

    #[test]
    fn nul_is_refused_even_in_an_unterminated_tail() {
        assert!(frame(b"NO\0OP\r\n", 1000).1);
        assert!(frame(b"NOOP\r\nAB\0", 1000).1);
        assert_eq!(frame(b"NOOP\r\nAB\0", 1000).0, vec![b"NOOP\r\n".to_vec()]);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let mut input = Vec::new();
        input.extend_from_slice(b"USER ftp\r\n\r\n\n");
        input.extend_from_slice(&line_of(500));
        input.extend_from_slice(b"PORT 1,2,3,4,5,6\r\n");
        input.extend_from_slice(&line_of(501));
        input.extend_from_slice(b"NEVER\r\n");
        let whole = frame(&input, input.len());
        assert_eq!(whole.0.len(), 5);
        assert!(whole.1);
        for chunk in [1, 2, 3, 7, 499, 500, 501] {
            assert_eq!(frame(&input, chunk), whole, "chunk {chunk}");
        }
    }
}
