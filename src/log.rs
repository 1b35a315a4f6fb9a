//! Logging as ftp-proxy(8) does it: syslog(3) with ident `ftp-proxy` and
//! facility LOG_DAEMON when daemonized, or stderr (vis(3)-encoded, no
//! prefix) with `-d`; either way only messages at or above the `-D` level.
//!
//! syslog(3) is called directly through libc: on OpenBSD it uses
//! sendsyslog(2), which needs no socket and keeps working in the chroot; on
//! Linux `LOG_NDELAY` connects /dev/log before the chroot.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// syslog(3) priorities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    /// The level for a `-D` number, 0..=7; anything above 7 is DEBUG.
    pub fn from_number(n: u8) -> Level {
        match n {
            0 => Level::Emerg,
            1 => Level::Alert,
            2 => Level::Crit,
            3 => Level::Err,
            4 => Level::Warning,
            5 => Level::Notice,
            6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

/// Sets the `-D` threshold: messages with a priority above it are dropped.
pub fn set_level(level: u8) {
    THRESHOLD.store(level.min(Level::Debug as u8), Ordering::Relaxed);
}

/// Whether a message at `level` would be written. Callers check this before
/// formatting, so per-line DEBUG messages cost nothing at the default level.
pub fn enabled(level: Level) -> bool {
    level as u8 <= THRESHOLD.load(Ordering::Relaxed)
}

/// Opens the syslog connection (ident `ftp-proxy`, LOG_PID|LOG_NDELAY,
/// LOG_DAEMON) and sends every later message there instead of stderr.
pub fn open_syslog() {
    // SAFETY: the ident is a 'static NUL-terminated string, as openlog(3)
    // keeps the pointer (OpenBSD's openlog_r stores it, glibc too).
    unsafe {
        libc::openlog(
            c"ftp-proxy".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        );
    }
    TO_SYSLOG.store(true, Ordering::Relaxed);
}

/// Closes the syslog connection at exit.
pub fn close_syslog() {
    if TO_SYSLOG.swap(false, Ordering::Relaxed) {
        // SAFETY: closelog(3) takes no arguments and is safe to call once
        // openlog(3) was called.
        unsafe { libc::closelog() };
    }
}

/// Writes one message. Use the [`log_at!`](crate::log_at) macro, which checks
/// the threshold first.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let mut text = String::new();
    let _ = text.write_fmt(args);
    let encoded = vis(text.as_bytes());
    if TO_SYSLOG.load(Ordering::Relaxed) {
        let mut bytes = encoded.into_bytes();
        bytes.push(0);
        // SAFETY: "%s" with one NUL-terminated argument; `bytes` has no
        // interior NUL because vis() encodes NUL as "\0".
        unsafe { libc::syslog(level as libc::c_int, c"%s".as_ptr(), bytes.as_ptr()) };
    } else {
        let mut line = encoded;
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Encodes bytes like vis(3) with VIS_CSTYLE | VIS_NL: printable ASCII and
/// space stay as they are, `\` doubles, C escapes for the usual controls
/// (`\r`, `\n`, `\t`, …) and `\ooo` octal for everything else, so a logged
/// protocol line shows its exact bytes on one line.
pub fn vis(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            0 => out.push_str("\\0"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// Logs a message at a level, formatting it only when the level is enabled:
/// `log_at!(Level::Info, "#{} client close", id)`.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, format_args!($($arg)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vis_shows_control_bytes() {
        assert_eq!(vis(b"PORT 1,2,3,4,5,6\r\n"), "PORT 1,2,3,4,5,6\\r\\n");
        assert_eq!(vis(b"a\\b\x01\xff"), "a\\\\b\\001\\377");
    }

    #[test]
    fn levels_from_numbers() {
        assert_eq!(Level::from_number(0), Level::Emerg);
        assert_eq!(Level::from_number(5), Level::Notice);
        assert_eq!(Level::from_number(7), Level::Debug);
        for n in 0..=7 {
            assert_eq!(Level::from_number(n) as u8, n);
        }
    }

    #[test]
    fn threshold_orders_levels() {
        set_level(5);
        assert!(enabled(Level::Crit));
        assert!(enabled(Level::Notice));
        assert!(!enabled(Level::Info));
        set_level(7);
        assert!(enabled(Level::Debug));
        set_level(5);
    }
}
