//! Build script: on OpenBSD, generate the pf bindings from <net/pfvar.h>.
//! On every other target it does nothing. (Pending.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(ftp_proxy_no_pf)");
}
