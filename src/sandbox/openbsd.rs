//! OpenBSD: chroot and the user drop, then unveil and pledge.
//!
//! No capability juggling here: the /dev/pf descriptor opened as root keeps
//! working after the drop, because pf checks the descriptor's open mode,
//! not the caller.

use std::path::Path;

use super::Account;

/// The promises the serving loop lives under, checked against
/// kern_pledge.c (rev. 1.333):
///
/// - `stdio`: read/write/recvfrom/sendto on open descriptors, kqueue and
///   kevent (mio), getsockname and getpeername, fcntl, clock_gettime,
///   getentropy/arc4random, sendsyslog(2) (always allowed: syslog(3) works
///   in the chroot), and the ioctls FIONBIO/FIOCLEX.
/// - `inet`: socket/connect/bind/accept for AF_INET and AF_INET6 only (no
///   new Unix sockets), and every SOL_SOCKET option but SO_RTABLE, so
///   SO_KEEPALIVE and SO_ERROR are fine, plus the usual TCP/IP options.
/// - `pf`: DIOCADDRULE, DIOCGETSTATUS, DIOCNATLOOK, DIOCXBEGIN, DIOCXCOMMIT
///   and a few table ioctls on /dev/pf. Not DIOCXROLLBACK: the pf backend
///   never calls it (an abandoned transaction is discarded by the next
///   DIOCXBEGIN on the same anchor).
/// - `wroute`: the only way to use SO_RTABLE. pledge_sockopt() refuses
///   SO_RTABLE for get *and* set without it, and a refusal aborts the
///   process; the session reads the client's routing domain with
///   getsockopt(SO_RTABLE), as the original does. For this unprivileged
///   user it adds nothing else that works: the interface ioctls it also
///   unlocks still require root.
///
/// No path promise (rpath, wpath, cpath, ...): every path lookup aborts the
/// process, except the kernel's few whitelisted files, which do not exist
/// inside /var/empty. No proc, exec or id: no fork, exec or uid change.
pub const PLEDGE_PROMISES: &str = "stdio inet pf wroute";

/// chroot, chdir `/`, then the user; the same checks on the directory as on
/// Linux (OpenBSD ships /var/empty root-owned 0755 and empty).
pub(super) fn drop_privileges(dir: &Path, account: &Account) -> Result<(), String> {
    super::prepare_chroot_dir(dir)?;
    super::enter_chroot(dir)?;
    super::become_user(account)?;
    super::verify_user(account)
}

/// Hide the file system, lock the veil, then pledge.
///
/// unveil(2) restricts path lookups only once a path has been unveiled: a
/// process that merely locks the veil with unveil(NULL, NULL) keeps seeing
/// every path (kern_unveil.c's unveil_check_final() lets everything
/// through while the process has no unveiled path). So `/` (the chroot's
/// root, /var/empty) is unveiled with no permissions (""), which makes
/// every lookup below it fail with ENOENT, and then unveil(NULL, NULL)
/// forbids any later unveil from making a path visible again.
///
/// Order matters: after pledge without "unveil" the unveil calls would be
/// refused. (pledge without path promises would also refuse path lookups
/// on its own; the veil does not depend on that.) No exec promises: exec is
/// not pledged at all.
pub(super) fn lock_down() -> Result<Vec<String>, String> {
    unveil::unveil("/", "").map_err(|e| format!("unveil / \"\": {e}"))?;
    unveil::unveil("", "").map_err(|e| format!("unveil lock: {e}"))?;
    pledge::pledge(PLEDGE_PROMISES, None)
        .map_err(|e| format!("pledge {PLEDGE_PROMISES:?}: {e}"))?;
    Ok(vec![
        "unveil: file system locked".to_string(),
        format!("pledge: {PLEDGE_PROMISES}"),
    ])
}
