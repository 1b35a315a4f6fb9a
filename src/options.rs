//! The command line of ftp-proxy(8): every option, default, range and
//! message of the original. (Parsing pending.)

/// The usage text, three lines, as the original prints it.
pub const USAGE: &str = "usage: ftp-proxy [-6Adrv] [-a sourceaddr] [-b address] [-D level] [-m maxsessions]\n                 [-P port] [-p port] [-q queue] [-R address] [-T tag]\n                 [-t timeout]\n";

/// Parsed options. Addresses and ports stay strings here: they are resolved
/// with getaddrinfo(3) at start-up, in the order ftp-proxy(8) does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-6`: IPv6 listener, sessions and rules; only EPSV/EPRT allowed.
    pub ipv6: bool,
    /// `-A`: anonymous sessions only.
    pub anonymous_only: bool,
    /// `-a sourceaddr`: numeric address the server connections come from.
    pub source_addr: Option<String>,
    /// `-b address`: numeric listen address; `127.0.0.1`, or `::1` with `-6`.
    pub listen_addr: String,
    /// `-D level`: syslog threshold 0..=7, default 5 (LOG_NOTICE).
    pub log_level: u8,
    /// `-d`: stay in the foreground and log to stderr.
    pub foreground: bool,
    /// `-m maxsessions`: 1..=500, default 100.
    pub max_sessions: u32,
    /// `-P port`: the fixed server's port (with `-R`), default `21`.
    pub server_port: String,
    /// `-p port`: the listen port, default `8021`.
    pub listen_port: String,
    /// `-q queue`: queue for the pinholes' traffic (shorter than 64 bytes).
    pub queue: Option<String>,
    /// `-R address`: reverse mode, the fixed server (a name is resolved once).
    pub fixed_server: Option<String>,
    /// `-r`: active-mode data connections from PORT come from port 20.
    pub rfc_mode: bool,
    /// `-T tag`: tag for the pinholes' traffic (shorter than 64 bytes).
    pub tag: Option<String>,
    /// `-t timeout`: idle timeout in seconds 0..=86400 (0 = none), default 86400.
    pub timeout: u32,
    /// `-v` count: 0, 1 (log) or 2 (log all).
    pub verbose: u8,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ipv6: false,
            anonymous_only: false,
            source_addr: None,
            listen_addr: "127.0.0.1".into(),
            log_level: 5,
            foreground: false,
            max_sessions: 100,
            server_port: "21".into(),
            listen_port: "8021".into(),
            queue: None,
            fixed_server: None,
            rfc_mode: false,
            tag: None,
            timeout: 86400,
            verbose: 0,
        }
    }
}

/// Why the command line was not accepted. `main` prints and exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    /// A getopt-style diagnostic (`unknown option -- x`,
    /// `option requires an argument -- b`) or none (a third `-v`); the
    /// usage text follows it.
    Usage(Option<String>),
    /// A bad value: `max sessions too large`, `queuename too long`, …
    Invalid(String),
    /// `-h`: print the usage to stdout and exit 0.
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Options, OptionsError> {
    let _ = args;
    Ok(Options::default())
}
