//! Start-up failures of the real binary: each exits 1 with one line that
//! says what is wrong and, where the daemon can tell, what to fix. None of
//! these reaches the packet filter.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Output};

use ftp_proxy::options::USAGE;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftp-proxy"))
        .args(args)
        .output()
        .expect("run ftp-proxy")
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    let out = run(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), USAGE);
}

#[test]
fn unknown_option_prints_a_diagnostic_and_the_usage() {
    let out = run(&["-x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ftp-proxy: unknown option -- x\n{USAGE}")
    );
}

#[test]
fn a_bad_value_is_named_before_anything_else_happens() {
    let out = run(&["-m", "501"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ftp-proxy: max sessions too large\n"
    );
}

#[test]
fn refuses_to_start_without_root() {
    let out = if is_root() {
        // Run it as nobody.
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_ftp-proxy"),
                "-d",
            ])
            .output()
            .expect("run setpriv (util-linux)")
    } else {
        run(&["-d"])
    };
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ftp-proxy: needs to start as root\n"
    );
}

#[test]
#[ignore = "needs root: run by make regress"]
fn occupied_port_names_the_address_and_what_to_do() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(&["-d", "-p", &port]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ftp-proxy: bind failed: "), "{err}");
    assert!(err.contains(&format!("(127.0.0.1 port {port})")), "{err}");
    assert!(err.contains("another program listens there"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
#[ignore = "needs root: run by make regress"]
fn linux_tag_and_queue_must_be_a_mark_and_a_class() {
    for (flag, value, words) in [
        ("-T", "fast", "conntrack mark"),
        ("-q", "bulk", "major:minor"),
    ] {
        // Port 0: any free port, so only the value can fail.
        let out = run(&["-d", "-p", "0", flag, value]);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("ftp-proxy: ") && err.contains(words),
            "{flag} {value}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
