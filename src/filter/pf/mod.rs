//! pf: pinholes as per-session anchors through /dev/pf.
//!
//! The parts that are plain arithmetic and data (ioctl numbers, anchor
//! names, the field values of each rule) are portable and tested on every
//! system; only `dev` talks to the kernel, through bindings bindgen generates
//! from the target's `<net/pfvar.h>` (see build.rs).

pub mod anchor;
pub mod conf;
pub mod ioc;
pub mod rule;

pub use rule::RuleOptions;

#[cfg(all(target_os = "openbsd", not(ftp_proxy_no_pf)))]
mod dev;
#[cfg(all(target_os = "openbsd", not(ftp_proxy_no_pf)))]
pub mod sys;

#[cfg(all(target_os = "openbsd", not(ftp_proxy_no_pf)))]
pub use dev::Pf;
