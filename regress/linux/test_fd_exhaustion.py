"""A daemon out of file descriptors answers 421 at once and recovers.

    cd regress/linux && pytest -v test_fd_exhaustion.py     (root)

The daemon's descriptor limit is lowered while it runs (prlimit(1), as a
service manager's or a login class's lower limit would be) so that the
sessions it holds fill it exactly: the next accept(2) fails with EMFILE.
The daemon must then use its reserve descriptor to accept the waiting
client, answer the 421 of ftp-proxy(8) and close, instead of leaving the
client unanswered in the backlog; and once the held sessions end, a new
session must work by itself, under the same lowered limit, with a file
transferred intact.
"""

import hashlib
import os
import tempfile

import pytest

from ftplab import clients
from ftplab import daemon as daemonmod
from ftplab import procs
from ftplab import servers

HELD = 3
FILE_NAME = "data.bin"
FILE_SIZE = 256 * 1024 + 7
REFUSAL = "421 Proxy out of file descriptors, try again later."
# "At once": the old daemon retried every second and never answered.
ANSWER_WITHIN = 2.0


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


@pytest.fixture(scope="module")
def fd_env(lab, workdir, logdir, binary):
    """The run's lab with a vsftpd and a daemon of this module's own."""
    if not servers.available("vsftpd"):
        pytest.skip("vsftpd not installed (regress/linux/install-deps.sh)")
    data = os.urandom(FILE_SIZE)
    server = servers.make("vsftpd", lab, tempfile.mkdtemp(dir=workdir, prefix="vsftpd-fd"),
                          {FILE_NAME: data}).start()
    d = None
    try:
        d = daemonmod.Daemon(lab, 4, options=["-m", "20"], logdir=logdir,
                             name="ftp-proxy-fd", binary=binary).start()
        yield lab, d, server, workdir, hashlib.sha256(data).hexdigest()
        assert d.stop() == 0, "daemon did not exit 0 on SIGTERM:\n" + d.log_tail()
    finally:
        if d is not None and d.alive():
            d.stop()
        server.stop()


def hold_session(lab, host, port):
    c = clients.Interactive(lab, "hold", host, port, timeout=20)
    state = c.read_json(30)
    assert state.get("state") == "READY", "client could not log in: %s" % state
    return c


def greet(lab, host, port):
    out = clients.ftpc(lab, "greet", host, port, wait=10)
    assert "error" not in out, "client: %s" % out.get("error")
    return out


def test_out_of_descriptors_refuses_at_once_and_recovers(fd_env):
    lab, d, server, workdir, data_sha = fd_env
    host, port = lab.ftp_target(4)
    held = [hold_session(lab, host, port) for _ in range(HELD)]
    try:
        soft, hard = nofile(d.pid)
        limit = lowest_free(open_descriptors(d.pid))
        set_nofile(d.pid, limit, hard)

        # Twice: the second refusal shows the reserve was taken back.
        for attempt in (1, 2):
            out = greet(lab, host, port)
            assert out["lines"] == [REFUSAL], \
                "client %d got %s, expected the 421 (daemon log:\n%s)" % (
                    attempt, out["lines"], d.log_tail())
            assert out["closed"], "connection not closed after the 421"
            assert out["elapsed"] < ANSWER_WITHIN, \
                "421 after %.1f s, not at once" % out["elapsed"]
        assert d.alive(), "daemon died:\n" + d.log_tail()
        assert nofile(d.pid)[0] == limit

        # The held sessions are untouched by the refusals.
        for c in held:
            result = c.finish(30)
            assert result.get("noop", "").startswith("200"), \
                "held session broken: %s" % result
    finally:
        for c in held:
            c.kill()

    # Under the same lowered limit, the freed descriptors serve again.
    procs.wait_for(lambda: lowest_free(open_descriptors(d.pid)) <= limit - 2,
                   10, what="the held sessions' descriptors to be freed")
    local = os.path.join(workdir, "got.bin")
    r = clients.transfer(lab, "explicit", 4, "EPSV", "get", FILE_NAME, local,
                         target=(host, port), timeout=20)
    assert r.ok, "transfer after recovery failed: %s\n%s" % (r.error, d.log_tail())
    assert servers.sha256_file(local) == data_sha, "file arrived damaged"
    assert nofile(d.pid)[0] == limit
    set_nofile(d.pid, soft, hard)
