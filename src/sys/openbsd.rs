//! OpenBSD: randomness from arc4random_uniform(3) and the original
//! destination of a divert-to socket. (Pending.)

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

pub(super) fn random_below_impl(bound: u32) -> u32 {
    // SAFETY: arc4random_uniform(3) takes any bound and cannot fail.
    unsafe { libc::arc4random_uniform(bound) }
}

/// With `divert-to`, the accepted socket's own address is the original
/// destination.
pub fn original_destination<F: AsFd>(fd: &F, _ipv6: bool) -> io::Result<SocketAddr> {
    super::local_addr(fd)
}
