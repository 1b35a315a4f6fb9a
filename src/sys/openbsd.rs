//! OpenBSD: randomness from arc4random_uniform(3), the original destination
//! of a divert-to socket, and routing domains.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

pub(super) fn random_below_impl(bound: u32) -> u32 {
    // SAFETY: arc4random_uniform(3) takes any bound and cannot fail.
    unsafe { libc::arc4random_uniform(bound) }
}

/// With `divert-to`, the accepted socket's own address is the original
/// destination: pf delivers the connection to a socket that looks bound to
/// where the client meant to go. No DIOCNATLOOK (that was the `rdr` era).
pub fn original_destination<F: AsFd>(fd: &F, _ipv6: bool) -> io::Result<SocketAddr> {
    super::local_addr(fd)
}

/// The routing domain a connection arrived in: getsockopt(SO_RTABLE).
///
/// None when the socket's protocol has no routing table option
/// (ENOPROTOOPT), which the original tolerates and treats as rdomain 0.
/// Under pledge(2) this needs the `wroute` promise: kern_pledge.c's
/// pledge_sockopt() refuses SO_RTABLE, get and set alike, to a process
/// without it, and `inet` alone is not enough (see PLEDGE_PROMISES in
/// src/sandbox/openbsd.rs).
pub fn client_rdomain<F: AsFd>(fd: &F) -> io::Result<Option<u32>> {
    let mut rd: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: rd and len are valid for writes, len holds rd's size, and the
    // descriptor is borrowed for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RTABLE,
            (&mut rd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(rd as u32))
}

extern "C" {
    /// getrtable(2): the calling process's routing table. Not in the libc
    /// crate; it is a plain system call that cannot fail.
    fn getrtable() -> libc::c_int;
}

/// The routing table the daemon itself runs in (route -T N exec …), which
/// its server connections and therefore the proxy side of each pinhole use.
pub fn proxy_rdomain() -> u32 {
    // SAFETY: getrtable(2) has no arguments and no failure mode.
    unsafe { getrtable() as u32 }
}
