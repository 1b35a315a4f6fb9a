//! The sandbox, shown from the outside: a child process (this test binary,
//! re-executed with `FTP_PROXY_SANDBOX_CHILD` set) enters the sandbox and
//! tries what an attacker would and what the serving loop does. It reports
//! each result on stdout; the parent asserts.
//!
//! `sandbox_lock_down_*` needs no root (no_new_privs, Landlock and seccomp
//! work for any user). `sandbox_full_*` runs the daemon's whole sequence
//! (chroot into a temporary directory, the `proxy` user, CAP_NET_ADMIN
//! alone, then the lock-down) and also reads /proc the way the regress
//! harness does; it needs root.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ftp_proxy::sandbox;

const CHILD_ENV: &str = "FTP_PROXY_SANDBOX_CHILD";
const CHROOT_ENV: &str = "FTP_PROXY_SANDBOX_CHROOT";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---------------------------------------------------------------- child --

/// Entry point of the re-executed child; does nothing when run directly.
#[test]
fn sandbox_child_entry() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    child(&scenario);
}

fn say(line: &str) {
    let text = format!("{line}\n");
    // SAFETY: writes a live buffer of text.len() bytes to fd 1; raw write
    // so nothing but write(2) is needed after the lock-down.
    unsafe { libc::write(1, text.as_ptr().cast(), text.len()) };
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ok` or `errno N` for a raw libc return value (negative = failure).
fn outcome(rc: libc::c_long) -> String {
    if rc >= 0 {
        "ok".to_string()
    } else {
        format!("errno {}", errno())
    }
}

fn probe(name: &str, rc: libc::c_long) -> libc::c_long {
    say(&format!("probe {name} {}", outcome(rc)));
    rc
}

fn child(scenario: &str) -> ! {
    // libtest has printed "test sandbox_child_entry ... " without a
    // newline; end that line so every report line stands alone.
    say("");
    // As root, a network namespace of its own: the nftables table made
    // below must not touch the host's ruleset.
    let netlink = (scenario == "full").then(|| {
        // SAFETY: unshare takes a flag; the child is about to be alone.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        loopback_up();
        nfnetlink_socket()
    });
    // Everything the daemon makes before the drop: the listener, a pipe
    // (signal-hook's), the epoll instance (mio's Poll).
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().unwrap();
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);

    if scenario == "full" {
        let dir = std::env::var(CHROOT_ENV).expect("chroot dir");
        let account = sandbox::lookup_user().expect("proxy user");
        if let Err(e) = sandbox::drop_privileges_into(Path::new(&dir), &account) {
            say(&format!("error {e}"));
            // SAFETY: _exit ends the process without running destructors.
            unsafe { libc::_exit(3) };
        }
    }
    match sandbox::lock_down() {
        Ok(lines) => {
            for l in lines {
                say(&format!("info {l}"));
            }
        }
        Err(e) => {
            say(&format!("error {e}"));
            // SAFETY: as above.
            unsafe { libc::_exit(3) };
        }
    }
    // SAFETY: gettid takes no arguments.
    say(&format!("tid {}", unsafe { libc::gettid() }));

    // SAFETY: the whole block makes raw system calls on live, correctly sized
    // buffers and descriptors created above; results are only reported.
    unsafe {
        // What must fail.
        let rc = libc::open(c"/etc/passwd".as_ptr(), libc::O_RDONLY);
        probe("open", rc.into());
        let rc = libc::openat(
            libc::AT_FDCWD,
            c"/".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY,
        );
        probe("openat", rc.into());
        let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        let rc = libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), envp.as_ptr());
        probe("execve", rc.into());
        probe("fork", libc::fork().into());
        probe(
            "unix_socket",
            libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).into(),
        );
        probe(
            "unix_dgram",
            libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).into(),
        );
        probe(
            "netlink_socket",
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER).into(),
        );
        probe(
            "udp_socket",
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).into(),
        );
        probe(
            "raw_socket",
            libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP).into(),
        );
        let mut sp = [0; 2];
        probe(
            "socketpair",
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sp.as_mut_ptr()).into(),
        );
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        probe("listen_new_socket", libc::listen(s, 1).into());
        libc::close(s);
        let prot = libc::PROT_READ | libc::PROT_EXEC;
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        probe("mmap_exec", if p == libc::MAP_FAILED { -1 } else { 0 });
        probe("setuid_root", libc::setuid(0).into());
        probe("kill_init", libc::kill(1, 0).into());

        // What the serving loop needs.
        let tcp = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        probe("tcp_socket", tcp.into());
        let tcp6 = libc::socket(
            libc::AF_INET6,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        );
        probe("tcp6_socket", tcp6.into());
        libc::close(tcp6);
        let one: libc::c_int = 1;
        probe(
            "setsockopt_keepalive",
            libc::setsockopt(
                tcp,
                libc::SOL_SOCKET,
                libc::SO_KEEPALIVE,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
            .into(),
        );
        probe(
            "setsockopt_mark",
            libc::setsockopt(
                tcp,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
            .into(),
        );
        // -a: bind the server-side socket to a local address first.
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        local.sin_family = libc::AF_INET as libc::sa_family_t;
        local.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        probe(
            "bind",
            libc::bind(tcp, (&local as *const libc::sockaddr_in).cast(), len).into(),
        );
        let mut to = local;
        let SocketAddr::V4(v4) = addr else {
            unreachable!()
        };
        to.sin_port = v4.port().to_be();
        let rc = libc::connect(tcp, (&to as *const libc::sockaddr_in).cast(), len);
        let rc = if rc < 0 && errno() == libc::EINPROGRESS {
            0
        } else {
            rc
        };
        probe("connect", rc.into());
        let lfd = listener.as_raw_fd();
        let mut conn = -1;
        for _ in 0..1000 {
            conn = libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            if conn >= 0 || errno() != libc::EAGAIN {
                break;
            }
        }
        probe("accept4", conn.into());
        let mut err: libc::c_int = 0;
        let mut elen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        probe(
            "getsockopt_so_error",
            libc::getsockopt(
                tcp,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut elen,
            )
            .into(),
        );
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut sl = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        probe(
            "getsockname",
            libc::getsockname(
                conn,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut sl,
            )
            .into(),
        );
        let mut sl = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        probe(
            "getpeername",
            libc::getpeername(
                conn,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut sl,
            )
            .into(),
        );
        let mut sl = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SO_ORIGINAL_DST: ENOENT without conntrack, but not EPERM.
        let rc = libc::getsockopt(
            conn,
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut sl,
        );
        let rc = if rc < 0 && errno() != libc::EPERM {
            0
        } else {
            rc
        };
        probe("getsockopt_original_dst", rc.into());
        let mut on: libc::c_int = 1;
        probe(
            "ioctl_fionbio",
            libc::ioctl(conn, libc::FIONBIO, &mut on).into(),
        );
        probe(
            "ioctl_tiocgwinsz",
            libc::ioctl(conn, libc::TIOCGWINSZ, &mut ss).into(),
        );
        let fl = libc::fcntl(conn, libc::F_GETFL);
        probe("fcntl_getfl", fl.into());
        probe("fcntl_dupfd", libc::fcntl(conn, libc::F_DUPFD, 100).into());
        let msg = b"220 ready\r\n";
        let mut n = libc::write(conn, msg.as_ptr().cast(), msg.len());
        probe("write_tcp", n as libc::c_long);
        let mut buf = [0u8; 64];
        for _ in 0..1000 {
            n = libc::read(tcp, buf.as_mut_ptr().cast(), buf.len());
            if n >= 0 || errno() != libc::EAGAIN {
                break;
            }
        }
        probe("read_tcp", if n as usize == msg.len() { 0 } else { -1 });
        probe("shutdown", libc::shutdown(conn, libc::SHUT_WR).into());
        probe("close", libc::close(conn).into());
        probe(
            "getrandom",
            libc::getrandom(buf.as_mut_ptr().cast(), 16, 0) as libc::c_long,
        );
        let mut ts: libc::timespec = std::mem::zeroed();
        probe(
            "clock_gettime",
            libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts),
        );
        probe(
            "write_pipe",
            libc::write(fds[1], b"x".as_ptr().cast(), 1) as libc::c_long,
        );
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 7,
        };
        probe(
            "epoll_ctl",
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fds[0], &mut ev).into(),
        );
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let got = libc::epoll_wait(ep, out.as_mut_ptr(), 4, 1000);
        probe(
            "epoll_wait",
            if got == 1 && { out[0].u64 } == 7 {
                0
            } else {
                -1
            },
        );
        probe(
            "read_pipe",
            libc::read(fds[0], buf.as_mut_ptr().cast(), 1) as libc::c_long,
        );
        let v: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        probe("malloc_large", if v.len() == 1_000_000 { 0 } else { -1 });
        drop(v);
        probe("getpid", libc::getpid().into());
    }
    // The nftables backend's socket, opened as root, still changes the
    // ruleset after the drop: CAP_NET_ADMIN is kept and send/recv pass.
    if let Some(fd) = netlink {
        probe(
            "netlink_new_table",
            nft_table(fd, libc::NFT_MSG_NEWTABLE as u16),
        );
        probe(
            "netlink_del_table",
            nft_table(fd, libc::NFT_MSG_DELTABLE as u16),
        );
    }

    say("ready");
    // Stay alive until the parent has looked at /proc, then leave without
    // the test harness's tear-down.
    let mut b = [0u8; 1];
    // SAFETY: reads at most one byte into a live buffer from fd 0.
    unsafe { libc::read(0, b.as_mut_ptr().cast(), 1) };
    // SAFETY: _exit ends the process without running destructors.
    unsafe { libc::_exit(0) }
}

/// `ip link set lo up`, with the old interface ioctls.
fn loopback_up() {
    // SAFETY: an all-zero ifreq is valid; the name fits; the descriptor is
    // closed at the end.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(s >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *c as libc::c_char;
        }
        assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr), 0);
        libc::close(s);
    }
}

/// A NETLINK_NETFILTER socket, as the nftables backend opens it.
fn nfnetlink_socket() -> libc::c_int {
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    assert!(fd >= 0, "netlink socket");
    fd
}

fn nlmsg(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// One batch with NEWTABLE or DELTABLE of `inet sandbox-test`; returns the
/// kernel's answer (0, or -1 with errno set to the refusal).
fn nft_table(fd: libc::c_int, msg: u16) -> libc::c_long {
    let subsys = libc::NFNL_SUBSYS_NFTABLES as u16;
    let mut name = b"sandbox-test\0".to_vec();
    name.resize(16, 0);
    let mut attr = Vec::new();
    attr.extend_from_slice(&(4u16 + 13).to_ne_bytes());
    // NFTA_TABLE_NAME
    attr.extend_from_slice(&1u16.to_ne_bytes());
    attr.extend_from_slice(&name);
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut batch = Vec::new();
    nlmsg(
        &mut batch,
        libc::NFNL_MSG_BATCH_BEGIN as u16,
        libc::NLM_F_REQUEST as u16,
        1,
        0,
        subsys,
        &[],
    );
    let create = if msg == libc::NFT_MSG_NEWTABLE as u16 {
        libc::NLM_F_CREATE as u16
    } else {
        0
    };
    nlmsg(
        &mut batch,
        (subsys << 8) | msg,
        flags | create,
        2,
        libc::NFPROTO_INET as u8,
        0,
        &attr,
    );
    nlmsg(
        &mut batch,
        libc::NFNL_MSG_BATCH_END as u16,
        libc::NLM_F_REQUEST as u16,
        3,
        0,
        subsys,
        &[],
    );
    // SAFETY: send and recv on live buffers of the given lengths.
    unsafe {
        if libc::send(fd, batch.as_ptr().cast(), batch.len(), 0) < 0 {
            return -1;
        }
        let mut buf = [0u8; 8192];
        let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
        if n < 36 {
            return -1;
        }
        // struct nlmsgerr after the header: the error code.
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if kind != libc::NLMSG_ERROR as u16 {
            return -1;
        }
        if code != 0 {
            *libc::__errno_location() = -code;
            return -1;
        }
        0
    }
}

// --------------------------------------------------------------- parent --

struct Report {
    child: Child,
    probes: BTreeMap<String, String>,
    info: Vec<String>,
    errors: Vec<String>,
    tid: Option<u32>,
    ready: bool,
}

fn spawn(scenario: &str, chroot: Option<&Path>) -> Report {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "sandbox_child_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, scenario)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(dir) = chroot {
        cmd.env(CHROOT_ENV, dir);
    }
    let mut child = cmd.spawn().expect("re-exec the test binary");
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut r = Report {
        child,
        probes: BTreeMap::new(),
        info: Vec::new(),
        errors: Vec::new(),
        tid: None,
        ready: false,
    };
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("probe ") {
            let (name, result) = rest.split_once(' ').unwrap();
            r.probes.insert(name.to_string(), result.to_string());
        } else if let Some(rest) = line.strip_prefix("info ") {
            r.info.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("error ") {
            r.errors.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("tid ") {
            r.tid = rest.parse().ok();
        } else if line == "ready" {
            r.ready = true;
            break;
        }
    }
    r
}

impl Report {
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child exit status {status}");
    }
}

const EPERM: &str = "errno 1";

fn assert_probes(r: &Report) {
    for line in &r.info {
        eprintln!("sandbox: {line}");
    }
    for (name, result) in &r.probes {
        eprintln!("sandbox: probe {name}: {result}");
    }
    assert!(r.errors.is_empty(), "sandbox set-up failed: {:?}", r.errors);
    assert!(r.ready, "child did not finish its probes: {:?}", r.probes);
    let denied = [
        "open",
        "openat",
        "execve",
        "fork",
        "unix_socket",
        "unix_dgram",
        "netlink_socket",
        "udp_socket",
        "raw_socket",
        "socketpair",
        "listen_new_socket",
        "mmap_exec",
        "setuid_root",
        "kill_init",
        "setsockopt_mark",
        "ioctl_tiocgwinsz",
        "fcntl_dupfd",
    ];
    for name in denied {
        assert_eq!(
            r.probes.get(name).map(String::as_str),
            Some(EPERM),
            "{name} must be refused with EPERM"
        );
    }
    let allowed = [
        "tcp_socket",
        "tcp6_socket",
        "setsockopt_keepalive",
        "bind",
        "connect",
        "accept4",
        "getsockopt_so_error",
        "getsockname",
        "getpeername",
        "getsockopt_original_dst",
        "ioctl_fionbio",
        "fcntl_getfl",
        "write_tcp",
        "read_tcp",
        "shutdown",
        "close",
        "getrandom",
        "clock_gettime",
        "write_pipe",
        "epoll_ctl",
        "epoll_wait",
        "read_pipe",
        "malloc_large",
        "getpid",
    ];
    for name in allowed {
        assert_eq!(
            r.probes.get(name).map(String::as_str),
            Some("ok"),
            "{name} must work in the sandbox"
        );
    }
    assert!(
        r.info.iter().any(|l| l.starts_with("landlock: ")),
        "no Landlock status line: {:?}",
        r.info
    );
}

#[test]
fn sandbox_lock_down_refuses_files_exec_and_other_sockets() {
    let r = spawn("lock_down", None);
    assert_probes(&r);
    assert!(
        r.info
            .iter()
            .any(|l| l.starts_with("seccomp: allow-list of ")),
        "no seccomp line: {:?}",
        r.info
    );
    let tid = r.tid.expect("child tid");
    let status =
        std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", r.child.id())).unwrap();
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
    r.finish();
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} missing from /proc status"))
}

/// A root-owned, mode 0755, empty directory under the temporary directory.
fn root_dir(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ftp-proxy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The daemon's whole sequence, then what the regress harness checks in
/// /proc: the proxy user, no_new_privs, seccomp mode 2, CAP_NET_ADMIN
/// (bit 12, 0x1000) alone in the effective, permitted and bounding sets,
/// and the root directory.
#[test]
#[ignore = "needs root: run by make regress"]
fn sandbox_full_drop_and_lock_down_as_the_proxy_user() {
    assert!(is_root(), "run as root");
    let account = sandbox::lookup_user().expect("the proxy user exists");
    let dir = root_dir("chroot");
    let r = spawn("full", Some(&dir));
    assert_probes(&r);
    let tid = r.tid.expect("child tid");
    let status =
        std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", r.child.id())).unwrap();
    let uid = account.uid.to_string();
    let gid = account.gid.to_string();
    assert_eq!(
        field(&status, "Uid").split_whitespace().collect::<Vec<_>>(),
        [uid.as_str(); 4]
    );
    assert_eq!(
        field(&status, "Gid").split_whitespace().collect::<Vec<_>>(),
        [gid.as_str(); 4]
    );
    assert_eq!(field(&status, "Groups"), gid);
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
    assert_eq!(field(&status, "CapEff"), "0000000000001000");
    assert_eq!(field(&status, "CapPrm"), "0000000000001000");
    assert_eq!(field(&status, "CapInh"), "0000000000000000");
    assert_eq!(field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(field(&status, "CapBnd"), "0000000000001000");
    let root = std::fs::read_link(format!("/proc/{}/task/{tid}/root", r.child.id())).unwrap();
    assert_eq!(root, dir);
    r.finish();
    std::fs::remove_dir(&dir).unwrap();
}

// ------------------------------------------------------- chroot checks --

#[test]
fn sandbox_unknown_user_is_named() {
    assert_eq!(
        sandbox::lookup_user_named("no-such-user-ftp-proxy").unwrap_err(),
        "unknown user no-such-user-ftp-proxy"
    );
}

#[test]
fn sandbox_chroot_must_be_a_directory() {
    let file = std::env::temp_dir().join(format!("ftp-proxy-file-{}", std::process::id()));
    std::fs::File::create(&file)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let err = sandbox::prepare_chroot_dir(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(err.ends_with("is not a directory"), "{err}");
}

#[test]
fn sandbox_chroot_must_be_owned_by_root() {
    let dir = std::env::temp_dir().join(format!("ftp-proxy-owner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
    }
    let err = sandbox::prepare_chroot_dir(&dir).unwrap_err();
    std::fs::remove_dir(&dir).unwrap();
    assert!(err.contains("not by root"), "{err}");
}

#[test]
#[ignore = "needs root: run by make regress"]
fn sandbox_chroot_checks_as_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert!(is_root(), "run as root");

    // Missing: created root-owned 0755, even under a restrictive umask.
    let parent = root_dir("parent");
    let missing = parent.join("empty");
    // SAFETY: umask only swaps the process's file-mode mask.
    let old = unsafe { libc::umask(0o077) };
    let made = sandbox::prepare_chroot_dir(&missing);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    made.unwrap();
    let meta = std::fs::metadata(&missing).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.uid(), 0);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);

    // Writable by group or others.
    for mode in [0o775, 0o757, 0o1777] {
        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = sandbox::prepare_chroot_dir(&missing).unwrap_err();
        assert!(
            err.contains("writable by group or others"),
            "{mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Not empty, and the message the daemon prints.
    std::fs::write(missing.join("passwd"), b"x").unwrap();
    let err = sandbox::prepare_chroot_dir(&missing).unwrap_err();
    assert!(err.contains("is not empty"), "{err}");
    let account = sandbox::lookup_user().unwrap();
    let err = sandbox::drop_privileges_into(&missing, &account).unwrap_err();
    assert!(
        err.starts_with(&format!(
            "cannot drop privileges: {} is not empty",
            missing.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&parent).unwrap();
}
