//! Replays the committed seed corpus through every target without
//! libFuzzer, so the seeds are a regression suite on any toolchain:
//! `cargo test --manifest-path fuzz/Cargo.toml`.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        run(&data);
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn line_framing() {
    replay("line_framing", ftp_proxy_fuzz::targets::line_framing);
}

#[test]
fn client_command() {
    replay("client_command", ftp_proxy_fuzz::targets::client_command);
}

#[test]
fn server_reply() {
    replay("server_reply", ftp_proxy_fuzz::targets::server_reply);
}

#[test]
fn session() {
    replay("session", ftp_proxy_fuzz::targets::session);
}
