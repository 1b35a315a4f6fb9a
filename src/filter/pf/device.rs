//! The seam through which the backend reaches pf: one ioctl at a time.
//!
//! On OpenBSD the device is `/dev/pf`; tests put a model of pf_ioctl.c
//! behind the same trait and drive the real backend through the daemon's
//! sessions. Every argument is an [`Arg`], so whatever sits behind the
//! seam sees the exact bytes the kernel would.

use nix::errno::Errno;

use super::arg::Arg;
use super::sys;

/// One of the six ioctls the backend issues, with its argument.
///
/// A transaction always names one anchor: DIOCXBEGIN and DIOCXCOMMIT carry
/// the single `pfioc_trans_e` their `pfioc_trans` points at.
pub enum Request<'a> {
    XBegin(&'a mut Arg<sys::pfioc_trans_e>),
    AddRule(&'a mut Arg<sys::pfioc_rule>),
    XCommit(&'a mut Arg<sys::pfioc_trans_e>),
    GetStatus(&'a mut Arg<sys::pf_status>),
    GetRulesets(&'a mut Arg<sys::pfioc_ruleset>),
    GetRuleset(&'a mut Arg<sys::pfioc_ruleset>),
}

impl Request<'_> {
    /// The ioctl's name in pfvar.h.
    pub fn name(&self) -> &'static str {
        match self {
            Request::XBegin(_) => "DIOCXBEGIN",
            Request::AddRule(_) => "DIOCADDRULE",
            Request::XCommit(_) => "DIOCXCOMMIT",
            Request::GetStatus(_) => "DIOCGETSTATUS",
            Request::GetRulesets(_) => "DIOCGETRULESETS",
            Request::GetRuleset(_) => "DIOCGETRULESET",
        }
    }
}

/// Something that answers pf's ioctls: the kernel, or a model of it.
pub trait Device: Send {
    /// Issues `request`; the argument holds the kernel's answer afterwards.
    fn ioctl(&mut self, request: Request<'_>) -> Result<(), Errno>;
}

#[cfg(target_os = "openbsd")]
pub use self::openbsd::DevPf;

#[cfg(target_os = "openbsd")]
mod openbsd {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::mem::size_of;
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;

    use super::super::ioc::{nr, PF_GROUP};
    use super::super::sys;
    use super::{Device, Request};

    /// The ioctls, with request numbers nix computes from the generated
    /// structures' sizes (`_IOWR('D', n, T)`).
    mod ioctl {
        use super::{nr, sys, PF_GROUP};
        nix::ioctl_readwrite!(add_rule, PF_GROUP, nr::DIOCADDRULE, sys::pfioc_rule);
        nix::ioctl_readwrite!(get_status, PF_GROUP, nr::DIOCGETSTATUS, sys::pf_status);
        nix::ioctl_readwrite!(
            get_rulesets,
            PF_GROUP,
            nr::DIOCGETRULESETS,
            sys::pfioc_ruleset
        );
        nix::ioctl_readwrite!(
            get_ruleset,
            PF_GROUP,
            nr::DIOCGETRULESET,
            sys::pfioc_ruleset
        );
        nix::ioctl_readwrite!(begin, PF_GROUP, nr::DIOCXBEGIN, sys::pfioc_trans);
        nix::ioctl_readwrite!(commit, PF_GROUP, nr::DIOCXCOMMIT, sys::pfioc_trans);
    }

    /// `/dev/pf`, open read-write.
    pub struct DevPf(File);

    impl DevPf {
        /// Opens `/dev/pf` (as root, before the chroot).
        pub fn open() -> io::Result<DevPf> {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/pf")
                .map(DevPf)
        }
    }

    impl Device for DevPf {
        fn ioctl(&mut self, request: Request<'_>) -> Result<(), Errno> {
            let fd = self.0.as_raw_fd();
            match request {
                Request::XBegin(elem) => {
                    let mut trans = one_element(elem.get_mut());
                    // SAFETY: fd is /dev/pf; trans points at one valid,
                    // initialised element that outlives the call, and the
                    // kernel writes back only its ticket.
                    unsafe { ioctl::begin(fd, &mut trans) }?;
                }
                Request::XCommit(elem) => {
                    let mut trans = one_element(elem.get_mut());
                    // SAFETY: as for DIOCXBEGIN.
                    unsafe { ioctl::commit(fd, &mut trans) }?;
                }
                Request::AddRule(pr) => {
                    // SAFETY: a fully initialised pfioc_rule of the size
                    // the request number encodes.
                    unsafe { ioctl::add_rule(fd, pr.get_mut()) }?;
                }
                Request::GetStatus(st) => {
                    // SAFETY: a writable pf_status of the encoded size.
                    unsafe { ioctl::get_status(fd, st.get_mut()) }?;
                }
                Request::GetRulesets(rs) => {
                    // SAFETY: a pfioc_ruleset with a NUL-terminated path.
                    unsafe { ioctl::get_rulesets(fd, rs.get_mut()) }?;
                }
                Request::GetRuleset(rs) => {
                    // SAFETY: as above; the kernel writes a NUL-terminated name.
                    unsafe { ioctl::get_ruleset(fd, rs.get_mut()) }?;
                }
            }
            Ok(())
        }
    }

    /// A `pfioc_trans` over exactly one element.
    fn one_element(elem: &mut sys::pfioc_trans_e) -> sys::pfioc_trans {
        sys::pfioc_trans {
            size: 1,
            esize: size_of::<sys::pfioc_trans_e>() as i32,
            array: elem,
        }
    }
}
