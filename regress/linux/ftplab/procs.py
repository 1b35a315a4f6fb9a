"""Running commands, in the root namespace or inside one of the lab's.

Every command is bounded in time. Background processes are recorded by the
PID that Popen returned (nsenter execs its command for a network namespace,
so that PID is the program's own) and are stopped by that PID at the end,
whatever happened in between.
"""

import atexit
import os
import signal
import subprocess
import tempfile
import time

DEFAULT_TIMEOUT = 60


class CommandError(Exception):
    pass


def in_ns(ns, argv):
    """The argv that runs argv inside network namespace ns (None: here)."""
    if ns is None:
        return list(argv)
    return ["nsenter", "--net=/run/netns/" + ns, "--"] + list(argv)


def run(argv, ns=None, timeout=DEFAULT_TIMEOUT, check=True, input=None):
    """Run argv to completion; return the CompletedProcess (text mode)."""
    full = in_ns(ns, argv)
    try:
        cp = subprocess.run(full, input=input, capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandError("timed out after %ss: %s" % (timeout, " ".join(full)))
    if check and cp.returncode != 0:
        raise CommandError("exit %d: %s: %s" % (cp.returncode, " ".join(full),
                                                (cp.stderr or cp.stdout).strip()[-500:]))
    return cp


class Background:
    """One long-running process we started; stop() ends it by its PID."""

    def __init__(self, name, argv, ns=None, log_path=None, stdin=None, stdout=None):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(in_ns(ns, argv), stdin=stdin or subprocess.DEVNULL,
                                      stdout=stdout or self._log, stderr=self._log,
                                      start_new_session=True)
        self.pid = self.popen.pid
        _running[self.pid] = self

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process, wait for it (bounded); return its exit status.

        Escalates to SIGKILL if it has not exited within timeout seconds and
        returns None in that case."""
        status = self.popen.poll()
        if status is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                status = self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
                status = None
        _running.pop(self.pid, None)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
            self._log = subprocess.DEVNULL
        return status

    def log_tail(self, n=20):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])


_running = {}


def stop_all():
    """Stop every background process still recorded, by PID."""
    for proc in list(_running.values()):
        try:
            proc.stop(timeout=5)
        except Exception:
            pass


atexit.register(stop_all)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def install_signal_handlers():
    """Turn SIGTERM/SIGHUP into SystemExit so finally blocks and atexit run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)


class Overtime(BaseException):
    """The whole run exceeded its time limit: stop it, clean up, fail."""


def _overtime(signum, frame):
    raise Overtime()


def start_run(max_seconds):
    """Arm a whole run of a script (bench.py): SIGTERM/SIGHUP run finally
    blocks and atexit, and SIGALRM after max_seconds raises Overtime.
    Returns the start time. Under pytest, plugin.py does this job."""
    install_signal_handlers()
    signal.signal(signal.SIGALRM, _overtime)
    signal.alarm(max_seconds)
    return time.monotonic()


def log_dir(given, prefix):
    """The log directory the user gave (made if missing), or a new one."""
    path = given or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(path, exist_ok=True)
    return path


def work_dir(prefix, parent=None):
    """A new working directory that the servers' unprivileged users can
    reach (mode 0755)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(path, 0o755)
    return path


def gone(pid):
    """True once pid no longer runs (no such process, or a zombie nobody
    has reaped yet: it is not ours to reap)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rindex(")") + 2:].split()[0] in ("Z", "X")


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns a true value or timeout seconds pass.

    Returns the value; raises TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("%s not reached within %ss" % (what, timeout))
        time.sleep(interval)
