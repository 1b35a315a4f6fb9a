"""Load: the session limit full of transferring clients, then many sessions
one after another, with the daemon's resources measured around them.

The environment: ftp-proxy -m N (N = 500, or 50 with --quick) and vsftpd
with its per-address limit raised. Clients are Python's ftplib on threads
that joined the client namespace; vsftpd's listen backlog is 32, so logins
are ramped (at most RAMP at a time).

Figures (printed as `#` lines and at the end of the run): the daemon's
peak RSS with N sessions open, its descriptors and RSS before and after,
the kernel's pinhole count before and after, the time for the sequential
sessions.
"""

import ftplib
import hashlib
import io
import os
import threading
import time

import pytest

from ftplab import checks
from ftplab import daemonlog
from ftplab import lab as labmod
from ftplab import nsnet
from ftplab import procstat
from ftplab import vsftpd_many
from ftplab.evil_client import Client
from ftplab.plugin import group_env
from ftplab.replies import SESSION_LIMIT

FILE = "load.bin"
FILE_SIZE = 256 << 10
SMALL = "one-k.bin"
SMALL_SIZE = 1024
RAMP = 16
# RSS after the sequential sessions may exceed the one before by this much:
# the allocator keeps some freed pages; a leak of even 100 bytes a session
# would be 1 MB over 10,000 sessions.
RSS_TOLERANCE_KIB = 512


def concurrency(quick):
    return 50 if quick else 500


def sequential(quick):
    return 100 if quick else 10000


def start_group(env):
    files = {FILE: os.urandom(FILE_SIZE), SMALL: os.urandom(SMALL_SIZE)}
    env.sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    n = concurrency(env.quick)
    os.makedirs(env.path("load"), exist_ok=True)
    env.server = vsftpd_many.start(env.lab, env.path("load"), files, n + 100)
    env.start_daemon(4, ["-m", str(n)])


def daemon_figures(t):
    pid = t.daemons[4].pid
    table = checks.nft_table(t.lab, *t.daemons[4].table)
    return {"fds": procstat.fd_count(pid), "rss": procstat.rss_kib(pid),
            "elements": checks.pinhole_count(table)}


def wait_quiet(t, fds, timeout=10):
    """Poll until the daemon holds at most fds descriptors (its sessions
    are over); the figures then."""
    deadline = time.monotonic() + timeout
    while True:
        f = daemon_figures(t)
        if f["fds"] <= fds or time.monotonic() > deadline:
            return f
        time.sleep(0.1)


# -- N concurrent sessions -------------------------------------------------------

class Crowd:
    """N ftplib sessions on threads in the client namespace: all log in
    (ramped), then all transfer, then all wait, sessions open, until
    released; then QUIT."""

    def __init__(self, lab, n, sha, timeout):
        self.lab = lab
        self.n = n
        self.sha = sha
        self.timeout = timeout
        self.ramp = threading.Semaphore(RAMP)
        self.logged_in = threading.Barrier(n + 1)
        self.transferred = threading.Barrier(n + 1)
        self.release = threading.Event()
        self.results = [None] * n
        self.threads = []

    def start(self):
        old = threading.stack_size(256 << 10)
        try:
            for i in range(self.n):
                self.threads.append(nsnet.spawn(self.lab.client, self._one, i, name="crowd-%d" % i))
        finally:
            threading.stack_size(old)

    def _one(self, i):
        ftp = ftplib.FTP(timeout=self.timeout)
        try:
            with self.ramp:
                ftp.connect(labmod.SERVER4, 21)
                ftp.login("anonymous", "load@example.org")
            self.logged_in.wait(self.timeout)
            ftp.set_pasv(i % 2 == 0)
            h = hashlib.sha256()
            ftp.retrbinary("RETR " + FILE, h.update, blocksize=1 << 16)
            self.results[i] = "ok" if h.hexdigest() == self.sha else "sha256 differs"
        except threading.BrokenBarrierError:
            self.results[i] = self.results[i] or "aborted"
        except Exception as e:
            self.results[i] = "%s: %s" % (type(e).__name__, e)
            self.logged_in.abort()
        finally:
            try:
                self.transferred.wait(self.timeout)
            except threading.BrokenBarrierError:
                pass
            self.release.wait(self.timeout)
            try:
                ftp.quit()
            except Exception:
                ftp.close()

    def failures(self):
        """(index, what went wrong), the real errors before the knock-on ones."""
        bad = [(i, r) for i, r in enumerate(self.results) if r != "ok"]
        return sorted(bad, key=lambda ir: ir[1] in (None, "aborted"))

    def finish(self, timeout):
        self.release.set()
        self.logged_in.abort()      # frees threads still waiting if the run failed
        self.transferred.abort()
        deadline = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.1, deadline - time.monotonic()))
        return sum(1 for th in self.threads if th.is_alive())


def concurrent(n):
    def fn(t):
        """-m N with N sessions open at once, each downloading a file (PASV
        and PORT alternately): every sha256 right; session N+1 gets the 421
        and the close; afterwards descriptors and pinholes are back."""
        pid = t.daemons[4].pid
        before = wait_quiet(t, 10 ** 6, 0)
        procstat.reset_peak_rss(pid)
        crowd = Crowd(t.lab, n, t.env.sha[FILE], timeout=120)
        start = time.monotonic()
        crowd.start()
        try:
            try:
                crowd.logged_in.wait(180)
            except threading.BrokenBarrierError:
                pytest.fail("not all %d sessions logged in: %s; daemon: %s" % (
                    n, crowd.failures()[:2], daemonlog.problems(t.daemons[4].log_path)))
            logged = time.monotonic() - start
            try:
                crowd.transferred.wait(180)
            except threading.BrokenBarrierError:
                pytest.fail("transfers did not all finish: %s; daemon: %s" % (
                    crowd.failures()[:2], daemonlog.problems(t.daemons[4].log_path)))
            took = time.monotonic() - start
            bad = crowd.failures()
            assert not bad, "%d of %d transfers failed, e.g. %s" % (len(bad), n, bad[:3])
            full = daemon_figures(t)
            extra = Client(t.lab)
            t.closers.append(extra.close)
            assert extra.wait_closed(10), "session %d still open after 10 s" % (n + 1)
            assert extra.data == SESSION_LIMIT, "session %d got %r" % (n + 1, extra.data)
            t.say("session %d got %r, then the close" % (n + 1, SESSION_LIMIT))
        finally:
            alive = crowd.finish(60)
        assert not alive, "%d client threads did not finish" % alive
        after = wait_quiet(t, before["fds"])
        peak = procstat.peak_rss_kib(pid)
        assert after["fds"] <= before["fds"], (
            "descriptors: %d before, %d after"
            % (before["fds"], after["fds"]))
        assert after["elements"] == 0, "%d elements left" % after["elements"]
        t.say("%d sessions logged in within %.1f s, all %d downloads (%d KiB each, sha256 "
              "right) done after %.1f s" % (n, logged, n, FILE_SIZE >> 10, took))
        t.say("with %d sessions open: %d descriptors, RSS %d KiB, %d kernel elements; "
              "peak RSS %d KiB" % (n, full["fds"], full["rss"], full["elements"], peak))
        t.say("descriptors %d before, %d after; RSS %d KiB before, %d KiB after"
              % (before["fds"], after["fds"], before["rss"], after["rss"]))
        t.env.figures["peak RSS at %d sessions" % n] = "%d KiB (%.1f MiB)" % (peak, peak / 1024)
        t.env.figures["fds at %d sessions" % n] = "%d (before %d, after %d)" % (
            full["fds"], before["fds"], after["fds"])
    return fn


# -- M sequential sessions -------------------------------------------------------

def one_session(i, sha_small, every):
    """Login, NOOP, QUIT; every `every`-th session also a PASV download of
    1 KiB. Returns None or what went wrong."""
    ftp = ftplib.FTP(timeout=20)
    try:
        ftp.connect(labmod.SERVER4, 21)
        ftp.login("anonymous", "load@example.org")
        ftp.voidcmd("NOOP")
        if i % every == 0:
            buf = io.BytesIO()
            ftp.retrbinary("RETR " + SMALL, buf.write)
            if hashlib.sha256(buf.getvalue()).hexdigest() != sha_small:
                return "session %d: sha256 of the download differs" % i
        ftp.quit()
    except Exception as e:
        ftp.close()
        return "session %d: %s: %s" % (i, type(e).__name__, e)
    return None


def run_sequential(count, sha_small, every, deadline):
    errors = []
    done = 0
    for i in range(count):
        if time.monotonic() > deadline:
            errors.append("stopped after %d sessions: time limit" % i)
            break
        err = one_session(i, sha_small, every)
        done += 1
        if err:
            errors.append(err)
            if len(errors) >= 5:
                break
    return done, errors


def sequential_sessions(m, every=10, warmup=50):
    def fn(t):
        """M sessions one after another (login, NOOP, QUIT; every tenth with a
        PASV download): afterwards the daemon's descriptors, RSS and the
        kernel's pinhole count are back at their starting values."""
        ns = t.lab.client
        sha = t.env.sha[SMALL]
        done, errors = nsnet.call_in(ns, run_sequential, warmup, sha, every,
                                     time.monotonic() + 60, timeout=90)
        assert not errors, "warm-up: %s" % errors[:3]
        base = wait_quiet(t, 10 ** 6, 0)
        base = wait_quiet(t, base["fds"])
        start = time.monotonic()
        limit = 1200 if m > 1000 else 120
        done, errors = nsnet.call_in(ns, run_sequential, m, sha, every,
                                     time.monotonic() + limit, timeout=limit + 60)
        took = time.monotonic() - start
        assert not errors, "%d errors, e.g. %s" % (len(errors), errors[:3])
        after = wait_quiet(t, base["fds"])
        t.say("%d sessions (%d with a download) in %.1f s, %.0f sessions/s"
              % (done, (done + every - 1) // every, took, done / took))
        t.say("descriptors %d before, %d after; RSS %d KiB before, %d KiB after "
              "(tolerance %d KiB); kernel elements %d before, %d after"
              % (base["fds"], after["fds"], base["rss"], after["rss"], RSS_TOLERANCE_KIB,
                 base["elements"], after["elements"]))
        t.env.figures["time for %d sequential sessions" % done] = "%.1f s (%.0f/s)" % (
            took, done / took)
        t.env.figures["fds before/after %d sessions" % done] = "%d / %d" % (
            base["fds"], after["fds"])
        t.env.figures["RSS before/after %d sessions" % done] = "%d / %d KiB (tolerance %d)" % (
            base["rss"], after["rss"], RSS_TOLERANCE_KIB)
        assert after["fds"] == base["fds"], (
            "descriptors: %d before, %d after"
            % (base["fds"], after["fds"]))
        assert after["elements"] == base["elements"] == 0, (
            "kernel elements: %d before, %d after" % (base["elements"], after["elements"]))
        assert after["rss"] <= base["rss"] + RSS_TOLERANCE_KIB, (
            "RSS grew from %d to %d KiB" % (base["rss"], after["rss"]))
    return fn


# -- the suite --------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(lab, binary, logdir, workdir, quick):
    yield from group_env("load", lab, binary, logdir, workdir, quick, start_group)


def test_concurrent_with_transfers(trial):
    trial.run(concurrent(concurrency(trial.quick)))


def test_sequential_sessions(trial):
    trial.run(sequential_sessions(sequential(trial.quick)))


def test_sigterm_exit_0_table_gone(env):
    """SIGTERM after the load: the daemon exits 0, its table gone."""
    problems = env.stop_daemons()
    assert not problems, "; ".join(problems)
