//! Build script: generate the pf bindings from `<net/pfvar.h>`.
//!
//! pf's ioctl structures change between OpenBSD releases, and every ioctl
//! request number encodes the size of its argument, so the bindings must come
//! from the headers of the release the daemon runs on. bindgen reads them
//! with libclang and writes `pfvar.rs` into OUT_DIR; `src/filter/pf/sys.rs`
//! includes it, and `cfg(ftp_proxy_pf_bindings)` turns the backend on.
//!
//! - On OpenBSD: from `/usr/include`, or from `PF_SYSROOT`.
//! - On an x86_64 host other than OpenBSD, only when `PF_SYSROOT` is set:
//!   from an OpenBSD/amd64 header sysroot, with clang targeting
//!   x86_64-unknown-openbsd, so that tests can run the real backend against
//!   a model of the kernel. The bindings fit the host because x86_64 OpenBSD
//!   and x86_64 Linux share the LP64 C ABI (8-byte long and pointers, the
//!   same alignment rules): bindgen's layout tests assert, at compile time
//!   on the host, every size and offset clang computed for OpenBSD, and
//!   `sys.rs` asserts the sizes known for pfvar.h rev 1.543.
//!
//! Environment:
//! - `PF_SYSROOT=<dir>`: read the headers from `<dir>/usr/include`.
//! - `FTP_PROXY_PF_HEADERS=none`: on OpenBSD, generate nothing and build
//!   without the pf backend (`cfg(ftp_proxy_no_pf)`). Only for
//!   type-checking the crate on a machine without OpenBSD headers; such a
//!   daemon could not open a pinhole, so it must never be installed.
//! - `LIBCLANG_PATH=<dir>`: where bindgen's loader (clang-sys) finds
//!   libclang. On OpenBSD it has no default directories, base has no
//!   libclang, and devel/llvm/N installs it under `/usr/local/llvmN/lib`
//!   with its llvm-config off PATH; the port sets LIBCLANG_PATH, and a build
//!   outside the ports tree gets the newest of those directories (see
//!   [`openbsd_libclang`]).

use std::env;
use std::path::PathBuf;

/// What the backend uses, and nothing else: a smaller surface means fewer
/// chances that an unrelated header change breaks the build.
const TYPES: &[&str] = &[
    "pfioc_trans",
    "pfioc_trans_e",
    "pfioc_rule",
    "pfioc_ruleset",
    "pf_rule",
    "pf_pool",
    "pf_addr_wrap",
    "pf_rule_addr",
    "pf_status",
];

/// Constants: address families, actions, directions, operators, address
/// and pool types, log flags, state and rule flags, name sizes.
const VARS: &[&str] = &["PF_.*", "PFRULE_.*", "AF_INET6?"];

/// The headers pfvar.h needs before it, in the order OpenBSD's own programs
/// (pfctl, ftp-proxy) include them.
const PRELUDE: &[&str] = &[
    "sys/types.h",
    "sys/ioctl.h",
    "sys/socket.h",
    "net/if.h",
    "netinet/in.h",
    "net/pfvar.h",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PF_SYSROOT");
    println!("cargo:rerun-if-env-changed=FTP_PROXY_PF_HEADERS");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    println!("cargo::rustc-check-cfg=cfg(ftp_proxy_no_pf)");
    println!("cargo::rustc-check-cfg=cfg(ftp_proxy_pf_bindings)");
    println!("cargo::rustc-check-cfg=cfg(ftp_proxy_pfvar_1_543)");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "openbsd" {
        if env::var_os("PF_SYSROOT").is_none() {
            return;
        }
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        if arch != "x86_64" {
            println!(
                "cargo:warning=PF_SYSROOT ignored: pf bindings on a {arch} {os} host \
                 would not have OpenBSD/amd64's layout"
            );
            return;
        }
        if let Err(e) = generate(Some("x86_64-unknown-openbsd")) {
            panic!("{e}");
        }
        println!("cargo:rustc-cfg=ftp_proxy_pf_bindings");
        return;
    }
    if env::var("FTP_PROXY_PF_HEADERS").as_deref() == Ok("none") {
        println!(
            "cargo:warning=FTP_PROXY_PF_HEADERS=none: building WITHOUT the pf backend (type-check only; this binary cannot open pinholes)"
        );
        println!("cargo:rustc-cfg=ftp_proxy_no_pf");
        return;
    }
    if let Err(e) = openbsd_libclang().and_then(|()| generate(None)) {
        // A panic is how a build script fails; say what to do about it.
        panic!("{e}");
    }
    println!("cargo:rustc-cfg=ftp_proxy_pf_bindings");
}

/// Where devel/llvm/N puts libclang: `/usr/local/llvmN/lib`.
const LLVM_PREFIX: &str = "/usr/local";

/// On an OpenBSD host with LIBCLANG_PATH unset, points it at the newest
/// `/usr/local/llvm*/lib` that holds a `libclang.so.*`, so that bindgen's
/// loader finds it (clang-sys searches no directory of its own on OpenBSD
/// and llvm-config is not on PATH). Fails with what to install when there is
/// none. Elsewhere (the Linux type-check for an OpenBSD target) the host's
/// libclang is found by clang-sys's defaults, and nothing changes.
fn openbsd_libclang() -> Result<(), String> {
    if !cfg!(target_os = "openbsd") || env::var_os("LIBCLANG_PATH").is_some() {
        return Ok(());
    }
    let Some(dir) = newest_libclang(std::path::Path::new(LLVM_PREFIX)) else {
        return Err(format!(
            "ftp-proxy: no libclang for bindgen: base has none, and no {LLVM_PREFIX}/llvm*/lib \
             holds libclang.so.*. Install it with `pkg_add llvm` (the version the port's \
             MODCLANG_VERSION names), or set LIBCLANG_PATH to the directory holding \
             libclang.so.*."
        ));
    };
    println!("cargo:warning=LIBCLANG_PATH unset: using {}", dir.display());
    // The build script is single-threaded here: nothing else reads the
    // environment while it changes, and bindgen (clang-sys) reads it next.
    env::set_var("LIBCLANG_PATH", &dir);
    Ok(())
}

/// The `llvmN/lib` directory under `prefix` with the highest N that holds a
/// file named `libclang.so.*`.
fn newest_libclang(prefix: &std::path::Path) -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(prefix).ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix("llvm"))
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        let lib = entry.path().join("lib");
        let has_libclang = std::fs::read_dir(&lib).is_ok_and(|files| {
            files.flatten().any(|f| {
                f.file_name()
                    .to_str()
                    .is_some_and(|f| f.starts_with("libclang.so."))
            })
        });
        if has_libclang && best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, lib));
        }
    }
    best.map(|(_, lib)| lib)
}

/// Runs bindgen over the prelude and pfvar.h into OUT_DIR/pfvar.rs, for
/// clang target `target` (default: the build's own target).
fn generate(target: Option<&str>) -> Result<(), String> {
    let sysroot = env::var_os("PF_SYSROOT").map(PathBuf::from);
    let include = match &sysroot {
        Some(root) => root.join("usr/include"),
        None => PathBuf::from("/usr/include"),
    };
    let pfvar = include.join("net/pfvar.h");
    if !pfvar.is_file() {
        return Err(format!(
            "ftp-proxy: {} not found. The pf backend is generated from the target \
             release's <net/pfvar.h>: build on OpenBSD (comp*.tgz installed), or set \
             PF_SYSROOT=<dir> with OpenBSD's headers under <dir>/usr/include. \
             FTP_PROXY_PF_HEADERS=none skips the backend for type-checking only.",
            pfvar.display()
        ));
    }
    println!("cargo:rerun-if-changed={}", pfvar.display());

    let wrapper: String = PRELUDE
        .iter()
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    let mut builder = bindgen::Builder::default()
        .header_contents("ftp_proxy_pf.h", &wrapper)
        .derive_default(true)
        .derive_debug(false)
        .generate_comments(false)
        .layout_tests(true);
    if revision(&pfvar).as_deref() == Some("1.543") {
        println!("cargo:rustc-cfg=ftp_proxy_pfvar_1_543");
    }
    if let Some(root) = &sysroot {
        let target = match target {
            Some(t) => t.to_string(),
            None => env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-openbsd".into()),
        };
        builder = builder.clang_args([
            format!("--target={target}"),
            format!("--sysroot={}", root.display()),
            format!("-isystem{}", include.display()),
        ]);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder
        .generate()
        .map_err(|e| format!("ftp-proxy: bindgen over {}: {e}", pfvar.display()))?;
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    bindings
        .write_to_file(out.join("pfvar.rs"))
        .map_err(|e| format!("ftp-proxy: writing pfvar.rs: {e}"))
}

/// The CVS revision in the header's `$OpenBSD: pfvar.h,v 1.543 …$` line.
fn revision(header: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(header).ok()?;
    let line = text.lines().find(|l| l.contains("$OpenBSD: pfvar.h,v "))?;
    let rest = line.split("pfvar.h,v ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}
