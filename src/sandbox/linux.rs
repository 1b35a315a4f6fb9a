//! Linux: chroot and the user drop with CAP_NET_ADMIN kept, then
//! no_new_privs, Landlock and seccomp.
//!
//! Why CAP_NET_ADMIN survives the drop: unlike OpenBSD's /dev/pf descriptor,
//! a netlink socket opened by root is not enough. Since the fix for
//! CVE-2014-0181, nfnetlink checks both the opener's credentials and the
//! sending task's capability on every message, so the daemon keeps
//! CAP_NET_ADMIN (and nothing else) in its permitted and effective sets.

use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use landlock::{Access, AccessFs, LandlockStatus, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI};

use super::{seccomp, Account};

/// The one capability kept: netlink checks it on every nftables message.
const KEPT: Capability = Capability::CAP_NET_ADMIN;

/// The newest Landlock ABI this version of the landlock crate knows. Every
/// file-system right and scope of it is handled; the kernel enforces what
/// it can (best effort) and the status says how much that was. Raise it
/// when the crate is updated.
const LANDLOCK_ABI: ABI = ABI::V10;

/// chroot, the user, and the capability sets, in the one order that works:
///
/// 1. check or create the chroot directory; tzset; chroot; chdir `/`;
/// 2. PR_SET_KEEPCAPS, so setresuid keeps the permitted set;
/// 3. empty the bounding set but for CAP_NET_ADMIN, while CAP_SETPCAP is
///    still held (it is gone once the uid is not 0);
/// 4. setgroups, setresgid, setresuid;
/// 5. permitted = effective = {CAP_NET_ADMIN}, inheritable and ambient
///    empty;
/// 6. PR_SET_KEEPCAPS back to 0, then check what the kernel now reports.
pub(super) fn drop_privileges(dir: &Path, account: &Account) -> Result<(), String> {
    super::prepare_chroot_dir(dir)?;
    super::enter_chroot(dir)?;
    set_keepcaps(true)?;
    limit_bounding_set()?;
    super::become_user(account)?;
    keep_only(KEPT)?;
    set_keepcaps(false)?;
    super::verify_user(account)?;
    verify_caps()
}

fn set_keepcaps(on: bool) -> Result<(), String> {
    nix::sys::prctl::set_keepcaps(on).map_err(|e| {
        format!(
            "prctl PR_SET_KEEPCAPS {}: {}",
            u8::from(on),
            std::io::Error::from(e)
        )
    })
}

/// Whether capability number `cap` is in the bounding set (nix has no
/// wrapper for PR_CAPBSET_READ or PR_CAPBSET_DROP); None once `cap`
/// is past the last capability the running kernel knows (EINVAL). Reading
/// the kernel instead of a fixed list also drops capabilities newer than
/// the `caps` crate.
fn in_bounding_set(cap: u32) -> Option<bool> {
    // SAFETY: PR_CAPBSET_READ takes a capability number; no pointers.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
    (rc >= 0).then_some(rc == 1)
}

/// Removes every capability but [`KEPT`] from the bounding set, so nothing
/// the process execs (it cannot, but defence in depth) or regains through
/// file capabilities can exceed it.
fn limit_bounding_set() -> Result<(), String> {
    let kept = u32::from(KEPT.index());
    for cap in 0..64u32 {
        match in_bounding_set(cap) {
            None => break,
            Some(false) => {}
            Some(true) if cap == kept => {}
            Some(true) => {
                // SAFETY: PR_CAPBSET_DROP takes a capability number; no
                // pointers.
                let rc = unsafe {
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0)
                };
                if rc != 0 {
                    return Err(format!(
                        "prctl PR_CAPBSET_DROP {cap}: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Inheritable and ambient empty first (ambient must be a subset of
/// inheritable), then permitted, then effective (a subset of permitted).
fn keep_only(cap: Capability) -> Result<(), String> {
    let none = CapsHashSet::new();
    let only: CapsHashSet = [cap].into_iter().collect();
    caps::set(None, CapSet::Inheritable, &none)
        .map_err(|e| format!("clearing inheritable capabilities: {e}"))?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &only)
        .map_err(|e| format!("setting permitted capabilities to {cap}: {e}"))?;
    caps::set(None, CapSet::Effective, &only)
        .map_err(|e| format!("setting effective capabilities to {cap}: {e}"))
}

/// What the kernel reports after the drop must be exactly CAP_NET_ADMIN in
/// the permitted, effective and bounding sets, and nothing elsewhere.
fn verify_caps() -> Result<(), String> {
    let only: CapsHashSet = [KEPT].into_iter().collect();
    for (set, want) in [
        (CapSet::Permitted, &only),
        (CapSet::Effective, &only),
        (CapSet::Inheritable, &CapsHashSet::new()),
        (CapSet::Ambient, &CapsHashSet::new()),
    ] {
        let have =
            caps::read(None, set).map_err(|e| format!("reading {set:?} capabilities: {e}"))?;
        if &have != want {
            return Err(format!(
                "{set:?} capabilities are {have:?}, expected {want:?}"
            ));
        }
    }
    let kept = u32::from(KEPT.index());
    for cap in 0..64u32 {
        match in_bounding_set(cap) {
            None => break,
            Some(present) if present != (cap == kept) => {
                return Err(format!("bounding set still holds capability {cap}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// no_new_privs, Landlock, then seccomp; each step narrows the next.
///
/// - no_new_privs first: seccomp and Landlock require it of a process
///   without CAP_SYS_ADMIN, and it keeps exec (if it ever happened) from
///   granting privileges through set-uid bits or file capabilities.
/// - Landlock handles every file-system right and scope of
///   [`LANDLOCK_ABI`] and grants none: even a path that exists in the
///   chroot cannot be opened, and abstract Unix sockets and signals outside
///   the process are out of reach. Network rights are not handled: the
///   daemon connects to any server port. Best effort: an older kernel
///   enforces less, and the returned line says so.
/// - seccomp last, because building the Landlock ruleset needs system calls
///   (landlock_create_ruleset, landlock_restrict_self, prctl) the allow-list
///   refuses.
pub(super) fn lock_down() -> Result<Vec<String>, String> {
    set_no_new_privs()?;
    let mut lines = vec![landlock()?];
    match seccomp::ARCH_NAME {
        Some(_) => lines.push(seccomp::install()?),
        None => {
            // Logged here at WARNING, not returned: the returned lines go
            // to the log at INFO, below the default threshold.
            crate::log_at!(
                crate::log::Level::Warning,
                "WARNING: no seccomp filter on {}: only x86_64, aarch64 and riscv64 are \
                 supported; running with chroot, user, CAP_NET_ADMIN, no_new_privs and Landlock only",
                std::env::consts::ARCH
            );
        }
    }
    Ok(lines)
}

fn set_no_new_privs() -> Result<(), String> {
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| format!("prctl PR_SET_NO_NEW_PRIVS: {}", std::io::Error::from(e)))
}

/// Builds and enforces the Landlock ruleset; returns the status line, e.g.
/// `landlock: fully enforced (ABI 6)`.
fn landlock() -> Result<String, String> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .and_then(|r| r.scope(Scope::from_all(LANDLOCK_ABI)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    let kernel = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi: Some(newer),
        } => format!("ABI {newer}, used as {effective_abi}"),
        LandlockStatus::Available { effective_abi, .. } => format!("ABI {effective_abi}"),
        LandlockStatus::NotEnabled => "Landlock disabled at boot".to_string(),
        LandlockStatus::NotImplemented => "kernel without Landlock".to_string(),
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => format!("landlock: fully enforced ({kernel})"),
        RulesetStatus::PartiallyEnforced => format!(
            "landlock: partially enforced ({kernel}; rights of ABI {} requested)",
            LANDLOCK_ABI as u32
        ),
        RulesetStatus::NotEnforced => format!("landlock: not enforced ({kernel})"),
    })
}
