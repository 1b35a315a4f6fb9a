//! ftp-proxy(8): start-up in a fixed, visible order, then serve.
//!
//! options → root → user → RLIMIT_NOFILE → -a/-R → listener → packet filter
//! → syslog → chroot + user → daemon → sandbox → serve. Everything that
//! needs privilege or the file system happens before the chroot; every
//! failure exits 1 with a message that names what failed.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::exit;
use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use nix::unistd::Uid;

use ftp_proxy::filter::Filter;
use ftp_proxy::ftp::EngineConfig;
use ftp_proxy::log::{self, Level};
use ftp_proxy::options::{self, Options, OptionsError, USAGE};
use ftp_proxy::serve::{self, Server};
use ftp_proxy::session::{Settings, CONNECT_TIMEOUT};
use ftp_proxy::sys::{self, Lookup};
use ftp_proxy::{log_at, sandbox};

/// Descriptors the daemon holds whatever its sessions, at most (Linux,
/// daemon mode): standard input, output and error (/dev/null), the
/// listener, the poll instance, the signal socket pair (2), the packet
/// filter's handle (the netlink socket; /dev/pf on OpenBSD), the syslog
/// socket (connected at once by LOG_NDELAY; none on OpenBSD, whose
/// sendsyslog(2) needs none) and the reserve descriptor that lets a client be
/// told "out of file descriptors": 3 + 1 + 1 + 2 + 1 + 1 + 1 = 10.
const FIXED_DESCRIPTORS: u64 = 10;

/// RLIMIT_NOFILE for `-m maxsessions`: two per session (the client's and
/// the server's control connections), the fixed ones, and one for the
/// client beyond the limit, accepted only to be refused with the `-m` 421
/// (the original's `2 × maxsessions + 10` had no reserve descriptor).
fn descriptor_budget(max_sessions: u32) -> u64 {
    2 * u64::from(max_sessions) + FIXED_DESCRIPTORS + 1
}

/// Like errx(3): the message on stderr, exit status 1.
fn fatal(msg: impl std::fmt::Display) -> ! {
    eprintln!("ftp-proxy: {msg}");
    exit(1)
}

fn main() {
    // Lossy: a non-UTF-8 argument then fails its own check (an address
    // that does not resolve, a number that does not parse) instead of
    // aborting the program.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let opts = match options::parse(&args) {
        Ok(o) => o,
        Err(OptionsError::Help) => {
            print!("{USAGE}");
            exit(0)
        }
        Err(OptionsError::Usage(diagnostic)) => {
            if let Some(d) = diagnostic {
                eprintln!("ftp-proxy: {d}");
            }
            eprint!("{USAGE}");
            exit(1)
        }
        Err(OptionsError::Invalid(msg)) => fatal(msg),
    };
    log::set_level(opts.log_level);

    if !Uid::current().is_root() {
        fatal("needs to start as root");
    }
    let account = sandbox::lookup_user().unwrap_or_else(|e| fatal(e));

    let nofile = descriptor_budget(opts.max_sessions);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, nofile, nofile) {
        fatal(format_args!("setrlimit: {e}"));
    }

    let source_addr = opts.source_addr.as_deref().map(|a| {
        let how = Lookup {
            ipv6: opts.ipv6,
            numeric_host: true,
            passive: false,
        };
        let addr = sys::resolve(Some(a), "0", how)
            .unwrap_or_else(|e| fatal(format_args!("getaddrinfo fixed proxy address failed: {e}")));
        log_at!(Level::Info, "using {} to connect to servers", addr.ip());
        addr
    });
    let fixed_server = opts.fixed_server.as_deref().map(|r| {
        let how = Lookup {
            ipv6: opts.ipv6,
            numeric_host: false,
            passive: false,
        };
        let addr = sys::resolve(Some(r), &opts.server_port, how).unwrap_or_else(|e| {
            fatal(format_args!("getaddrinfo fixed server address failed: {e}"))
        });
        log_at!(Level::Info, "using fixed server {}", addr.ip());
        addr
    });

    let listener = bind_listener(&opts);
    let listen_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let (filter, filter_notes) = open_filter(&opts, listen_port);

    // Opened now: after the chroot neither /dev/null nor /dev/log exists.
    let devnull: Option<OwnedFd> = (!opts.foreground).then(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .unwrap_or_else(|e| fatal(format_args!("open(/dev/null): {e}")))
    });
    if !opts.foreground {
        log::open_syslog();
    }
    filter_notes
        .iter()
        .for_each(|n| log_at!(Level::Info, "{n}"));

    sandbox::drop_privileges(&account).unwrap_or_else(|e| fatal(e));
    if let Some(devnull) = devnull {
        sys::daemonize(devnull).unwrap_or_else(|e| fatal(format_args!("cannot daemonize: {e}")));
    }

    let server = Server::new(
        listener,
        filter,
        serve_config(&opts, fixed_server, source_addr),
    )
    .unwrap_or_else(|e| die(format_args!("cannot start the event loop: {e}")));
    match sandbox::lock_down() {
        Ok(lines) => lines.iter().for_each(|l| log_at!(Level::Info, "{l}")),
        Err(e) => die(e),
    }
    log_at!(
        Level::Notice,
        "listening on {} port {}",
        opts.listen_addr,
        opts.listen_port
    );
    match server.run() {
        Ok(_signal) => {
            log::close_syslog();
            exit(0)
        }
        Err(e) => die(format_args!("event loop failed: {e}")),
    }
}

/// After daemonizing stderr is /dev/null: say it in the log, then exit 1.
fn die(msg: impl std::fmt::Display) -> ! {
    log_at!(Level::Crit, "{msg}");
    fatal(msg)
}

/// The listening socket: numeric address, SO_REUSEADDR, backlog 10, with
/// the original's error messages.
fn bind_listener(opts: &Options) -> TcpListener {
    let how = Lookup {
        ipv6: opts.ipv6,
        numeric_host: true,
        passive: true,
    };
    let addr: SocketAddr = sys::resolve(Some(&opts.listen_addr), &opts.listen_port, how)
        .unwrap_or_else(|e| fatal(format_args!("getaddrinfo listen address failed: {e}")));
    let family = if opts.ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd: OwnedFd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .unwrap_or_else(|_| fatal("socket failed"));
    if opts.ipv6 {
        // OpenBSD has no IPv4-mapped addresses; on Linux an IPv6 listener
        // would also take IPv4 clients as ::ffff:a.b.c.d, whose pinholes an
        // ip6 table can never match.
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)
            .unwrap_or_else(|e| fatal(format_args!("setsockopt failed: {e}")));
    }
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)
        .unwrap_or_else(|e| fatal(format_args!("setsockopt failed: {e}")));
    if let Err(e) = socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        let hint = match e {
            nix::errno::Errno::EADDRINUSE => {
                "; another program listens there: stop it or choose -b/-p"
            }
            nix::errno::Errno::EADDRNOTAVAIL => "; -b must be an address of this host",
            _ => "",
        };
        fatal(format_args!(
            "bind failed: {e} ({} port {}){hint}",
            addr.ip(),
            addr.port()
        ));
    }
    // The original's backlog of 10 drops connections when many clients
    // arrive at once; the system's maximum (net.core.somaxconn) does not.
    socket::listen(&fd, Backlog::MAXCONN)
        .unwrap_or_else(|e| fatal(format_args!("listen failed: {e}")));
    TcpListener::from(fd)
}

/// The packet filter handle, opened as root, and lines for the log once
/// syslog is open.
#[cfg(target_os = "linux")]
fn open_filter(opts: &Options, listen_port: u16) -> (Box<dyn Filter>, Vec<String>) {
    use ftp_proxy::filter::nft::{self, NftConfig, Nftables};
    let mark = match &opts.tag {
        Some(tag) => nft::mark_from_tag(tag).unwrap_or_else(|e| fatal(e)),
        None => nft::DEFAULT_MARK,
    };
    let priority = opts
        .queue
        .as_deref()
        .map(|q| nft::priority_from_queue(q).unwrap_or_else(|e| fatal(e)));
    let config = NftConfig {
        ipv6: opts.ipv6,
        listen_port,
        mark,
        log: opts.verbose,
        priority,
    };
    (
        Box::new(Nftables::new(config).unwrap_or_else(|e| fatal(e))),
        Vec::new(),
    )
}

#[cfg(all(target_os = "openbsd", not(ftp_proxy_no_pf)))]
fn open_filter(opts: &Options, _listen_port: u16) -> (Box<dyn Filter>, Vec<String>) {
    // -v, -T and -q decorate every rule; the rdomains are the backend's.
    let rules = ftp_proxy::filter::pf::RuleOptions {
        log: opts.verbose,
        tag: opts.tag.clone(),
        queue: opts.queue.clone(),
        client_rdomain: None,
        proxy_rdomain: None,
    };
    let pf = ftp_proxy::filter::pf::Pf::new(rules).unwrap_or_else(|e| fatal(e));
    let notes = pf.startup_messages().to_vec();
    (Box::new(pf), notes)
}

/// Built with FTP_PROXY_PF_HEADERS=none: for type-checking only.
#[cfg(all(target_os = "openbsd", ftp_proxy_no_pf))]
fn open_filter(_opts: &Options, _listen_port: u16) -> (Box<dyn Filter>, Vec<String>) {
    fatal("built without <net/pfvar.h> (FTP_PROXY_PF_HEADERS=none): no pf backend")
}

fn serve_config(
    opts: &Options,
    fixed_server: Option<SocketAddr>,
    source_addr: Option<SocketAddr>,
) -> serve::Config {
    serve::Config {
        max_sessions: opts.max_sessions as usize,
        ipv6: opts.ipv6,
        fixed_server,
        source_addr,
        session: Settings {
            idle_timeout: (opts.timeout > 0).then(|| Duration::from_secs(opts.timeout.into())),
            connect_timeout: CONNECT_TIMEOUT,
            engine: EngineConfig {
                anonymous_only: opts.anonymous_only,
                ipv6: opts.ipv6,
                rfc_mode: opts.rfc_mode,
                log_level: Level::from_number(opts.log_level),
            },
        },
    }
}
