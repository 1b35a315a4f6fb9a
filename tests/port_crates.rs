//! The OpenBSD port's crates.inc must list exactly Cargo.lock's crates.io
//! packages; `port/update-crates` keeps it so and `--check` catches drift.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn update_crates(inc: &Path, check: bool) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.arg(root().join("port/update-crates"));
    if check {
        cmd.arg("--check");
    }
    cmd.env("CRATES_INC", inc).output().expect("run sh")
}

#[test]
fn committed_crates_inc_is_current() {
    let out = update_crates(&root().join("port/crates.inc"), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_fails_on_a_stale_copy_and_regeneration_fixes_it() {
    let dir = std::env::temp_dir().join(format!("ftp-proxy-crates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inc = dir.join("crates.inc");
    let current = std::fs::read_to_string(root().join("port/crates.inc")).unwrap();

    // One crate dropped, one version bumped: both are reported.
    let stale: String = current
        .lines()
        .filter(|l| !l.contains("\tlibc\t"))
        .map(|l| l.replace("\tgetopts\t", "\tgetopts\t0.0.1-").to_string() + "\n")
        .collect();
    std::fs::write(&inc, stale).unwrap();
    let out = update_crates(&inc, true);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is stale"), "{err}");
    assert!(err.contains("+ libc "), "{err}");
    assert!(err.contains("- getopts 0.0.1-"), "{err}");

    // A licence-annotated file (modcargo-gen-crates-licenses) still passes.
    let annotated: String = current
        .lines()
        .map(|l| {
            if l.starts_with("MODCARGO_CRATES") {
                format!("{l}\t# MIT\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&inc, annotated).unwrap();
    assert!(update_crates(&inc, true).status.success());

    // Regenerating makes the stale copy identical to the committed one.
    std::fs::write(&inc, "MODCARGO_CRATES +=\tnothing\t1.0\n").unwrap();
    assert!(update_crates(&inc, false).status.success());
    assert_eq!(std::fs::read_to_string(&inc).unwrap(), current);
    std::fs::remove_dir_all(&dir).unwrap();
}
