//! The real pf backend driven through the daemon's real sessions against a
//! model of the pf kernel (`pf_model/kernel.rs`).
//!
//! Needs pf bindings on this host: `PF_SYSROOT=<OpenBSD header sysroot>
//! cargo test --test pf_model`; without them this file holds no test (make
//! regress's `pf-model` target then says SKIP and why). With `PF_TRACE_DIR=DIR` every scenario
//! writes `DIR/<scenario>.trace` for regress/pf-decode.py: a `pinhole` line
//! with what the test itself knows of the negotiation, then one line per
//! ioctl (`NAME <argument bytes after the call, hex>`, and ` errno=N` when
//! it failed), then `describe <line>` for each rule as the backend renders
//! it for the `#<id> rules:` log line. A session's end is a
//! `pinhole mode=close anchor=PATH` line and its ioctls. DIOCXBEGIN and
//! DIOCXCOMMIT show their `struct pfioc_trans` (its pointer as zero)
//! followed by the one `pfioc_trans_e` it points at.
//!
//! What this cannot prove, and only OpenBSD can (regress/openbsd): that
//! the request numbers reach the real pfioctl (the seam passes typed
//! arguments; `ioc.rs` checks the numbers by arithmetic), that packets
//! match the rules and create their one state, that pledge(2)'s `pf`
//! promise admits every ioctl issued after start-up, and any check of
//! pf_ioctl.c the model leaves out (interfaces, tables, route-to, af-to).

#[cfg(ftp_proxy_pf_bindings)]
#[path = "pf_model/harness.rs"]
mod harness;
#[cfg(ftp_proxy_pf_bindings)]
#[path = "pf_model/kernel.rs"]
mod kernel;
#[cfg(ftp_proxy_pf_bindings)]
#[path = "pf_model/scenarios.rs"]
mod scenarios;
