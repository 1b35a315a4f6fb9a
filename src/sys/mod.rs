//! Platform calls that std and nix do not cover, each behind a safe
//! function: name resolution with getaddrinfo(3)'s own error text, uniform
//! randomness, the original destination of a redirected connection, and
//! the signal handlers of the event loop. The portable modules (`ftp`,
//! `pinhole`, `session`, `serve`, `ports`) forbid `unsafe` and call these
//! instead; the other platform modules (`sandbox`, `filter::pf`, `log`)
//! hold their own, each block with a `SAFETY:` comment.

use std::ffi::{CStr, CString};
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "openbsd")]
mod openbsd;
#[cfg(target_os = "openbsd")]
pub use openbsd::*;

/// How [`resolve`] looks a name up.
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    /// AF_INET6 instead of AF_INET (`-6`).
    pub ipv6: bool,
    /// AI_NUMERICHOST: `-a` and `-b` take addresses only.
    pub numeric_host: bool,
    /// AI_PASSIVE: for the listen address.
    pub passive: bool,
}

/// getaddrinfo(3) for one TCP endpoint, returning its first result, or the
/// text of gai_strerror(3) so start-up errors read like the original's
/// (`getaddrinfo listen address failed: Name or service not known`).
pub fn resolve(host: Option<&str>, service: &str, how: Lookup) -> Result<SocketAddr, String> {
    let host_c = match host {
        Some(h) => Some(CString::new(h).map_err(|_| "invalid host name".to_string())?),
        None => None,
    };
    let service_c = CString::new(service).map_err(|_| "invalid service name".to_string())?;
    // SAFETY: addrinfo is plain old data; all-zero is a valid "no hints".
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = if how.ipv6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_protocol = libc::IPPROTO_TCP;
    if how.numeric_host {
        hints.ai_flags |= libc::AI_NUMERICHOST;
    }
    if how.passive {
        hints.ai_flags |= libc::AI_PASSIVE;
    }
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    let host_ptr = host_c.as_ref().map_or(std::ptr::null(), |h| h.as_ptr());
    // SAFETY: host_ptr is NULL or a live C string, service_c is a live C
    // string, hints is initialised, and res receives a list we free below.
    let rc = unsafe { libc::getaddrinfo(host_ptr, service_c.as_ptr(), &hints, &mut res) };
    if rc != 0 {
        // SAFETY: gai_strerror returns a pointer to a static string.
        let text = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(text.to_string_lossy().into_owned());
    }
    let mut found = None;
    let mut cur = res;
    while !cur.is_null() && found.is_none() {
        // SAFETY: cur is a node of the list getaddrinfo returned.
        let ai = unsafe { &*cur };
        found = sockaddr_from_raw(ai.ai_addr, ai.ai_addrlen as usize);
        cur = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    found.ok_or_else(|| "no usable address".to_string())
}

/// Converts a C socket address of an IP family into a std one.
fn sockaddr_from_raw(sa: *const libc::sockaddr, len: usize) -> Option<SocketAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa points to at least `len` bytes of a socket address; the
    // family field is read first and the cast matches it and the length.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(sin.sin_addr.s_addr).into(),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    sin6.sin6_addr.s6_addr.into(),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// A uniformly distributed number in `0..bound` (bound > 0), from the
/// kernel's generator: arc4random_uniform(3) on OpenBSD, getrandom(2) with
/// rejection sampling on Linux. Both work in the chroot.
pub fn random_below(bound: u32) -> u32 {
    assert!(bound > 0, "random_below(0)");
    random_below_impl(bound)
}

/// Sets the time zone from the environment before the chroot hides
/// /etc/localtime, as the original does.
pub fn tzset() {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset(3) takes no arguments and only reads the environment
    // and the time zone files.
    unsafe { tzset() };
}

/// The local address of a socket (getsockname(2)).
pub fn local_addr<F: AsFd>(fd: &F) -> io::Result<SocketAddr> {
    use nix::sys::socket::{getsockname, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let ss: SockaddrStorage = getsockname(fd.as_fd().as_raw_fd()).map_err(io::Error::from)?;
    storage_to_std(&ss).ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// nix's storage type to std's, for IPv4 and IPv6.
pub(crate) fn storage_to_std(ss: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = ss.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    ss.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

/// Detaches from the terminal as ftp-proxy(8) does after the privilege
/// drop: fork, the parent exits 0, the child starts a new session and puts
/// `devnull` (opened before the chroot) on standard input, output and error.
pub fn daemonize(devnull: std::os::fd::OwnedFd) -> io::Result<()> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: the process is single-threaded at this point of start-up (no
    // thread has been spawned), so the child may run arbitrary code.
    match unsafe { fork() }.map_err(io::Error::from)? {
        // SAFETY: _exit(2) ends the parent at once without running atexit
        // handlers or flushing buffers the child still owns.
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    setsid().map_err(io::Error::from)?;
    nix::unistd::dup2_stdin(&devnull).map_err(io::Error::from)?;
    nix::unistd::dup2_stdout(&devnull).map_err(io::Error::from)?;
    nix::unistd::dup2_stderr(&devnull).map_err(io::Error::from)?;
    Ok(())
}

/// Makes each of `signals` store its number in `which` and write one byte
/// to `wake` (the write end of a non-blocking pipe or socket pair the event
/// loop watches). One descriptor serves every signal: the daemon's
/// descriptor budget (`descriptor_budget` in main.rs) counts every fixed
/// descriptor, and copies per signal would eat into it.
pub fn notify_signals(
    signals: &[i32],
    wake: std::os::fd::RawFd,
    which: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> io::Result<Vec<signal_hook::SigId>> {
    use std::sync::atomic::Ordering;
    let mut ids = Vec::new();
    for &sig in signals {
        let which = std::sync::Arc::clone(&which);
        let action = move || {
            which.store(sig as usize, Ordering::SeqCst);
            // SAFETY: write(2) is async-signal-safe; `wake` stays open for
            // as long as the handler is registered (the caller unregisters
            // before closing it), and a full pipe just drops the byte,
            // which is fine because one pending byte already wakes the loop.
            unsafe { libc::write(wake, [0u8].as_ptr().cast(), 1) };
        };
        // SAFETY: the action only stores to an atomic and calls write(2),
        // both async-signal-safe; it allocates and locks nothing.
        ids.push(unsafe { signal_hook::low_level::register(sig, action) }?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_numeric_addresses_and_services() {
        let a = resolve(
            Some("127.0.0.1"),
            "8021",
            Lookup {
                ipv6: false,
                numeric_host: true,
                passive: true,
            },
        )
        .unwrap();
        assert_eq!(a, "127.0.0.1:8021".parse().unwrap());
        let b = resolve(
            Some("::1"),
            "21",
            Lookup {
                ipv6: true,
                numeric_host: true,
                passive: true,
            },
        )
        .unwrap();
        assert_eq!(b, "[::1]:21".parse().unwrap());
    }

    #[test]
    fn numeric_lookup_refuses_names_with_gai_text() {
        let err = resolve(
            Some("localhost"),
            "21",
            Lookup {
                ipv6: false,
                numeric_host: true,
                passive: false,
            },
        )
        .unwrap_err();
        assert!(!err.is_empty());
        // The wrong family for the mode fails too (-6 with an IPv4 address).
        assert!(resolve(
            Some("127.0.0.1"),
            "21",
            Lookup {
                ipv6: true,
                numeric_host: true,
                passive: false
            }
        )
        .is_err());
    }

    #[test]
    fn random_below_stays_in_bounds() {
        for bound in [1, 2, 3, 16383, u32::MAX] {
            for _ in 0..100 {
                assert!(random_below(bound) < bound);
            }
        }
    }
}
