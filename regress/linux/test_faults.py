"""Faults: peers that die, a table under attack, a daemon killed.

The environment: ftp-proxy (IPv4, default options) and vsftpd serving a
16 MiB file. A transfer "in flight" is a PASV download the client has read
the first MiB of: the server is then blocked on a full socket, mid-file.

Every case ends with ftplab.trial.common_checks (daemon alive, only allowed
pinholes ever installed, none left), and most check that the daemon's open
file descriptors are back to what they were before the case.
"""

import hashlib
import os
import re
import signal
import socket
import struct
import time

import pytest

from ftplab import checks
from ftplab import lab as labmod
from ftplab import nsnet
from ftplab import pinwatch
from ftplab import procs
from ftplab import procstat
from ftplab import vsftpd_many
from ftplab.evil_client import Client, read_all
from ftplab.plugin import group_env
from ftplab.replies import SHUTDOWN
from ftplab.trial import case

BIG = "big.bin"
BIG_SIZE = 16 << 20
SMALL = "small.bin"
SMALL_SIZE = 64 << 10
MIB = 1 << 20


def start_group(env):
    files = {BIG: os.urandom(BIG_SIZE), SMALL: os.urandom(SMALL_SIZE)}
    env.sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    os.makedirs(env.path("faults"), exist_ok=True)
    env.server = vsftpd_many.start(env.lab, env.path("faults"), files, 200)
    env.start_daemon(4, [])


# -- building blocks -----------------------------------------------------------

def pasv(c):
    """PASV on control connection c: the port the client is told."""
    reply = c.command(b"PASV")
    m = re.search(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply or b"")
    assert m, "PASV answered %r" % reply
    n = [int(x) for x in m.groups()]
    return n[4] * 256 + n[5]


def logged_in(t, family=4):
    c = Client(t.lab, family)
    t.closers.append(c.close)
    assert c.login(), "login through the proxy failed: %r" % c.data
    return c


def start_download(t, name=BIG, first=MIB):
    """A PASV download in flight: (control client, data socket, sha256
    object, bytes read so far)."""
    c = logged_in(t)
    assert (c.command(b"TYPE I") or b"").startswith(b"200"), "TYPE I refused"
    port = pasv(c)
    data = nsnet.connect(t.lab.client, labmod.SERVER4, port, 10)
    t.closers.append(data.close)
    reply = c.command(b"RETR " + name.encode())
    assert reply and reply.startswith(b"150"), "RETR answered %r" % reply
    h = hashlib.sha256()
    got = read_some(data, first, h)
    assert got == first, "only %d bytes of the download arrived" % got
    return c, data, h, got


def read_some(sock, n, h, timeout=20):
    """Read up to n bytes (until EOF), feeding h; the count read."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < n and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(min(65536, n - got))
        except OSError:
            break
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    return got


def full_download(t, name=SMALL):
    """A whole PASV download and QUIT; fails unless the sha256 is right."""
    c = logged_in(t)
    c.command(b"TYPE I")
    port = pasv(c)
    data = nsnet.connect(t.lab.client, labmod.SERVER4, port, 10)
    c.send(b"RETR " + name.encode() + b"\r\n")
    body = read_all(data, 30)
    assert hashlib.sha256(body).hexdigest() == t.env.sha[name], (
        "download of %s through the proxy: %d bytes, wrong sha256" % (name, len(body)))
    c.wait_lines(c.line_count() + 2, 10)
    reply = c.command(b"QUIT")
    assert reply and reply.startswith(b"221"), "QUIT answered %r" % reply
    c.close()


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_fds(t, base, timeout=5):
    """Poll until the daemon holds no more descriptors than base."""
    pid = t.daemons[4].pid
    try:
        procs.wait_for(lambda: procstat.fd_count(pid) <= base, timeout, what="fds back")
    except TimeoutError:
        pytest.fail("daemon holds %d descriptors, %d before the case"
                   % (procstat.fd_count(pid), base))
    t.say("daemon descriptors back to %d" % base)


def session_processes(t):
    return procstat.descendants(t.env.server.proc.pid)


def wait_session_processes_gone(t, timeout=10):
    try:
        procs.wait_for(lambda: not session_processes(t), timeout, what="vsftpd sessions gone")
    except TimeoutError:
        pytest.fail("vsftpd session processes still there: the daemon did not close its "
                   "server connection")


# -- the cases ------------------------------------------------------------------

def server_dies_mid_transfer(t):
    """SIGKILL of the server's session processes in the middle of a
    download: the data connection ends short, the daemon closes the client's
    control connection, and the next session works."""
    base = procstat.fd_count(t.daemons[4].pid)
    c, data, h, got = start_download(t)
    t.track()
    pids = session_processes(t)
    assert pids, "no vsftpd session process found"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    got += read_some(data, BIG_SIZE, h, timeout=20)
    assert got < BIG_SIZE, "the whole file arrived although the server died"
    assert c.wait_closed(10), "control connection still open 10 s after the server died"
    t.say("download ended at %d of %d bytes; client control got %r after the 150, "
          "then the close" % (got, BIG_SIZE, c.data.split(b"150", 1)[-1].split(b"\n", 1)[-1]))
    wait_fds(t, base)
    full_download(t)
    t.say("next session: full download, sha256 right")


def client_resets_mid_transfer(t):
    """The client resets control and data connections (SO_LINGER 0) in the
    middle of a download: the daemon ends the session, closes its server
    connection (vsftpd's session processes exit), frees its descriptors."""
    base = procstat.fd_count(t.daemons[4].pid)
    c, data, h, got = start_download(t)
    t.track()
    c.rst()
    rst(data)
    wait_session_processes_gone(t)
    wait_fds(t, base)
    full_download(t)
    t.say("server session gone after the RST; next session: full download, sha256 right")


def client_resets_idle(t):
    """A RST right after login: the same clean end, no pinhole involved."""
    base = procstat.fd_count(t.daemons[4].pid)
    c = logged_in(t)
    t.track()
    c.rst()
    wait_session_processes_gone(t)
    wait_fds(t, base)


def negotiated(t):
    """A logged-in session with a PASV pinhole waiting: (client, pport)."""
    c = logged_in(t)
    t.track()
    c.command(b"TYPE I")
    return c, pasv(c)


def retr_small_through(t, c, port, when):
    """RETR of SMALL through the PASV pinhole on port: the bytes that arrive
    must be the file."""
    data = nsnet.connect(t.lab.client, labmod.SERVER4, port, 10)
    c.send(b"RETR %s\r\n" % SMALL.encode())
    body = read_all(data, 20)
    assert hashlib.sha256(body).hexdigest() == t.env.sha[SMALL], (
        "transfer through the pinhole %s: %d bytes" % (when, len(body)))


def table_text(t):
    """The daemon's elements as text, without their expiry times."""
    return pinwatch.element_texts(checks.nft_table(t.lab, *t.daemons[4].table))


FOREIGN = [
    "delete table ip ftp-proxy-8021",
    "flush table ip ftp-proxy-8021",
    "delete set ip ftp-proxy-8021 once",
    "flush set ip ftp-proxy-8021 once",
    "delete chain ip ftp-proxy-8021 prerouting",
    "add element ip ftp-proxy-8021 rdr_to { 192.0.2.2 . 198.51.100.2 . 60000 : 203.0.113.9 . 25 }",
    "add element ip ftp-proxy-8021 once { 192.0.2.2 . 198.51.100.2 . 60000 }",
    "add rule ip ftp-proxy-8021 prerouting accept",
]


def foreign_writes_refused(t):
    """With the owner flag no other process can change the daemon's table:
    `nft delete table` and every other write fail, the pinhole stays, the
    session goes on and its transfer works."""
    c, port = negotiated(t)
    before = table_text(t)
    refused = []
    for cmd in FOREIGN + ["delete element ip ftp-proxy-8021 once { 192.0.2.2 . 198.51.100.2 . %d }"
                          % port]:
        cp = procs.run(["nft"] + cmd.split(), ns=t.lab.gateway, check=False, timeout=10)
        assert cp.returncode != 0, "`nft %s` succeeded" % cmd
        refused.append(cp.stderr.strip().splitlines()[0] if cp.stderr.strip() else "?")
    t.say("%d foreign writes refused, e.g. `nft delete table ip ftp-proxy-8021`: %s"
          % (len(refused), refused[0]))
    assert table_text(t) == before, "the table changed: %s" % table_text(t)
    retr_small_through(t, c, port, "after the attempts")
    # The transfer's 226 first, so that the next line is the NOOP's reply.
    assert c.wait(lambda c: any(l.startswith(b"226") for l in c.lines()), 10), \
        "no 226 after the transfer: %r" % c.data[-300:]
    reply = c.command(b"NOOP")
    assert reply is not None and reply.startswith(b"200"), \
        "NOOP after the attempts got %r (session: %r)" % (reply, c.data[-300:])
    assert b"421" not in c.data, "the session got a 421: %r" % c.data
    t.say("pinhole intact, transfer through it right, session goes on")


def flush_ruleset(t):
    """`nft flush ruleset` skips the owned table on this kernel: the daemon's
    pinholes survive and it never notices. It does remove the admin's own
    table (the redirect and the forward policy) until the admin reloads it."""
    c, port = negotiated(t)
    before = table_text(t)
    cp = procs.run(["nft", "flush", "ruleset"], ns=t.lab.gateway, check=False, timeout=10)
    assert cp.returncode == 0, "nft flush ruleset failed: %s" % cp.stderr.strip()
    try:
        tables = procs.run(["nft", "list", "tables"], ns=t.lab.gateway).stdout.split("\n")
        t.say("after flush ruleset: %s" % ", ".join(l.strip() for l in tables if l.strip()))
        assert table_text(t) == before, "the daemon's table changed: %s" % table_text(t)
        retr_small_through(t, c, port, "after the flush")
        c.wait_lines(c.line_count() + 2, 5)
        reply = c.command(b"NOOP")
        assert reply and reply.startswith(b"200"), "session after the flush: %r" % reply
        t.say("daemon's table and pinhole untouched; transfer right; session goes on")
        try:
            Client(t.lab, timeout=2).close()
            outcome = "connected"
        except OSError as e:
            outcome = type(e).__name__
        t.say("a new client without the admin's redirect: %s" % outcome)
    finally:
        t.lab.load_admin_rules()
    full_download(t)
    t.say("admin rules reloaded: new session and transfer work")


def sigkill_daemon(t):
    """SIGKILL of the daemon mid-download: the kernel removes its owned
    table at once; the established data connection goes on to the last
    byte; a restart works."""
    c, data, h, got = start_download(t)
    d = t.daemons[4]
    d.proc.stop(signal.SIGKILL)
    killed = time.monotonic()
    try:
        procs.wait_for(lambda: checks.nft_table(t.lab, *d.table) is None, 2, interval=0.02,
                       what="table gone")
    except TimeoutError:
        pytest.fail("table %s %s still there 2 s after SIGKILL" % d.table)
    gone = time.monotonic() - killed
    got += read_some(data, BIG_SIZE, h, timeout=30)
    assert got == BIG_SIZE and h.hexdigest() == t.env.sha[BIG], (
        "data connection after SIGKILL: %d of %d bytes%s" % (
            got, BIG_SIZE, ", sha256 wrong" if got == BIG_SIZE else ""))
    assert c.wait_closed(5), "control connection not closed by the killed daemon"
    t.say("table gone %.0f ms after SIGKILL; the data connection delivered all %d bytes, "
          "sha256 right" % (gone * 1000, got))
    t.env.start_daemon(4, [])
    full_download(t)
    t.say("restarted: full download works")


STALE = """
table ip ftp-proxy-8021 {
    set once { type ipv4_addr . ipv4_addr . inet_service; flags timeout;
        elements = { 192.0.2.2 . 198.51.100.2 . 60001 timeout 1h } }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip saddr . ip daddr . tcp dport @once dnat ip to 203.0.113.9
    }
}
"""


def restart_replaces_stale_table(t):
    """A left-over table of the same name (not owned: an older daemon or an
    admin's mistake) is replaced at start-up: the daemon starts, its table
    is owned and holds none of the stale elements or rules."""
    d = t.daemons[4]
    status = d.stop()
    assert status == 0, "SIGTERM: exit %s" % status
    t.lab.nft(STALE)
    try:
        t.env.start_daemon(4, [])
    except Exception as e:
        pytest.fail("daemon did not start over a stale table: %s" % str(e).splitlines()[0])
    listing = procs.run(["nft", "list", "table", "ip", "ftp-proxy-8021"], ns=t.lab.gateway).stdout
    assert "203.0.113.9" not in listing and "60001" not in listing, (
        "stale content survived the restart:\n%s" % listing)
    assert "owner" in listing, "the new table is not owned"
    cp = procs.run(["nft", "delete", "table", "ip", "ftp-proxy-8021"], ns=t.lab.gateway,
                   check=False)
    assert cp.returncode != 0, "the new table can be deleted by another process"
    full_download(t)
    t.say("stale table replaced by an owned one; transfer works")


def sigterm_under_load(count):
    def fn(t):
        """SIGTERM with many sessions open, half with a pinhole waiting and
        one download in flight: every client gets 421 and the close, exit 0,
        the table is gone, the in-flight data connection completes."""
        clients = []
        for i in range(count):
            c = logged_in(t)
            if i % 2:
                pasv(c)
            clients.append(c)
        busy, data, h, got = start_download(t)
        table = checks.nft_table(t.lab, *t.daemons[4].table)
        holes = checks.pinhole_count(table)
        d = t.daemons[4]
        status = d.stop()
        del t.env.daemons[4]
        assert status == 0, "exit status %s after SIGTERM" % status
        assert checks.nft_table(t.lab, *d.table) is None, "table still there after exit"
        bad = []
        for c in clients + [busy]:
            if not c.wait_closed(5) or not c.data.endswith(SHUTDOWN):
                bad.append(c.data[-60:])
        assert not bad, (
            "%d of %d clients did not get %r and the close, e.g. %r"
            % (len(bad), count + 1, SHUTDOWN, bad[0] if bad else b""))
        got += read_some(data, BIG_SIZE, h, timeout=30)
        assert got == BIG_SIZE and h.hexdigest() == t.env.sha[BIG], (
            "in-flight download after SIGTERM: %d of %d bytes" % (got, BIG_SIZE))
        t.say("%d sessions (%d kernel elements) ended with %r, exit 0, table gone; the "
              "in-flight download completed" % (count + 1, holes, SHUTDOWN))
    return fn


def sigterm_under_load_sized(t):
    """sigterm_under_load: 20 sessions with --quick, 90 without."""
    sigterm_under_load(20 if t.quick else 90)(t)


# -- the suite --------------------------------------------------------------------

CASES = [
    case("foreign-writes-refused", foreign_writes_refused),
    case("flush-ruleset", flush_ruleset),
    case("server-dies-mid-transfer", server_dies_mid_transfer),
    case("client-resets-mid-transfer", client_resets_mid_transfer),
    case("client-resets-after-login", client_resets_idle),
    case("sigkill-daemon", sigkill_daemon),
    case("restart-replaces-stale-table", restart_replaces_stale_table),
    # Last: it stops the daemon (SIGTERM) and checks how it ended.
    case("sigterm-under-load", sigterm_under_load_sized),
]


@pytest.fixture(scope="module")
def env(lab, binary, logdir, workdir, quick):
    yield from group_env("faults", lab, binary, logdir, workdir, quick, start_group)


@pytest.mark.parametrize("case", CASES)
def test_faults(trial, case):
    trial.run(case)
