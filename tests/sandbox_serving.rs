//! The allow-list against the real libraries of the serving loop rather
//! than raw system calls: a re-executed child builds what start-up builds
//! (a mio Poll, a listener, signal-hook's pipe for SIGTERM, a connected
//! datagram socket standing in for syslog's /dev/log), enters the sandbox,
//! then relays a line between two TCP connections through mio, receives a
//! signal from the parent through the pipe, and sends a "log" datagram.
//! Any call missing from the allow-list fails with EPERM and shows up as a
//! failed step.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const CHILD_ENV: &str = "FTP_PROXY_SANDBOX_SERVING_CHILD";

fn say(line: &str) {
    let text = format!("{line}\n");
    // SAFETY: writes a live buffer of text.len() bytes to fd 1.
    unsafe { libc::write(1, text.as_ptr().cast(), text.len()) };
}

fn step<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => {
            say(&format!("step {name} ok"));
            v
        }
        Err(e) => {
            say(&format!("step {name} failed: {e}"));
            // SAFETY: _exit ends the process without running destructors.
            unsafe { libc::_exit(4) }
        }
    }
}

/// Polls until `done` says yes or five seconds pass.
fn wait_for(
    poll: &mut Poll,
    events: &mut Events,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > deadline {
            return Err("timed out".into());
        }
        poll.poll(events, Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Entry point of the re-executed child; does nothing when run directly.
#[test]
fn sandbox_serving_child_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    say("");
    // Start-up, before the lock-down.
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(16);
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)
        .unwrap();
    let (sig_read, sig_write) = UnixStream::pair().unwrap();
    sig_read.set_nonblocking(true).unwrap();
    signal_hook::low_level::pipe::register(libc::SIGTERM, sig_write).unwrap();
    let mut sig_mio = mio::net::UnixStream::from_std(sig_read.try_clone().unwrap());
    poll.registry()
        .register(&mut sig_mio, Token(1), Interest::READABLE)
        .unwrap();
    let (log_here, log_there) = UnixDatagram::pair().unwrap();

    let lines = step("lock_down", ftp_proxy::sandbox::lock_down());
    for l in lines {
        say(&format!("info {l}"));
    }

    // A client connects; the "proxy" accepts and connects to a "server"
    // (the same listener), and relays one line.
    let mut client = step("connect", TcpStream::connect(addr));
    poll.registry()
        .register(
            &mut client,
            Token(2),
            Interest::WRITABLE | Interest::READABLE,
        )
        .unwrap();
    let mut accepted = None;
    step(
        "accept",
        wait_for(&mut poll, &mut events, || match listener.accept() {
            Ok((s, _)) => {
                accepted = Some(s);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }),
    );
    let mut proxied = accepted.unwrap();
    step("set_keepalive", socket2_keepalive(&proxied));
    step("nodelay", proxied.set_nodelay(true));
    step("peer_addr", proxied.peer_addr());
    step("local_addr", proxied.local_addr());
    step(
        "original_dst",
        match ftp_proxy::sys::original_destination(&proxied, false) {
            Ok(a) => Ok(a),
            Err(e) => Err(e),
        },
    );
    poll.registry()
        .register(&mut proxied, Token(3), Interest::READABLE)
        .unwrap();
    step("take_error", client.take_error());
    let mut sent = false;
    step(
        "client_write",
        wait_for(&mut poll, &mut events, || {
            sent = sent
                || client
                    .write(b"USER ftp\r\n")
                    .map(|n| n == 10)
                    .unwrap_or(false);
            sent
        }),
    );
    let mut got = Vec::new();
    step(
        "proxy_read",
        wait_for(&mut poll, &mut events, || {
            let mut buf = [0u8; 64];
            if let Ok(n) = proxied.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            got.ends_with(b"\r\n")
        }),
    );
    step(
        "relay",
        if got == b"USER ftp\r\n" {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        },
    );
    step("random_port", {
        let p = ftp_proxy::sys::random_below(16383);
        if p < 16383 {
            Ok(p)
        } else {
            Err("out of range")
        }
    });
    step(
        "log_send",
        log_here.send(b"<30>ftp-proxy[1]: #1 client close"),
    );
    step("log_recv", log_there.recv(&mut [0u8; 64]));
    step("stderr", std::io::stderr().write_all(b""));
    step("deregister", poll.registry().deregister(&mut proxied));
    drop(proxied);
    drop(client);

    // The parent sends SIGTERM; signal-hook's handler writes to the pipe.
    say("ready");
    let mut seen = false;
    step(
        "signal",
        wait_for(&mut poll, &mut events, || {
            let mut b = [0u8; 8];
            seen = seen || matches!((&sig_read).read(&mut b), Ok(n) if n > 0);
            seen
        }),
    );
    say("done");
    // SAFETY: _exit ends the process without the harness's tear-down.
    unsafe { libc::_exit(0) }
}

/// SO_KEEPALIVE on a session socket, as the original sets on both.
fn socket2_keepalive(s: &TcpStream) -> Result<(), nix::Error> {
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::KeepAlive, &true)
}

#[test]
fn sandbox_serving_loop_runs_inside_the_sandbox() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sandbox_serving_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut steps = Vec::new();
    let mut done = false;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(s) = line.strip_prefix("step ") {
            steps.push(s.to_string());
        } else if let Some(s) = line.strip_prefix("info ") {
            eprintln!("sandbox: {s}");
        } else if line == "ready" {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        } else if line == "done" {
            done = true;
        }
    }
    let status = child.wait().unwrap();
    let failed: Vec<_> = steps.iter().filter(|s| !s.ends_with(" ok")).collect();
    assert!(failed.is_empty(), "failed steps: {failed:?}");
    assert!(
        done && status.success(),
        "child stopped early ({status}); steps: {steps:?}"
    );
}
