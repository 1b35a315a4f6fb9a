//! Giving up power after start-up: chroot to /var/empty, the unprivileged
//! user, and the system's own sandbox (pledge/unveil on OpenBSD;
//! capabilities, no_new_privs, Landlock and seccomp on Linux).
//!
//! Start-up calls two functions, in this order (see `main`):
//!
//! 1. [`drop_privileges`], once the listener, the filter handle and the
//!    syslog connection exist: everything that needs root or a path is done
//!    by then. It checks (or creates) [`CHROOT_DIR`], chroots into it and
//!    becomes [`USER`]. On Linux it keeps CAP_NET_ADMIN alone, because
//!    netlink checks the sender's capability on every message.
//! 2. [`lock_down`], after daemonizing and right before serving: the kernel
//!    sandbox, which also forbids what daemonizing needs (fork, setsid).
//!
//! This file holds what both systems share: the account and the checks on
//! the chroot directory. `linux.rs` and `openbsd.rs` hold the rest.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(target_os = "linux")]
pub use seccomp::{allow_list, SeccompEntry};

#[cfg(target_os = "openbsd")]
mod openbsd;
#[cfg(target_os = "openbsd")]
use openbsd as platform;
#[cfg(target_os = "openbsd")]
pub use openbsd::PLEDGE_PROMISES;

/// The empty directory the daemon chroots into.
pub const CHROOT_DIR: &str = "/var/empty";

/// The unprivileged account: base's `_ftp_proxy` on OpenBSD, Debian's
/// `proxy` on Linux.
#[cfg(target_os = "openbsd")]
pub const USER: &str = "_ftp_proxy";
#[cfg(not(target_os = "openbsd"))]
pub const USER: &str = "proxy";

/// The account the daemon runs as after start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Looks up [`USER`]; the error reads `unknown user <name>`.
pub fn lookup_user() -> Result<Account, String> {
    lookup_user_named(USER)
}

/// Looks up any account by name, with the same messages as
/// [`lookup_user`] (tests use a name that does not exist).
pub fn lookup_user_named(name: &str) -> Result<Account, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(Account {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        Ok(None) => Err(format!("unknown user {name}")),
        Err(e) => Err(format!("cannot look up user {name}: {e}")),
    }
}

/// chroot to [`CHROOT_DIR`], chdir `/`, then become `account` (setgroups,
/// setresgid, setresuid). On Linux CAP_NET_ADMIN is kept, because netlink
/// checks the sender's capability on every message.
///
/// Errors read `cannot drop privileges: <what failed>: <why>`.
pub fn drop_privileges(account: &Account) -> Result<(), String> {
    drop_privileges_into(Path::new(CHROOT_DIR), account)
}

/// [`drop_privileges`] with another chroot directory, so tests can run the
/// whole sequence in a temporary directory. The daemon uses [`CHROOT_DIR`].
pub fn drop_privileges_into(dir: &Path, account: &Account) -> Result<(), String> {
    platform::drop_privileges(dir, account).map_err(|e| format!("cannot drop privileges: {e}"))
}

/// The system sandbox, entered after daemonizing and before serving.
/// Returns lines for the log (e.g. what Landlock could enforce).
///
/// The process must have a single thread: Landlock and the capability sets
/// are per thread on Linux.
pub fn lock_down() -> Result<Vec<String>, String> {
    platform::lock_down().map_err(|e| format!("cannot enter the sandbox: {e}"))
}

/// Makes sure `dir` is fit to be the chroot: a directory owned by root,
/// writable by nobody else, and empty. If it does not exist it is created
/// root-owned with mode 0755 (OpenBSD ships /var/empty; many Linux systems
/// do not).
///
/// Why each check: a directory another user can write to, or one that
/// already holds files, could hand the daemon device nodes, sockets or
/// libraries after the chroot; an empty root-owned directory gives a
/// compromised daemon nothing to open.
pub fn prepare_chroot_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_chroot_dir(dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
            std::fs::metadata(dir).map_err(|e| format!("{shown}: {e}"))?
        }
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{shown} is owned by uid {}, not by root",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{shown} is writable by group or others (mode {mode:04o})"
        ));
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{shown}: {e}"))?;
    if let Some(entry) = entries.next() {
        let name = entry
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(format!("{shown} is not empty (holds {name:?})"));
    }
    Ok(())
}

/// mkdir with mode 0755, then chmod 0755 again because the umask may have
/// taken bits away, and chown to root in case the group of the parent
/// directory is inherited (setgid directories, BSD semantics).
fn create_chroot_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().mode(0o755).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::os::unix::fs::chown(dir, Some(0), Some(0))
}

/// The time zone is read before the chroot hides /etc/localtime (syslog
/// time stamps on Linux are made by the daemon's libc), then chroot and
/// chdir `/` so that no directory outside the chroot stays reachable
/// through the working directory.
fn enter_chroot(dir: &Path) -> Result<(), String> {
    crate::sys::tzset();
    nix::unistd::chroot(dir).map_err(|e| format!("chroot {}: {e}", dir.display()))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// setgroups to the primary group alone (root's supplementary groups must
/// not survive), then the group, then the user: the uid goes last because
/// it takes away the right to change the other two.
fn become_user(account: &Account) -> Result<(), String> {
    let gid = account.gid;
    let uid = account.uid;
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups {gid}: {e}"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid {gid}: {e}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid {uid}: {e}"))
}

/// Checks that the drop took: every uid and gid is the account's, and root
/// cannot be regained. A cheap guard against a kernel or libc that
/// silently ignored part of the sequence.
fn verify_user(account: &Account) -> Result<(), String> {
    let r = nix::unistd::getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let g = nix::unistd::getresgid().map_err(|e| format!("getresgid: {e}"))?;
    if [r.real, r.effective, r.saved] != [account.uid; 3]
        || [g.real, g.effective, g.saved] != [account.gid; 3]
    {
        return Err(format!("still running as uid {r:?} gid {g:?}"));
    }
    if account.uid.as_raw() != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("uid 0 could be regained".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_named() {
        let err = lookup_user_named("no-such-user-ftp-proxy").unwrap_err();
        assert_eq!(err, "unknown user no-such-user-ftp-proxy");
    }

    #[test]
    fn root_is_found() {
        let root = lookup_user_named("root").unwrap();
        assert_eq!(root.uid.as_raw(), 0);
    }
}
