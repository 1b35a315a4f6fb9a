//! Linux: randomness from getrandom(2) and the original destination of a
//! redirected or TPROXY'd control connection.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};

pub(super) fn random_below_impl(bound: u32) -> u32 {
    // Rejection sampling: drop the top `2^32 mod bound` values so every
    // result is equally likely.
    let limit = u32::MAX - (u32::MAX % bound + 1) % bound;
    loop {
        let mut buf = [0u8; 4];
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n != 4 {
            // EINTR before any byte; getrandom(2) never returns short reads
            // of up to 256 bytes once the pool is initialised.
            continue;
        }
        let x = u32::from_ne_bytes(buf);
        if x <= limit {
            return x % bound;
        }
    }
}

/// Where the client meant to go.
///
/// After an nftables `redirect`/`dnat`, conntrack still knows the original
/// destination: SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6). A
/// TPROXY'd connection is not translated and keeps the original destination
/// as its local address, like a pf `divert-to` socket: getsockname().
pub fn original_destination<F: AsFd>(fd: &F, ipv6: bool) -> io::Result<SocketAddr> {
    let original = if ipv6 {
        getsockopt(fd, sockopt::Ip6tOriginalDst).map(|sin6| {
            SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                0,
                0,
            ))
        })
    } else {
        getsockopt(fd, sockopt::OriginalDst).map(|sin| {
            SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(sin.sin_addr.s_addr).into(),
                u16::from_be(sin.sin_port),
            ))
        })
    };
    match original {
        Ok(addr) => Ok(addr),
        // No conntrack entry (conntrack not loaded, or not tracked): the
        // socket's own address is the destination, as with TPROXY.
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOPROTOOPT) => {
            super::local_addr(fd)
        }
        Err(e) => Err(e.into()),
    }
}

/// Linux has no routing domains in pf's sense (a VRF is chosen by the
/// interface, not by the socket): always `None`.
pub fn client_rdomain<F: AsFd>(_fd: &F) -> io::Result<Option<u32>> {
    Ok(None)
}
