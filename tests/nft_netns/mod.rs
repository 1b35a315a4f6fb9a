//! Private network namespaces for the nftables root tests, so they never
//! touch the host's ruleset. Each namespace is created with `ip netns add`
//! under a name unique to this process and deleted (by that name) on drop.

#![allow(dead_code)] // each test crate uses a different part

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Every external command is bounded by this many seconds.
const COMMAND_TIMEOUT: &str = "10";

/// A network namespace this test created.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace `fpx-<pid>-<n>-<tag>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "fpx-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a new thread that has entered this namespace. Sockets
    /// created there stay in it when they are used from other threads.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(self.path()).expect("open namespace");
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(&file);
                f()
            })
            .join()
            .expect("thread in namespace panicked")
        })
    }

    /// Runs a command in the namespace, bounded in time.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        let net = format!("--net={}", self.path().display());
        let mut cmd = Command::new("timeout");
        cmd.args([COMMAND_TIMEOUT, "nsenter", &net, program])
            .args(args);
        cmd.output().expect("spawn command")
    }

    /// Runs a shell script in the namespace; panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        let out = self.output("sh", &["-ec", script]);
        assert!(
            out.status.success(),
            "in {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft <args>` in the namespace; panics unless it succeeds.
    pub fn nft(&self, args: &[&str]) -> String {
        let out = self.output("nft", args);
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The whole ruleset of the namespace.
    pub fn ruleset(&self) -> String {
        self.nft(&["list", "ruleset"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn enter(file: &File) {
    // SAFETY: `file` is an open network-namespace file for the whole call;
    // setns only changes the namespace of the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
