//! The bindings bindgen generated from the target's `<net/pfvar.h>` (see
//! build.rs): the structures the backend fills and the PF_* constants,
//! exactly as this OpenBSD release defines them.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/pfvar.rs"));

/// `struct pfioc_trans_e` is declared inside `struct pfioc_trans`; bindgen
/// names it after its parent.
pub type pfioc_trans_e = pfioc_trans_pfioc_trans_e;
