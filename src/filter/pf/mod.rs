//! pf: pinholes as per-session anchors through /dev/pf.
//!
//! The parts that are plain arithmetic and data (ioctl numbers, anchor
//! names, the field values of each rule, their pf.conf text) are portable
//! and tested on every system. The rest needs bindings bindgen generates
//! from `<net/pfvar.h>` (see build.rs): on OpenBSD from the system's
//! headers, on a 64-bit host from an OpenBSD header sysroot (`PF_SYSROOT`),
//! where tests run the backend against a model of the kernel.

pub mod anchor;
pub mod conf;
pub mod ioc;
pub mod rule;

pub use rule::RuleOptions;

#[cfg(ftp_proxy_pf_bindings)]
pub mod arg;
#[cfg(ftp_proxy_pf_bindings)]
mod dev;
#[cfg(ftp_proxy_pf_bindings)]
pub mod device;
#[cfg(ftp_proxy_pf_bindings)]
pub mod sys;

#[cfg(ftp_proxy_pf_bindings)]
pub use dev::Pf;
