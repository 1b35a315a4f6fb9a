//! The byte-exact lines the proxy sends in place of the peers' lines, and
//! the 421 lines of its refusals. (Pending.)

use super::Refusal;

/// The `421 …\r\n` line the client gets before the proxy closes a session.
pub fn refusal(why: Refusal) -> &'static [u8] {
    let _ = why;
    b"421 Service not available, closing control connection.\r\n"
}
