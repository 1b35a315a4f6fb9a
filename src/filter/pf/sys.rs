//! The bindings bindgen generated from the target's `<net/pfvar.h>`.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/pfvar.rs"));
