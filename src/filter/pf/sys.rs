//! The bindings bindgen generated from the target's `<net/pfvar.h>` (see
//! build.rs): the structures the backend fills and the PF_* constants,
//! exactly as this OpenBSD release defines them.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
// Generated code: bindgen's unions and bitfield accessors carry unsafe
// blocks without SAFETY comments; this file writes none of its own.
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]

include!(concat!(env!("OUT_DIR"), "/pfvar.rs"));

/// `struct pfioc_trans_e` is declared inside `struct pfioc_trans`; bindgen
/// names it after its parent.
pub type pfioc_trans_e = pfioc_trans_pfioc_trans_e;

/// The sizes of pfvar.h rev 1.543 on amd64, asserted at compile time when
/// the headers are that revision: on a Linux host they prove that the
/// bindings generated for OpenBSD keep their layout here.
#[cfg(all(ftp_proxy_pfvar_1_543, target_arch = "x86_64"))]
const _: () = {
    use super::ioc::amd64_rev1_543 as rev;
    use std::mem::size_of;
    assert!(size_of::<pf_rule>() == rev::PF_RULE);
    assert!(size_of::<pfioc_rule>() == rev::PFIOC_RULE);
    assert!(size_of::<pf_status>() == rev::PF_STATUS);
    assert!(size_of::<pfioc_trans>() == rev::PFIOC_TRANS);
    assert!(size_of::<pfioc_trans_e>() == rev::PFIOC_TRANS_E);
    assert!(size_of::<pfioc_ruleset>() == rev::PFIOC_RULESET);
};
