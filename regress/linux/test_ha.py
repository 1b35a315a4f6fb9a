"""ftp-proxy on a high-availability pair: keepalived moves the shared
addresses, conntrackd copies the connection states (regress/linux/ftplab/ha.py).

    cd regress/linux && pytest -v test_ha.py      (as root)

The cases run in order on one lab, each starting from where the previous
one left it:

  pair          a is master, b backup; a session through the shared
                address lands on a
  failover      a fails with downloads flowing (PASV, PORT over IPv4, EPSV,
                EPRT over IPv6) and sessions idle: every download finishes
                intact through b, the idle sessions end with a reset, a new
                session works on b at once; a comes back as backup
  restart       a's ftp-proxy restarted while b serves downloads: b's
                sessions never notice
  failback      b fails the same way: everything moves back to a
  standby needs no table
                a fails again, b's ftp-proxy stopped beforehand and started
                only once b is master: the downloads survive all the same
  late commit   b fails, and a writes the copied states into its kernel
                2 s after it took the shared addresses: the packets that
                arrive in between are dropped, not reset (dist/ha's
                nftables.conf), and the downloads survive all the same
  nothing stale every pinhole ever added had an allowed shape, none is left
                on either host; each host's keepalived, ftp-proxy and
                conntrackd exit 0 on SIGTERM, every table gone, keepalived's
                VRRP child gone with its parent

A gateway fails as ha.Gateway.crash() makes it: its links cut first, then
its processes killed by PID, so that, as with a real crash, it sends
nothing more (no FIN from its ftp-proxy, no priority-0 advertisement from
keepalived) and the other learns of it only by the missing advertisements.

The run is bounded by the plugin's --max-seconds (make ha passes 300).
Each move is measured (printed at the end of the run with the other
figures): from the failure to the new master's VRRP state, to the copied
states in its kernel, to the shared addresses on its links, to the first
session accepted there; and how many downloads in flight survived.
"""

import hashlib
import os
import shutil
import tempfile
import time

import pytest

from ftplab import checks
from ftplab import clients
from ftplab import daemon as daemonmod
from ftplab import ha
from ftplab import lab as labmod
from ftplab import pinwatch
from ftplab import procs
from ftplab import servers

BIG, SMALL = "big.bin", "small.bin"
BIG_SIZE, SMALL_SIZE = 4 << 20, 64 << 10
# Each data command in the family it belongs to, twice: N = 8 downloads.
MODES = ((4, "PASV"), (4, "PORT"), (6, "EPSV"), (6, "EPRT"))
PER_MODE = 2
# Received before the failure, so the transfer is really flowing.
FLOWING = 256 << 10
# Received after it at the least, through the new master: vsftpd sends at
# its rate limit, so hardly anything waits in socket buffers.
AFTER = BIG_SIZE // 3
MOVE_TIMEOUT = 20
# How late the commit comes in the late-commit case: longer than a
# retransmission takes to reach the new master once it holds the addresses.
LATE_COMMIT = 2
TRANSFER_TIMEOUT = 60


class Env:
    def __init__(self, lab, workdir, logdir, files, figures):
        self.lab = lab
        self.workdir = workdir
        self.logdir = logdir
        self.sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        self.server = None
        self.watches = []
        self.figures = figures     # the run's, printed at its end (plugin.py)

    def host(self, name):
        return self.lab.hosts[name]


@pytest.fixture(scope="module")
def env(binary, logdir, workdir, figures):
    """The two-gateway lab, under the run's work directory, its logs in
    <logdir>/ha. At the end every host is stopped in order: each process
    must exit 0 (keepalived, conntrackd, any ftp-proxy still running, its
    table gone); then the namespaces are deleted."""
    missing = [t for t in ("keepalived", "conntrackd", "conntrack", "nft", "vsftpd")
               if shutil.which(t) is None]
    if missing:
        pytest.skip("not installed: %s (regress/linux/install-deps.sh ha)" % " ".join(missing))
    started = time.monotonic()
    hadir = procs.work_dir("ha-", workdir)
    halog = os.path.join(logdir, "ha")
    os.makedirs(halog, exist_ok=True)
    files = {BIG: os.urandom(BIG_SIZE), SMALL: os.urandom(SMALL_SIZE)}
    lab = ha.HaLab(hadir, halog, binary)
    e = Env(lab, hadir, halog, files, figures)
    stopped = {}
    try:
        lab.up()
        e.server = ha.RateLimitedVsftpd(lab, tempfile.mkdtemp(dir=hadir), files).start()
        lab.start_pair()
        for g in lab.hosts.values():
            os.makedirs(os.path.join(halog, g.name), exist_ok=True)
            for family, d in g.daemons.items():
                e.watches.append((g, family, pinwatch.Watch(
                    g, family, d.table, os.path.join(halog, g.name))))
        yield e
    finally:
        for _, _, w in e.watches:
            w.stop()
        try:
            stopped = lab.stop_all_hosts()
        finally:
            if e.server is not None:
                e.server.stop()
            lab.down()
            figures["time/ha"] = "%.0f s" % (time.monotonic() - started)
    problems = ["%s: %s exited %s after SIGTERM" % (name, what, status)
                for name, (statuses, _) in sorted(stopped.items())
                for what, status in sorted(statuses.items()) if status != 0]
    problems += ["%s: %s" % (name, p) for name, (_, ps) in sorted(stopped.items()) for p in ps]
    assert not problems, "; ".join(problems)


# -- helpers --------------------------------------------------------------------


def established_marked(lines):
    return [l for l in lines if " ESTABLISHED " in l]


def small_transfer(env, family, cmd):
    """A whole session through the shared address: download SMALL and
    compare its sha256."""
    local = os.path.join(env.workdir, "small-%d-%s-%f" % (family, cmd, time.monotonic()))
    r = clients.transfer(env.lab, "explicit", family, cmd, "get", SMALL, local)
    assert r.ok, "%s v%d: %s" % (cmd, family, r.error)
    assert servers.sha256_file(local) == env.sha[SMALL], "%s v%d: file differs" % (cmd, family)
    assert r.sent == [cmd], r.sent


def hold(env, family):
    """An idle session held by ftpc.py (it sends NOOP when told)."""
    c = clients.Interactive(env.lab, "hold", labmod.addr(family, "server"), 21, timeout=10)
    assert c.read_json(15).get("state") == "READY"
    return c


def no_pinholes(host):
    for d in host.daemons.values():
        why = checks.wait_no_pinholes(host, *d.table, timeout=5)
        assert why is None, "%s: %s" % (host, why)


def move(env, old, new, standby_ftp_proxy=True, note=""):
    """Fail old with downloads flowing and sessions idle on it; check and
    measure everything the move must keep or end; reboot old as backup.

    Without standby_ftp_proxy the standby's ftp-proxy is stopped, its table
    gone, before the failure, and started only once the standby is master:
    the downloads must survive all the same. note goes into the figure's
    name."""
    lab, mark = env.lab, lab_mark(env)
    assert lab.master() is old, "%s should hold the shared addresses" % old
    new_pids = {f: d.pid for f, d in new.daemons.items()}
    idle = [hold(env, 4), hold(env, 6)]
    dls = ha.downloads(lab, MODES, BIG, PER_MODE)
    n = len(dls)

    # Flowing, and every data connection already copied to the standby.
    procs.wait_for(lambda: all(d.flowing(FLOWING) or d.done() for d in dls), MOVE_TIMEOUT,
                   what="every download flowing")
    assert not [d for d in dls if d.done()], \
        "finished before the failure: %s" % [(d, d.t_end - d.t_start) for d in dls if d.done()]
    procs.wait_for(lambda: len(established_marked(new.external_cache(mark))) >= n,
                   MOVE_TIMEOUT, what="%d data connections in %s's external cache" % (n, new))
    assert old.established() >= len(idle) + n, "control connections on %s" % old
    # The standby's table holds no pinhole (the sessions are the master's),
    # and the downloads will not need one there: their translation and mark
    # are in the copied states.
    for d in new.daemons.values():
        assert checks.pinhole_count(checks.nft_table(new, *d.table)) == 0, \
            "pinholes on the standby %s" % new
    # Only data connections are copied: a control connection ends in the
    # master's own ftp-proxy and means nothing to the other host.
    copied_control = [l for l in new.ctl("-e").stdout.splitlines() if " dport=21 " in l]
    assert not copied_control, "control connections copied: %s" % copied_control[:3]

    if not standby_ftp_proxy:
        problems = daemonmod.stop_checked(new.daemons)
        new.daemons = {}
        assert not problems, "%s: %s" % (new, "; ".join(problems))
    failed_at = old.crash()
    try:
        before = [d.received for d in dls]
        # The new master: its notify script (state, commit done), the shared
        # addresses on its links, the first session it accepts.
        master = procs.wait_for(lambda: new.became("MASTER", failed_at), MOVE_TIMEOUT,
                                what="%s MASTER" % new)
        procs.wait_for(lambda: len(new.has_shared()) == 4, MOVE_TIMEOUT,
                       what="shared addresses on %s" % new)
        shared_at = time.time()
        if not standby_ftp_proxy:
            new.start_daemons()
            new_pids = {f: d.pid for f, d in new.daemons.items()}
        tried = {"attempts": 0, "why": None}

        def session():
            tried["attempts"] += 1
            ftp, tried["why"] = ha.try_session(lab)
            return ftp
        try:
            ftp = procs.wait_for(session, MOVE_TIMEOUT, interval=0.1, what="a session on %s" % new)
        except TimeoutError:
            raise AssertionError("no session on %s after %d attempts in %d s: %s"
                                 % (new, tried["attempts"], MOVE_TIMEOUT, tried["why"]))
        session_at = time.time()
        attempts = tried["attempts"]
        assert new.established() >= 1, "the new session is not on %s" % new
        ftp.quit()
        # The copied states are in the new master's kernel, mark included.
        committed = established_marked(new.kernel_marked(mark))
        assert len(committed) >= n, "%d of %d data connections in %s's kernel with mark %#x" % (
            len(committed), n, new, mark)

        # Every download finishes intact, most of it through the new master.
        for d in dls:
            assert d.join(TRANSFER_TIMEOUT), "%s still running" % d
        survived = [d for d in dls if d.error is None and d.received == BIG_SIZE
                    and d.sha.hexdigest() == env.sha[BIG]]
        env.figures["ha/%s -> %s%s" % (old.name, new.name, note)] = (
            "MASTER after %.2f s, states in its kernel after %.2f s, shared "
            "addresses seen after %.2f s, first new session after %.2f s (%d attempt%s); "
            "in-flight downloads surviving: %d of %d" % (
                master[1] - failed_at,
                master[2] - failed_at, shared_at - failed_at, session_at - failed_at, attempts,
                "" if attempts == 1 else "s", len(survived), n))
        assert len(survived) == n, "lost: %s" % [
            (d, d.error, d.received) for d in dls if d not in survived]
        for d, b in zip(dls, before):
            assert BIG_SIZE - b >= AFTER, "%s: only %d bytes after the failure" % (d, BIG_SIZE - b)
            # Its control connection ended with the old master.
            assert "ConnectionResetError" in (d.control_error or ""), \
                "%s: control replies %s, %s" % (d, d.replies, d.control_error)

        # The idle sessions are over: the next command gets a reset from the
        # new master, which has no such connection.
        for c in idle:
            c.say()
            out = c.finish(15)
            assert "ConnectionResetError" in out.get("error", ""), \
                "an idle session after the move: %s" % out
        # And at once a new session, every data command, works on the new master.
        for family, cmd in MODES:
            small_transfer(env, family, cmd)

        # The new master's ftp-proxy ran throughout; the old one's are gone
        # with their sockets; no pinhole is left.
        assert {f: d.pid for f, d in new.daemons.items() if d.alive()} == new_pids
        assert old.daemons == {} and old.established() == 0
        no_pinholes(new)
        for d in new.daemons.values():
            assert checks.nft_table(old, *d.table) is None, "%s kept a table" % old
    finally:
        # The failed host comes back, whatever the checks found, so that the
        # next case starts from a pair: backup, without the shared
        # addresses, an empty table, and the master's states copied again.
        rebooted_at = time.time()
        old.reboot()
        procs.wait_for(lambda: old.became("BACKUP", rebooted_at), MOVE_TIMEOUT,
                       what="%s BACKUP" % old)
    assert old.has_shared() == set() and lab.master() is new
    no_pinholes(old)


def lab_mark(env):
    return env.lab.accept_mark


# -- the cases ----------------------------------------------------------------


def test_pair(env):
    a, b = env.host("a"), env.host("b")
    assert env.lab.master() is a
    assert a.state() == "MASTER" and b.state() == "BACKUP"
    assert len(a.has_shared()) == 4
    before = a.established()
    ftp, why = ha.try_session(env.lab)
    assert ftp is not None, why
    assert a.established() == before + 1 and b.established() == 0
    ftp.quit()
    for family, cmd in MODES:
        small_transfer(env, family, cmd)
    no_pinholes(a)
    no_pinholes(b)


def test_failover(env):
    move(env, env.host("a"), env.host("b"))


def test_restart_one_daemon_leaves_the_other_alone(env):
    """The standby's ftp-proxy restarted (SIGTERM, exit 0, table gone, new
    table) while the master serves downloads and an idle session."""
    a, b = env.host("a"), env.host("b")
    assert env.lab.master() is b
    b_pids = {f: d.pid for f, d in b.daemons.items()}
    idle = hold(env, 4)
    dls = ha.downloads(env.lab, MODES, BIG)
    procs.wait_for(lambda: all(d.flowing(FLOWING) or d.done() for d in dls), MOVE_TIMEOUT,
                   what="every download flowing")
    problems = daemonmod.stop_checked(a.daemons)
    a.daemons = {}
    assert not problems, "a: %s" % "; ".join(problems)
    a.start_daemons()
    for d in dls:
        assert d.join(TRANSFER_TIMEOUT), "%s still running" % d
        assert d.error is None and d.sha.hexdigest() == env.sha[BIG], (d, d.error, d.received)
        assert [r[:3] for r in d.replies] == ["226", "200"], (d, d.replies, d.control_error)
    idle.say()
    out = idle.finish(15)
    assert out.get("noop", "").startswith("200"), out
    assert {f: d.pid for f, d in b.daemons.items() if d.alive()} == b_pids
    no_pinholes(a)
    no_pinholes(b)


def test_failback(env):
    move(env, env.host("b"), env.host("a"))


def test_standby_needs_no_table(env):
    """The standby's ftp-proxy and its table play no part in a move: a
    failover with them absent keeps every download flowing."""
    move(env, env.host("a"), env.host("b"), standby_ftp_proxy=False,
         note=" (its ftp-proxy started only then)")


def test_late_commit(env):
    """The new master's commit held back LATE_COMMIT seconds after it took
    the shared addresses: the data connections' packets that reach it in
    between, which it cannot place yet, must be dropped (dist/ha's `pickup`
    chain), not reset; the server sends them again and every download
    survives."""
    a = env.host("a")
    a.late_commit(LATE_COMMIT)
    move(env, env.host("b"), a, note=" (its commit %d s late)" % LATE_COMMIT)


def test_nothing_stale(env):
    for g, family, w in env.watches:
        bad = w.violations(0)
        assert not bad, "%s -%d: %s" % (g, family, bad[:5])
        assert w.count_added(0) > 0, "%s -%d never saw a pinhole" % (g, family)
    for g in env.lab.hosts.values():
        no_pinholes(g)
    # Each host's orderly shutdown: keepalived, ftp-proxy and conntrackd
    # exit 0 on SIGTERM, every table gone, no VRRP child left.
    for name, (statuses, problems) in sorted(env.lab.stop_all_hosts().items()):
        assert set(statuses) == {"keepalived", "conntrackd"}, (name, statuses)
        assert all(s == 0 for s in statuses.values()), "%s: %s" % (name, statuses)
        assert not problems, "%s: %s" % (name, "; ".join(problems))
