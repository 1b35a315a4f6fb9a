"""The sandbox, seen from outside the real daemon.

    sandbox/proc-status               the kernel's view of a serving daemon:
                                      ids, groups, capability sets,
                                      no_new_privs, seccomp, root directory;
                                      then PASV and PORT transfers still work
    sandbox/syslog-after-chroot       the daemonized daemon's syslog lines,
                                      sent after the chroot, arrive on a
                                      socket bind-mounted over /dev/log in a
                                      private mount namespace
    sandbox/bad-chroot/...            /var/empty holding a file, writable by
                                      its group, owned by another user: exit 1
                                      and a message naming /var/empty

Every daemon here is started by the case itself (set-up "manual") and
stopped by its PID. Cases that need a changed /dev or /var/empty make the
change inside a private mount namespace (unshare(1)), so the host's own
/dev and /var/empty are never written.
"""

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from ftplab import checks
from ftplab import clients
from ftplab import context
from ftplab import daemon as daemonmod
from ftplab import lab as labmod
from ftplab import procs
from ftplab import servers

CHROOT = "/var/empty"
USER = "proxy"
CAP_NET_ADMIN_ONLY = "0000000000001000"   # bit 12
NO_CAPS = "0000000000000000"
EXIT_TIMEOUT = 10
SETUP_FAILED = 97   # exit status of the namespace script when its own set-up fails


# -- reading /proc -----------------------------------------------------------------

def proc_status(pid):
    """/proc/<pid>/status as {field: value text}."""
    with open("/proc/%d/status" % pid) as f:
        return dict((k, v.strip()) for k, _, v in (line.partition(":") for line in f))


def proc_root(pid):
    return os.readlink("/proc/%d/root" % pid)


def set_subreaper(on):
    """PR_SET_CHILD_SUBREAPER: a daemon that forks and whose parent exits
    becomes our child, so we can reap it and read its exit status (the
    machine's init may never reap it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1 if on else 0, 0, 0, 0) != 0:   # 36: PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl PR_SET_CHILD_SUBREAPER")


def reap(pid, timeout):
    """Wait (bounded) for pid to exit. Returns its exit status if it was
    our child, "exited" if it ended but was not ours to reap, None if it
    still runs after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            if procs.gone(pid):
                return "exited"
        else:
            if done == pid:
                return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def ns_inode(pid, kind):
    """The identity of pid's namespace of kind (mnt, net), or None."""
    try:
        return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino
    except OSError:     # gone, or a process we may not inspect
        return None


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def strays(holder_pid, inode):
    """Processes left in the case's private mount namespace: children of
    the namespace script or of this process (the subreaper) whose mount
    namespace is inode. Never the namespace this process runs in."""
    if inode is None or inode == ns_inode(os.getpid(), "mnt"):
        return []
    parents = (holder_pid, os.getpid())
    return [int(n) for n in os.listdir("/proc")
            if n.isdigit() and int(n) != holder_pid and parent_of(int(n)) in parents
            and ns_inode(int(n), "mnt") == inode]


def sandbox_mismatches(status, account):
    """What /proc/<pid>/status says that a locked-down daemon must not:
    one reason per field that differs, empty when all is as it must be."""
    uid, gid = str(account.pw_uid), str(account.pw_gid)
    wanted = [
        ("Uid", [uid] * 4, "real, effective, saved and file-system uid must all be %s's %s"
         % (USER, uid)),
        ("Gid", [gid] * 4, "real, effective, saved and file-system gid must all be %s's %s"
         % (USER, gid)),
        ("Groups", [gid], "the only group must be %s's %s (root's groups dropped)" % (USER, gid)),
        ("NoNewPrivs", ["1"], "no_new_privs must be set"),
        ("Seccomp", ["2"], "a seccomp filter (mode 2) must be installed"),
        ("CapEff", [CAP_NET_ADMIN_ONLY], "effective set must be CAP_NET_ADMIN alone"),
        ("CapPrm", [CAP_NET_ADMIN_ONLY], "permitted set must be CAP_NET_ADMIN alone"),
        ("CapBnd", [CAP_NET_ADMIN_ONLY], "bounding set must be CAP_NET_ADMIN alone"),
        ("CapInh", [NO_CAPS], "inheritable set must be empty"),
        ("CapAmb", [NO_CAPS], "ambient set must be empty"),
    ]
    out = []
    for field, want, why in wanted:
        have = status.get(field, "<missing>").split()
        if have != want:
            out.append("%s is %r: %s" % (field, " ".join(have), why))
    return out


def save_snapshot(ctx, name, pid, status, root):
    """The observed values, kept in the log directory as evidence."""
    fields = ("Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "Seccomp_filters",
              "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    with open(os.path.join(ctx.logdir, name), "w") as f:
        f.write("pid %d\nroot %s\n" % (pid, root))
        for field in fields:
            f.write("%s: %s\n" % (field, status.get(field, "<missing>")))


# -- sandbox/proc-status -------------------------------------------------------------

def proc_status_case(ctx):
    """With a PASV download negotiated and paused (pinhole open, session
    live), /proc/<pid>/status of the daemon shows the proxy account's ids
    and group alone, no_new_privs, a seccomp filter, CAP_NET_ADMIN alone in
    the effective, permitted and bounding sets, nothing inheritable or
    ambient, and its root is /var/empty. The paused download then completes
    intact, and PASV and PORT transfers still work afterwards."""
    account = pwd.getpwnam(USER)
    d = context.start_daemon(ctx, "sandbox-proc")
    c = None
    try:
        ctx.daemons = {4: d}
        host, port = ctx.target(4)
        local = os.path.join(ctx.workdir, ctx.unique("sandbox-paused"))
        c = clients.Interactive(ctx.lab, "transfer", host, port, flavour="explicit", cmd="PASV",
                                pause=True, direction="get", remote=context.FILE_NAME,
                                local=local, timeout=20)
        state = c.read_json(30)
        assert state.get("state") == "READY", "client did not negotiate: %s" % state
        assert checks.pinhole_count(checks.nft_table(ctx.lab, *d.table) or []) > 0, (
            "no pinhole while the download is negotiated: not a serving daemon")
        status, root = proc_status(d.pid), proc_root(d.pid)
        save_snapshot(ctx, "sandbox-proc-status.txt", d.pid, status, root)
        ctx.note("daemon %d: root %s; %s" % (d.pid, root, "; ".join(
            "%s=%s" % (k, status.get(k)) for k in ("Uid", "Gid", "Groups", "NoNewPrivs",
                                                   "Seccomp", "CapEff", "CapPrm", "CapBnd",
                                                   "CapInh", "CapAmb"))))
        bad = sandbox_mismatches(status, account)
        if root != CHROOT:
            bad.append("/proc/%d/root is %s, not %s" % (d.pid, root, CHROOT))
        assert not bad, "; ".join(bad)
        c.say()
        result = c.finish(60)
        assert "error" not in result, "paused download failed: %s" % result.get("error")
        assert servers.sha256_file(local) == ctx.data_sha, "sha256 of the paused download differs"
        os.unlink(local)
        for cmd in ("PASV", "PORT"):
            context.do_transfer(ctx, "explicit", 4, cmd, "get")
            context.do_transfer(ctx, "explicit", 4, cmd, "put")
    finally:
        if c:
            c.kill()
        ctx.daemons = {}
        status = d.stop()
    assert status == 0, "exit %s after SIGTERM" % status
    assert context.table_gone(ctx, d), "table %s %s left after exit" % d.table


# -- sandbox/syslog-after-chroot -------------------------------------------------------

# Run by unshare(1) in a new mount namespace (private propagation): an empty
# /dev with /dev/null and, bound over /dev/log, the test's socket; then the
# daemon in the gateway's network namespace. The daemon's parent exits after
# the fork; its status goes to a file and the script holds the namespace
# open until its standard input closes.
SYSLOG_SCRIPT = r"""
set -e
sock=$1 netns=$2 statusfile=$3
shift 3
mount -t tmpfs -o mode=0755 sandbox-dev /dev || exit 97
mknod -m 0666 /dev/null c 1 3 || exit 97
: > /dev/log || exit 97
mount --bind "$sock" /dev/log || exit 97
set +e
nsenter --net="$netns" -- "$@"
echo $? > "$statusfile"
read -r _
"""


class SyslogSink:
    """A Unix datagram socket the test reads; every datagram is kept with
    the time it arrived. A thread drains it so that the daemon's blocking
    syslog(3) never waits on a full queue."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.lines = []            # [(monotonic time, text)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        deadline = time.monotonic() + 300      # never outlives a case
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.lines.append((time.monotonic(), data.decode("utf-8", "replace")))

    def tagged(self, pid, since=0.0):
        """Lines tagged ftp-proxy[pid] that arrived at or after since."""
        tag = "ftp-proxy[%d]: " % pid
        return [text.split(tag, 1)[1] for t, text in list(self.lines) if tag in text and t >= since]

    def pid_of(self, fragment):
        """The LOG_PID tag of the first line holding fragment, or None."""
        for _, text in list(self.lines):
            if fragment in text and "ftp-proxy[" in text:
                try:
                    return int(text.split("ftp-proxy[", 1)[1].split("]", 1)[0])
                except ValueError:
                    return None
        return None

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def forked_daemon_argv(ctx):
    """The lab's daemon command line without -d: it forks and logs to syslog."""
    d = daemonmod.Daemon(ctx.lab, 4, labmod.PROXY_PORT, (), ctx.binary, ctx.logdir)
    argv = d.argv()
    argv.remove("-d")
    return argv, d.table


def read_status_file(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return text or None


def syslog_case(ctx):
    """The daemonized daemon (no -d, -D 7) connects /dev/log before the
    chroot and keeps logging after it. /dev/log is our own socket, bound
    over it in a private mount namespace, so nothing reaches the host's
    syslog. The parent exits 0; the PID in the LOG_PID tag of the
    "listening" line is a process whose root is /var/empty; a transfer goes
    through it, and that session's lines, sent by that chrooted process,
    arrive on the socket; SIGTERM to that PID ends it and its table."""
    argv, table = forked_daemon_argv(ctx)
    tmp = tempfile.mkdtemp(dir=ctx.workdir, prefix="syslog")
    sink = SyslogSink(os.path.join(tmp, "log"))   # closed in the finally below
    statusfile = os.path.join(tmp, "parent-status")
    holder = holder_ns = pid = None
    try:
        set_subreaper(True)
        holder = procs.Background(
            "sandbox-syslog", ["unshare", "--mount", "--propagation", "private", "--",
                               "sh", "-c", SYSLOG_SCRIPT, "sh", sink.path,
                               "/run/netns/" + ctx.lab.gateway, statusfile] + argv,
            log_path=os.path.join(ctx.logdir, "sandbox-syslog.log"), stdin=subprocess.PIPE)
        holder_ns = wait_value(lambda: private_ns(holder), EXIT_TIMEOUT,
                               "the script's own mount namespace")
        parent = wait_value(lambda: read_status_file(statusfile) or
                            (not holder.alive() and "holder exited %s" % holder.popen.poll()),
                            EXIT_TIMEOUT, "the daemon's parent to exit")
        ctx.note("namespace script log: %s" % holder.log_tail())
        assert parent == "0", (
            "the daemon's parent exited %s, not 0 (script log: %s)"
            % (parent, holder.log_tail(5)))
        pid = wait_value(lambda: sink.pid_of("listening on"), EXIT_TIMEOUT,
                         "a 'listening on' line on the socket bound over /dev/log")
        ctx.note("daemon pid %d (from its syslog tag)" % pid)
        assert not procs.gone(pid), "PID %d from the syslog tag does not run" % pid
        assert ns_inode(pid, "mnt") == holder_ns, (
            "PID %d is not in the test's private mount namespace" % pid)
        assert ns_inode(pid, "net") == os.stat("/run/netns/" + ctx.lab.gateway).st_ino, (
            "PID %d is not in the gateway's network namespace" % pid)
        root = proc_root(pid)
        assert root == CHROOT, "/proc/%d/root is %s, not %s" % (pid, root, CHROOT)
        chrooted_at = time.monotonic()
        assert checks.nft_table(ctx.lab, *table) is not None, "no table %s %s" % table
        context.do_transfer(ctx, "explicit", 4, "PASV", "get")
        reason = checks.wait_no_pinholes(ctx.lab, *table)
        assert reason is None, reason
        started = wait_value(lambda: [l for l in sink.tagged(pid, chrooted_at)
                                      if " FTP session " in l and " started" in l],
                             EXIT_TIMEOUT, "the session's 'started' line from PID %d" % pid)
        ctx.note("after the chroot: %s" % started[0])
        assert not procs.gone(pid), "PID %d died during the transfer" % pid
        os.kill(pid, signal.SIGTERM)
        status = reap(pid, EXIT_TIMEOUT)
        assert status is not None, (
            "PID %d still runs %d s after SIGTERM"
            % (pid, EXIT_TIMEOUT))
        pid = None
        assert status == 0, "exit %s after SIGTERM" % status
        assert checks.wait_table_gone(ctx.lab, *table), (
            "table %s %s left after the daemon exited" % table)
    finally:
        ctx.note("syslog lines: %s" % " | ".join(t for _, t in sink.lines[-15:]))
        try:
            if holder is not None:
                ctx.note("killed at clean-up: %s" % (end_namespace(holder, holder_ns, pid) or "none"))
        finally:
            set_subreaper(False)
            sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_value(predicate, timeout, what):
    """procs.wait_for that fails the case with what it waited for."""
    try:
        return procs.wait_for(predicate, timeout, interval=0.05, what=what)
    except TimeoutError as e:
        pytest.fail(str(e))


def private_ns(holder):
    """The mount namespace of the namespace script once it differs from
    ours (unshare(1) runs in ours until it has called unshare(2))."""
    inode = ns_inode(holder.pid, "mnt") if holder.alive() else None
    return inode if inode not in (None, ns_inode(os.getpid(), "mnt")) else None


def end_namespace(holder, holder_ns, pid):
    """Whatever happened: SIGKILL the daemon (the PID from its tag, and any
    process strays() finds in the private mount namespace; nothing outside
    that namespace), then let the namespace script go (EOF on its input)
    and stop it by its PID. Returns the PIDs it killed."""
    victims = strays(holder.pid, holder_ns)
    if pid and pid not in victims and holder_ns is not None and \
            holder_ns != ns_inode(os.getpid(), "mnt") and ns_inode(pid, "mnt") == holder_ns:
        victims.append(pid)
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for victim in victims:
        reap(victim, 5)
    try:
        holder.popen.stdin.close()
    except OSError:
        pass
    holder.stop(timeout=5)
    return victims


# -- sandbox/bad-chroot ----------------------------------------------------------------

# Run by unshare(1) in a new mount namespace: a fresh tmpfs on /var/empty
# (on /var if the host has no /var/empty), made bad in one way by the case,
# then the daemon in the gateway's network namespace. Only the tmpfs changes.
BAD_CHROOT_SCRIPT = r"""
bad=$1 netns=$2
shift 2
if [ -d /var/empty ]; then
    mount -t tmpfs -o mode=0755,uid=0,gid=0 sandbox-empty /var/empty || exit 97
else
    mount -t tmpfs -o mode=0755 sandbox-var /var && mkdir -m 0755 /var/empty || exit 97
fi
case $bad in
    file) : > /var/empty/leftover ;;
    mode) chmod 0775 /var/empty ;;
    owner) chown proxy /var/empty ;;
esac || exit 97
exec nsenter --net="$netns" -- "$@"
"""


def host_chroot_state():
    """(owner, group, mode, entries, inode, mtime) of the host's /var/empty,
    or None if it does not exist."""
    try:
        st = os.stat(CHROOT)
    except FileNotFoundError:
        return None
    return (st.st_uid, st.st_gid, st.st_mode & 0o7777, sorted(os.listdir(CHROOT)),
            st.st_ino, st.st_mtime_ns)


def bad_chroot(bad, named):
    """The daemon refuses to start when /var/empty is unfit: exit 1, a
    message naming /var/empty and what is wrong (named), no table and no
    listener left. The bad directory is a tmpfs in a private mount
    namespace; the host's /var/empty is checked to be unchanged and still
    root-owned, 0755 and empty."""
    def fn(ctx):
        before = host_chroot_state()
        d = daemonmod.Daemon(ctx.lab, 4, labmod.PROXY_PORT, (), ctx.binary, ctx.logdir,
                             name="bad-chroot-" + bad)
        try:
            cp = procs.run(["unshare", "--mount", "--propagation", "private", "--",
                            "sh", "-c", BAD_CHROOT_SCRIPT, "sh", bad,
                            "/run/netns/" + ctx.lab.gateway] + d.argv(),
                           timeout=EXIT_TIMEOUT + 5, check=False)
            ctx.note("exit %d, stderr: %s" % (cp.returncode, cp.stderr.strip()))
            assert cp.returncode != SETUP_FAILED, (
                "could not make the bad /var/empty: %s" % cp.stderr.strip())
            assert cp.returncode == 1, (
                "exit %d with /var/empty %s (stderr: %s)"
                % (cp.returncode, bad, cp.stderr.strip()[-300:]))
            assert CHROOT in cp.stderr, (
                "stderr does not name %s: %r"
                % (CHROOT, cp.stderr.strip()))
            assert named in cp.stderr, (
                "stderr does not say what to fix (%s): %r"
                % (named, cp.stderr.strip()))
            assert checks.wait_table_gone(ctx.lab, *d.table), (
                "table %s %s left by the refused start" % d.table)
        finally:
            after = host_chroot_state()
        assert after == before, "the host's %s changed: %s -> %s" % (CHROOT, before, after)
        assert after is None or after[:4] == (0, 0, 0o755, []), (
            "the host's %s is not root-owned, 0755 and empty: %s" % (CHROOT, after))
    return fn


# -- the cases ------------------------------------------------------------------------

def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class TestSandbox:
    """Daemons started by the cases, on the first of --servers."""
    SETUP = "manual"

    def test_proc_status(self, ctx):
        proc_status_case(ctx)

    def test_syslog_after_chroot(self, ctx):
        syslog_case(ctx)

    @pytest.mark.parametrize("bad,named", [
        pytest.param("file", "leftover", id="holds-a-file"),
        pytest.param("mode", "0775", id="mode-0775"),
        pytest.param("owner", "uid %d" % (pwd.getpwnam(USER).pw_uid if _has_user(USER) else -1),
                     id="owned-by-proxy")])
    def test_bad_chroot(self, ctx, bad, named):
        bad_chroot(bad, named)(ctx)
