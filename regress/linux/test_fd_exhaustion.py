"""A daemon out of file descriptors answers 421 at once and recovers.

    cd regress/linux && pytest -v test_fd_exhaustion.py     (root)

The daemon's descriptor limit is lowered while it runs (prlimit(1), as a
service manager's or a login class's lower limit would be) so that the
sessions it holds fill it exactly: the next accept(2) fails with EMFILE.
The daemon must then use its reserve descriptor to accept the waiting
client, answer the 421 of ftp-proxy(8) and close, instead of leaving the
client unanswered in the backlog; and once the held sessions end, a new
session must work by itself, under the same lowered limit, with a file
transferred intact. No descriptor may leak on the way: the reserve is
taken back after each refusal, and once the held sessions and the
recovery transfer are over the daemon holds exactly the descriptors it
held before the sessions began.

The module is a group like the hostile and load ones (plugin.group_env):
its own daemon and vsftpd, the pinhole watch, every case ending with the
common checks, and SIGTERM at the end: exit 0, table gone.
"""

import hashlib
import os
import tempfile

import pytest

from ftplab import clients
from ftplab import procs
from ftplab import servers
from ftplab.evil_client import Client
from ftplab.plugin import group_env
from ftplab.replies import FD_EXHAUSTED

HELD = 3
FILE_NAME = "data.bin"
FILE_SIZE = 256 * 1024 + 7
# "At once": the old daemon retried every second and never answered.
ANSWER_WITHIN = 2.0
# How long the daemon may take to close a session's descriptors, or to
# take its reserve back, after the client has seen the close.
SETTLE = 10


def nofile(pid):
    """The (soft, hard) descriptor limit of process pid."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise RuntimeError("no descriptor limit in /proc/%d/limits" % pid)


def set_nofile(pid, soft, hard):
    """prlimit(1) run as the daemon's own user: changing another user's
    limits needs CAP_SYS_RESOURCE, which a container's root may lack, while
    a process may always change the limits of one with its uid and gid."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                ids[key] = value.split()[0]
    procs.run(["setpriv", "--reuid", ids["Uid"], "--regid", ids["Gid"], "--clear-groups",
               "prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)])
    assert nofile(pid) == (soft, hard)


def open_descriptors(pid):
    return sorted(int(fd) for fd in os.listdir("/proc/%d/fd" % pid))


def lowest_free(fds):
    """The descriptor number the kernel would hand out next."""
    taken = set(fds)
    n = 0
    while n in taken:
        n += 1
    return n


def wait_descriptors(t, pid, expected, when):
    """Wait (bounded) until the daemon holds exactly the descriptors
    expected; fail naming the ones leaked or lost."""
    try:
        procs.wait_for(lambda: set(open_descriptors(pid)) == expected, SETTLE,
                       what="the daemon's descriptors back " + when)
    except TimeoutError:
        now = set(open_descriptors(pid))
        raise AssertionError("descriptors %s: leaked %s, lost %s" % (
            when, sorted(now - expected), sorted(expected - now)))


def start_group(env):
    if not servers.available("vsftpd"):
        pytest.skip("vsftpd not installed (regress/linux/install-deps.sh netns)")
    data = os.urandom(FILE_SIZE)
    env.sha = hashlib.sha256(data).hexdigest()
    env.server = servers.make("vsftpd", env.lab,
                              tempfile.mkdtemp(dir=env.workdir, prefix="vsftpd-fd"),
                              {FILE_NAME: data}).start()
    env.start_daemon(4, ["-m", "20"])


def hold_session(lab, host, port):
    c = clients.Interactive(lab, "hold", host, port, timeout=20)
    state = c.read_json(30)
    assert state.get("state") == "READY", "client could not log in: %s" % state
    return c


def out_of_descriptors(t):
    d = t.daemons[4]
    pid = d.pid
    host, port = t.lab.ftp_target(4)
    idle = set(open_descriptors(pid))
    held = []

    def end_held():
        for c in held:
            c.kill()
    t.closers.append(end_held)
    for _ in range(HELD):
        held.append(hold_session(t.lab, host, port))
    soft, hard = nofile(pid)
    limit = lowest_free(open_descriptors(pid))
    set_nofile(pid, limit, hard)
    t.closers.append(lambda: d.alive() and set_nofile(pid, soft, hard))
    t.say("%d descriptors idle; with %d sessions held the limit lowered to %d"
          % (len(idle), HELD, limit))

    # Twice: the second refusal shows the reserve was taken back.
    for attempt in (1, 2):
        c = Client(t.lab)
        t.closers.append(c.close)
        assert c.wait_closed(ANSWER_WITHIN + 5), \
            "client %d: still open; got %r (daemon log:\n%s)" % (attempt, c.data, d.log_tail())
        assert c.data == FD_EXHAUSTED, "client %d got %r, expected %r" % (
            attempt, c.data, FD_EXHAUSTED)
        assert c.closed_at < ANSWER_WITHIN, \
            "421 and close after %.1f s, not at once" % c.closed_at
        # The reserve is open again: every descriptor below the limit taken.
        procs.wait_for(lambda: lowest_free(open_descriptors(pid)) == limit, SETTLE,
                       what="the reserve descriptor taken back after refusal %d" % attempt)
        t.say("client %d: %r, closed after %.3f s; the reserve taken back"
              % (attempt, c.data, c.closed_at))
    assert d.alive(), "daemon died:\n" + d.log_tail()
    assert nofile(pid)[0] == limit

    # The held sessions are untouched by the refusals.
    for c in held:
        result = c.finish(30)
        assert result.get("noop", "").startswith("200"), "held session broken: %s" % result
    end_held()
    wait_descriptors(t, pid, idle, "after the held sessions")

    # Under the same lowered limit, the freed descriptors serve again.
    local = os.path.join(t.workdir, "got-fd.bin")
    r = clients.transfer(t.lab, "explicit", 4, "EPSV", "get", FILE_NAME, local,
                         target=(host, port), timeout=20)
    assert r.ok, "transfer after recovery failed: %s\n%s" % (r.error, d.log_tail())
    assert servers.sha256_file(local) == t.env.sha, "file arrived damaged"
    os.unlink(local)
    assert nofile(pid)[0] == limit
    wait_descriptors(t, pid, idle, "after the recovery transfer")
    t.say("after the held sessions and the recovery transfer: the same %d descriptors "
          "as before them" % len(idle))


@pytest.fixture(scope="module")
def env(lab, binary, logdir, workdir, quick):
    yield from group_env("fd-exhaustion", lab, binary, logdir, workdir, quick, start_group)


def test_out_of_descriptors_refuses_at_once_and_recovers(trial):
    trial.run(out_of_descriptors)


def test_sigterm_exit_0_table_gone(env):
    """SIGTERM after the refusals: the daemon exits 0, its table gone."""
    problems = env.stop_daemons()
    assert not problems, "; ".join(problems)
