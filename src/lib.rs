//! ftp-proxy: an FTP proxy for firewalls.
//!
//! The daemon takes redirected FTP control connections, connects to the real
//! server for the client, and for every PORT/EPRT/PASV/EPSV negotiation
//! rewrites the line and opens one packet-filter pinhole, so that the data
//! connection flows through the kernel and never through the daemon.
//!
//! The layout follows the architecture:
//! - [`ftp`]: the control protocol, sans-I/O (framing, parsing, rewriting)
//! - [`session`], [`serve`]: sockets, timers and signals around it
//! - [`pinhole`]: what a data connection needs, as plain data
//! - [`filter`]: the seam to the kernel (pf on OpenBSD, nftables on Linux)
//! - [`sandbox`], [`sys`], [`log`]: the platform
//!
//! `unsafe` is confined to the platform modules ([`sys`], [`sandbox`],
//! `filter::pf`, [`log`]), each block with a `SAFETY:` comment (clippy's
//! `undocumented_unsafe_blocks`): the crate denies it, those modules alone
//! allow it, and the portable ones ([`ftp`], [`pinhole`], [`session`],
//! [`serve`], [`ports`]) forbid it outright.

#![deny(unsafe_code)]

pub mod filter;
#[forbid(unsafe_code)]
pub mod ftp;
#[allow(unsafe_code)]
pub mod log;
pub mod options;
#[forbid(unsafe_code)]
pub mod pinhole;
#[forbid(unsafe_code)]
pub mod ports;
#[allow(unsafe_code)]
pub mod sandbox;
#[forbid(unsafe_code)]
pub mod serve;
#[forbid(unsafe_code)]
pub mod session;
#[allow(unsafe_code)]
pub mod sys;
