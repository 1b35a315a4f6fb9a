//! Fuzz targets for the sans-I/O protocol core of ftp-proxy.
//!
//! The daemon sits between two untrusted peers: clients try to make it open
//! holes to places they must not reach, servers lie in their replies. These
//! targets feed the [`ftp_proxy::ftp::Engine`] arbitrary bytes from both
//! sides and check, after every call, the properties that keep the firewall
//! closed (see [`check`]). A violated property panics, and libFuzzer keeps
//! the input as a crash artifact.
//!
//! - [`targets::line_framing`]: framing against a reference model
//! - [`targets::client_command`]: one client line after the banner
//! - [`targets::server_reply`]: one reply to a pending PASV/EPSV
//! - [`targets::session`]: whole sessions, options and address families
//!
//! The input format of the session-shaped targets is in [`input`].

pub mod check;
pub mod input;
pub mod model;
pub mod ports;
pub mod targets;
