//! The seccomp allow-list: exactly the system calls the serving loop makes,
//! in one table with the reason for each.
//!
//! Decisions:
//! - **Default action: fail with EPERM**, not kill. The call is refused
//!   either way, so containment is the same; but an error is diagnosable
//!   (strace shows `-1 EPERM`, the daemon logs the failing step), and one
//!   libc path legitimately hits the filter: when syslogd restarts, glibc's
//!   syslog(3) tries to reconnect with `socket(AF_UNIX)`. With EPERM the
//!   message is lost; with a kill every live session would die with it.
//!   A system call made with another architecture's ABI (i386 `int 0x80`
//!   on x86_64) kills the process: seccompiler checks the audit arch first.
//!   x32 calls carry a different number and match nothing, so they fail.
//! - **Architectures**: x86_64, aarch64 and riscv64, which seccompiler
//!   supports. Elsewhere the daemon starts with a WARNING line and without
//!   seccomp (see `linux::lock_down`): chroot, the uid drop, CAP_NET_ADMIN
//!   alone, no_new_privs and Landlock still hold, which is more than the
//!   original ftp-proxy ever had, and refusing would leave those systems
//!   with no daemon at all.
//! - **No new descriptors but TCP sockets**: no open/openat, no pipe, no
//!   socket other than AF_INET/AF_INET6 SOCK_STREAM; no execve, no fork or
//!   clone, no listen (the only listener is made before the lock-down), no
//!   options at the SOL_NETLINK level (no joining nftables multicast groups
//!   with the kept CAP_NET_ADMIN), no SO_MARK, no executable memory.
//!
//! Calls the daemon makes before [`lock_down`](super::lock_down) (opening
//! the netlink socket, epoll_create1, the signal pipe, sigaction for the
//! handlers) are not on the list.

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
pub use supported::*;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
pub use unsupported::*;

/// How a system call's arguments are restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// Any arguments.
    Any,
    /// socket(): AF_INET or AF_INET6, SOCK_STREAM (with any of the
    /// SOCK_NONBLOCK/SOCK_CLOEXEC flags), protocol 0 or IPPROTO_TCP.
    TcpSocket,
    /// setsockopt(): levels SOL_SOCKET (but not SO_MARK), IPPROTO_IP,
    /// IPPROTO_IPV6 and IPPROTO_TCP.
    SetIpSockopt,
    /// getsockopt(): levels SOL_SOCKET, IPPROTO_IP, IPPROTO_IPV6 and
    /// IPPROTO_TCP.
    GetIpSockopt,
    /// fcntl(): F_GETFD, F_SETFD, F_GETFL, F_SETFL.
    FdFlags,
    /// ioctl(): FIONBIO and FIOCLEX.
    NonBlockIoctl,
    /// mmap()/mprotect(): no PROT_EXEC.
    NoExec,
    /// tgkill(): this process, SIGABRT (abort(3) after a panic).
    AbortSelf,
}

/// One line of the allow-list.
#[derive(Debug, Clone, Copy)]
pub struct SeccompEntry {
    pub name: &'static str,
    pub nr: i64,
    pub args: Args,
    pub why: &'static str,
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
mod supported {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
        SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
    };

    use super::{Args, SeccompEntry};

    /// One table line: the call, how its arguments are restricted, why.
    const fn allow(name: &'static str, nr: i64, args: Args, why: &'static str) -> SeccompEntry {
        SeccompEntry {
            name,
            nr,
            args,
            why,
        }
    }

    /// The allow-list, one reason per call. Keep it in step with the
    /// serving loop; `strace -f` of the daemon in the regress lab shows a
    /// missing call as `-1 EPERM`.
    const ALLOW: &[SeccompEntry] = &[
        // Bytes on sockets, pipes and the netlink socket.
        allow(
            "read",
            libc::SYS_read,
            Args::Any,
            "control-channel bytes; the signal pipe; netlink replies",
        ),
        allow(
            "write",
            libc::SYS_write,
            Args::Any,
            "control-channel bytes; signal-hook's handler; -d log lines on stderr",
        ),
        allow(
            "readv",
            libc::SYS_readv,
            Args::Any,
            "vectored reads of std/mio sockets",
        ),
        allow(
            "writev",
            libc::SYS_writev,
            Args::Any,
            "vectored writes of std/mio sockets",
        ),
        allow(
            "recvfrom",
            libc::SYS_recvfrom,
            Args::Any,
            "netlink replies on the socket opened before the drop",
        ),
        allow(
            "recvmsg",
            libc::SYS_recvmsg,
            Args::Any,
            "netlink replies and extended acks",
        ),
        allow(
            "sendto",
            libc::SYS_sendto,
            Args::Any,
            "netlink batches; syslog(3)'s send() on the connected /dev/log socket",
        ),
        allow(
            "sendmsg",
            libc::SYS_sendmsg,
            Args::Any,
            "netlink batches sent as one message",
        ),
        allow(
            "close",
            libc::SYS_close,
            Args::Any,
            "closing a session's sockets",
        ),
        allow(
            "shutdown",
            libc::SYS_shutdown,
            Args::Any,
            "half-closing a session's sockets",
        ),
        // TCP to the client and the server.
        allow(
            "socket",
            libc::SYS_socket,
            Args::TcpSocket,
            "a TCP socket toward the server; nothing else (no Unix, netlink, raw, UDP)",
        ),
        allow(
            "connect",
            libc::SYS_connect,
            Args::Any,
            "connecting to the server",
        ),
        allow(
            "bind",
            libc::SYS_bind,
            Args::Any,
            "-a: the source address toward the server",
        ),
        allow(
            "accept4",
            libc::SYS_accept4,
            Args::Any,
            "accepting clients on the listener made before the lock-down",
        ),
        allow(
            "setsockopt",
            libc::SYS_setsockopt,
            Args::SetIpSockopt,
            "SO_KEEPALIVE, TCP_NODELAY, SO_REUSEADDR before -a's bind",
        ),
        allow(
            "getsockopt",
            libc::SYS_getsockopt,
            Args::GetIpSockopt,
            "SO_ERROR after a non-blocking connect; SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST",
        ),
        allow(
            "getsockname",
            libc::SYS_getsockname,
            Args::Any,
            "the proxy's own address for rewrites; the TPROXY'd original destination",
        ),
        allow(
            "getpeername",
            libc::SYS_getpeername,
            Args::Any,
            "the client's and the server's address",
        ),
        // The event loop.
        #[cfg(target_arch = "x86_64")]
        allow(
            "epoll_wait",
            libc::SYS_epoll_wait,
            Args::Any,
            "mio's event loop (x86_64)",
        ),
        allow(
            "epoll_pwait",
            libc::SYS_epoll_pwait,
            Args::Any,
            "mio's event loop (epoll_wait(3) on aarch64 and riscv64)",
        ),
        allow(
            "epoll_ctl",
            libc::SYS_epoll_ctl,
            Args::Any,
            "registering and removing session sockets in mio",
        ),
        allow(
            "fcntl",
            libc::SYS_fcntl,
            Args::FdFlags,
            "O_NONBLOCK and FD_CLOEXEC on new sockets",
        ),
        allow(
            "ioctl",
            libc::SYS_ioctl,
            Args::NonBlockIoctl,
            "FIONBIO from std's set_nonblocking",
        ),
        allow(
            "clock_gettime",
            libc::SYS_clock_gettime,
            Args::Any,
            "timeouts and syslog time stamps when the vDSO falls back",
        ),
        allow(
            "getrandom",
            libc::SYS_getrandom,
            Args::Any,
            "random proxy ports; std's hash keys",
        ),
        // Memory.
        allow("brk", libc::SYS_brk, Args::Any, "malloc's main heap"),
        allow(
            "mmap",
            libc::SYS_mmap,
            Args::NoExec,
            "malloc's large blocks; never executable",
        ),
        allow(
            "mprotect",
            libc::SYS_mprotect,
            Args::NoExec,
            "malloc's secondary heaps; never executable",
        ),
        allow(
            "munmap",
            libc::SYS_munmap,
            Args::Any,
            "free() of large blocks",
        ),
        allow(
            "mremap",
            libc::SYS_mremap,
            Args::Any,
            "realloc() of large blocks",
        ),
        allow(
            "madvise",
            libc::SYS_madvise,
            Args::Any,
            "free() giving pages back",
        ),
        allow(
            "futex",
            libc::SYS_futex,
            Args::Any,
            "std's locks (stdout/stderr, Once) and glibc's",
        ),
        // Signals and the end of the process.
        allow(
            "sched_yield",
            libc::SYS_sched_yield,
            Args::Any,
            "signal-hook's registry yields while a handler runs (unregister at exit)",
        ),
        allow(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            Args::Any,
            "abort(3) resets SIGABRT before raising it",
        ),
        allow(
            "rt_sigprocmask",
            libc::SYS_rt_sigprocmask,
            Args::Any,
            "abort(3) and glibc's signal-safe sections",
        ),
        allow(
            "rt_sigreturn",
            libc::SYS_rt_sigreturn,
            Args::Any,
            "returning from the SIGTERM/SIGINT/SIGHUP handler",
        ),
        allow(
            "sigaltstack",
            libc::SYS_sigaltstack,
            Args::Any,
            "std tears down its stack-overflow stack at exit",
        ),
        allow(
            "restart_syscall",
            libc::SYS_restart_syscall,
            Args::Any,
            "the kernel resuming a wait interrupted by a signal",
        ),
        allow(
            "getpid",
            libc::SYS_getpid,
            Args::Any,
            "syslog(3)'s LOG_PID; abort(3)",
        ),
        allow(
            "gettid",
            libc::SYS_gettid,
            Args::Any,
            "abort(3) raising SIGABRT on its own thread",
        ),
        allow(
            "tgkill",
            libc::SYS_tgkill,
            Args::AbortSelf,
            "abort(3) after a panic: SIGABRT to this process only",
        ),
        allow("exit", libc::SYS_exit, Args::Any, "end of a thread"),
        allow(
            "exit_group",
            libc::SYS_exit_group,
            Args::Any,
            "end of the process",
        ),
    ];

    /// The allow-list of this architecture.
    pub fn allow_list() -> &'static [SeccompEntry] {
        ALLOW
    }

    #[cfg(target_arch = "x86_64")]
    const ARCH: TargetArch = TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    const ARCH: TargetArch = TargetArch::aarch64;
    #[cfg(target_arch = "riscv64")]
    const ARCH: TargetArch = TargetArch::riscv64;

    /// The name of the architecture the filter is built for.
    pub const ARCH_NAME: Option<&str> = Some(std::env::consts::ARCH);

    fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<Cond, String> {
        Cond::new(arg, len, op, value).map_err(|e| e.to_string())
    }

    fn rule(conds: Vec<Cond>) -> Result<SeccompRule, String> {
        SeccompRule::new(conds).map_err(|e| e.to_string())
    }

    /// One rule per allowed value of the argument at `arg` (rules of a
    /// call are alternatives; conditions of a rule must all hold).
    fn one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, String> {
        values
            .iter()
            .map(|&v| rule(vec![cond(arg, Len::Dword, Op::Eq, v)?]))
            .collect()
    }

    fn rules_for(args: Args) -> Result<Vec<SeccompRule>, String> {
        let level = |l: i32| cond(1, Len::Dword, Op::Eq, l as u64);
        Ok(match args {
            Args::Any => Vec::new(),
            Args::TcpSocket => {
                let mut rules = Vec::new();
                for family in [libc::AF_INET, libc::AF_INET6] {
                    for protocol in [0, libc::IPPROTO_TCP] {
                        rules.push(rule(vec![
                            cond(0, Len::Dword, Op::Eq, family as u64)?,
                            // The low bits are the type; SOCK_NONBLOCK and
                            // SOCK_CLOEXEC sit above them.
                            cond(1, Len::Dword, Op::MaskedEq(0xf), libc::SOCK_STREAM as u64)?,
                            cond(2, Len::Dword, Op::Eq, protocol as u64)?,
                        ])?);
                    }
                }
                rules
            }
            Args::SetIpSockopt => vec![
                rule(vec![
                    level(libc::SOL_SOCKET)?,
                    cond(2, Len::Dword, Op::Ne, libc::SO_MARK as u64)?,
                ])?,
                rule(vec![level(libc::IPPROTO_IP)?])?,
                rule(vec![level(libc::IPPROTO_IPV6)?])?,
                rule(vec![level(libc::IPPROTO_TCP)?])?,
            ],
            Args::GetIpSockopt => one_of(
                1,
                &[
                    libc::SOL_SOCKET as u64,
                    libc::IPPROTO_IP as u64,
                    libc::IPPROTO_IPV6 as u64,
                    libc::IPPROTO_TCP as u64,
                ],
            )?,
            Args::FdFlags => one_of(
                1,
                &[
                    libc::F_GETFD as u64,
                    libc::F_SETFD as u64,
                    libc::F_GETFL as u64,
                    libc::F_SETFL as u64,
                ],
            )?,
            // The request type is c_ulong on glibc and c_int on musl.
            #[allow(clippy::unnecessary_cast)]
            Args::NonBlockIoctl => one_of(1, &[libc::FIONBIO as u64, libc::FIOCLEX as u64])?,
            Args::NoExec => vec![rule(vec![cond(
                2,
                Len::Qword,
                Op::MaskedEq(libc::PROT_EXEC as u64),
                0,
            )?])?],
            Args::AbortSelf => vec![rule(vec![
                cond(0, Len::Dword, Op::Eq, std::process::id() as u64)?,
                cond(2, Len::Dword, Op::Eq, libc::SIGABRT as u64)?,
            ])?],
        })
    }

    /// Compiles the allow-list into a BPF program for this architecture:
    /// listed calls are allowed when their argument rules hold, everything
    /// else fails with EPERM.
    pub fn build() -> Result<BpfProgram, String> {
        let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for entry in ALLOW {
            map.insert(entry.nr, rules_for(entry.args)?);
        }
        let filter = SeccompFilter::new(
            map,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            ARCH,
        )
        .map_err(|e| format!("seccomp filter: {e}"))?;
        BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))
    }

    /// Installs the filter on every thread of the process (TSYNC), so no
    /// thread is left outside it.
    pub fn install() -> Result<String, String> {
        let program = build()?;
        seccompiler::apply_filter_all_threads(&program).map_err(|e| format!("seccomp: {e}"))?;
        Ok(format!(
            "seccomp: allow-list of {} system calls enforced ({}), other calls fail with EPERM",
            ALLOW.len(),
            std::env::consts::ARCH
        ))
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
mod unsupported {
    use super::SeccompEntry;

    /// No allow-list on this architecture.
    pub fn allow_list() -> &'static [SeccompEntry] {
        &[]
    }

    /// No architecture the filter can be built for.
    pub const ARCH_NAME: Option<&str> = None;

    /// Always refuses: seccompiler has no syscall table for this
    /// architecture.
    pub fn install() -> Result<String, String> {
        Err(format!(
            "seccomp is not supported on {}",
            std::env::consts::ARCH
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_has_a_reason_and_a_unique_number() {
        let list = allow_list();
        let mut seen = std::collections::HashSet::new();
        for e in list {
            assert!(!e.why.is_empty(), "{} has no reason", e.name);
            assert!(seen.insert(e.nr), "{} listed twice", e.name);
        }
    }

    #[test]
    fn dangerous_calls_are_not_listed() {
        let names: Vec<_> = allow_list().iter().map(|e| e.name).collect();
        for bad in [
            "open",
            "openat",
            "execve",
            "execveat",
            "fork",
            "clone",
            "clone3",
            "listen",
            "kill",
            "ptrace",
            "socketpair",
            "pipe2",
            "chroot",
            "setuid",
            "prctl",
        ] {
            assert!(!names.contains(&bad), "{bad} must not be allowed");
        }
    }

    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    ))]
    #[test]
    fn filter_compiles() {
        assert!(!build().unwrap().is_empty());
    }
}
