"""The end-to-end cases: real FTP servers and clients, three network
namespaces, the ftp-proxy daemon on the gateway.

Each class is one set-up of daemons (SETUP, a name in ftplab.context.SETUPS)
that its cases share; its last case sends SIGTERM to those daemons, which
must exit 0 and take their tables with them. Cases that take a `server`
parameter run against each FTP server; the others against the first of
--servers. Transfers are checked as ftplab/context.py describes.

    pytest -v test_netns.py -k TestTag                  one set-up
    pytest -v test_netns.py -k "vsftpd and curl and v6" part of the matrix
    pytest -v test_netns.py --kind helper               the matrix through the
                                                        kernel's FTP helper
"""

import json
import os
import signal

import pytest

from ftplab import checks
from ftplab import clients
from ftplab import daemon as daemonmod
from ftplab import lab as labmod
from ftplab import procs
from ftplab import servers
from ftplab.context import (FILE_NAME, TAG, check_after_session, do_transfer, start_daemon,
                            table_gone)
from ftplab.plugin import any_kind


# -- pinholes in the kernel ----------------------------------------------------

def pinhole_visible(family, cmd, also=(), absent=()):
    """Pause the client right after the data command's reply: the daemon's
    table must then hold the pinhole (elements naming the client's and the
    server's addresses, and any address in also but none in absent, with a
    timeout); after the transfer and QUIT, none."""
    def fn(ctx):
        host, port = ctx.target(family)
        daemon = ctx.daemons[family]
        local = os.path.join(ctx.workdir, ctx.unique("pause"))
        c = clients.Interactive(ctx.lab, "transfer", host, port, flavour="explicit", cmd=cmd,
                                pause=True, direction="get", remote=FILE_NAME, local=local,
                                timeout=20)
        try:
            state = c.read_json(30)
            assert state.get("state") == "READY", "client did not negotiate: %s" % state
            table = checks.nft_table(ctx.lab, *daemon.table)
            assert table is not None, "table %s %s missing" % daemon.table
            text = checks.describe(table)
            ctx.note("pinholes while negotiated: " + text)
            assert checks.pinhole_count(table) > 0, (
                "no element in any set/map of %s %s after %s" % (daemon.table + (cmd,)))
            wanted = [(who, labmod.addr(family, who)) for who in ("client", "server")]
            for want in also:
                wanted.append(("address", want))
            for who, want in wanted:
                assert want in text, (
                    "no pinhole element mentions the %s %s: %s"
                    % (who, want, text))
            for unwanted in absent:
                assert '"%s"' % unwanted not in text, (
                    "a pinhole element mentions %s: %s" % (unwanted, text))
            for name, s in checks.sets(table).items():
                for e in s.get("elem", []):
                    text_e = json.dumps(e)
                    assert '"timeout"' in text_e or '"expires"' in text_e or "timeout" in s, (
                        "element of %s has no timeout: %s" % (name, text_e))
            c.say()
            result = c.finish(60)
        finally:
            c.kill()
        assert "error" not in result, "transfer after the pause failed: %s" % result.get("error")
        sha = servers.sha256_file(local)
        os.unlink(local)
        assert sha == ctx.data_sha, "sha256 of the downloaded bytes differs"
        check_after_session(ctx, {}, 0)
    return fn


def one_connection_per_pinhole(family, cmd):
    """pf's "max 1": a pinhole lets one data connection through. A second
    connection to the same port must be dropped by the firewall (timeout),
    not forwarded to the server (which would refuse it: its passive port is
    closed after the first connection)."""
    def fn(ctx):
        host, port = ctx.target(family)
        out = clients.ftpc(ctx.lab, "reuse", host, port, cmd=cmd, wait=3)
        ctx.note("reuse: %s" % out)
        assert "error" not in out, "client: %s" % out.get("error")
        assert out["first"] == "connected", "first data connection: %s" % out["first"]
        assert out["second"] == "timeout", (
            "second connection through the same pinhole: %s (expected it dropped)"
            % out["second"])
        check_after_session(ctx, {}, 0)
    return fn


def conntrack_mark(mark):
    """After a transfer, the gateway's conntrack entry of the data connection
    carries the mark that the admin's accept line matches."""
    def fn(ctx):
        checks.conntrack_flush(ctx.lab)
        do_transfer(ctx, "explicit", 4, "PASV", "get")
        entries = checks.conntrack_marked(ctx.lab, mark)
        data = [e for e in entries if "dport=21 " not in e and "dport=%d " % labmod.PROXY_PORT not in e]
        assert data, "no conntrack entry with mark %d (0x%x) after a transfer" % (mark, mark)
        ctx.note("conntrack: " + " | ".join(data))
    return fn


def wrong_accept_line_blocks(ctx):
    """Negative control: with -T and the admin's accept line still on the
    default mark, the data connection must not get through."""
    ctx.lab.set_accept_mark(labmod.DEFAULT_MARK)
    try:
        try:
            do_transfer(ctx, "explicit", 4, "PASV", "get", timeout=3)
        except AssertionError as e:
            ctx.note("expected failure: %s" % e)
        else:
            pytest.fail("transfer worked although the forward chain accepts only mark 0x%x"
                        % labmod.DEFAULT_MARK)
    finally:
        ctx.lab.set_accept_mark(TAG)
    check_after_session(ctx, {}, 0)


# -- refusals -------------------------------------------------------------------

def v6_refuses(cmd):
    """With -6 only EPSV/EPRT are allowed: PASV or PORT ends the session."""
    def fn(ctx):
        host, port = ctx.target(6)
        line = "PASV" if cmd == "PASV" else "PORT 192,0,2,2,200,10"
        out = clients.ftpc(ctx.lab, "raw", host, port, line=line, wait=10)
        assert "error" not in out, "client: %s" % out.get("error")
        ctx.note("replies: %s" % out["lines"])
        assert out["closed"], "session still open 10 s after %s under -6" % cmd
        assert not any(l[:3] in ("200", "227") for l in out["lines"]), (
            "%s accepted under -6: %s" % (cmd, out["lines"]))
        check_after_session(ctx, {}, 0)
    return fn


def bad_port(ctx):
    """PORT with a port below 1024: 421 before the close, no pinhole."""
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "raw", host, port, line="PORT 192,0,2,2,0,80", wait=10)
    assert "error" not in out, "client: %s" % out.get("error")
    ctx.note("replies: %s" % out["lines"])
    assert out["closed"], "session still open 10 s after a PORT to port 80"
    assert out["lines"] and out["lines"][-1].startswith("421"), (
        "no 421 line before the close: %s" % out["lines"])
    check_after_session(ctx, {}, 0)


def anonymous_only(ctx):
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "login", host, port, user="bob")
    assert "error" not in out, "client: %s" % out.get("error")
    replies = out["replies"]
    ctx.note("replies: %s" % replies)
    assert len(replies) >= 2 and replies[1].startswith("500"), (
        "USER bob answered %r, expected a 500 refusal" % (replies[1:2],))
    for user in ("ftp", "anonymous"):
        out = clients.ftpc(ctx.lab, "login", host, port, user=user)
        replies = out.get("replies", [])
        assert replies and replies[-1].startswith("230"), (
            "USER %s not let through under -A: %s" % (user, replies or out))
    check_after_session(ctx, {}, 0)


def max_sessions(ctx):
    """-m 1: a second client gets 421 and a close; the first one goes on."""
    host, port = ctx.target(4)
    first = clients.Interactive(ctx.lab, "hold", host, port, timeout=20)
    try:
        state = first.read_json(30)
        assert state.get("state") == "READY", "first client could not log in: %s" % state
        out = clients.ftpc(ctx.lab, "greet", host, port, wait=10)
        assert "error" not in out, "second client: %s" % out.get("error")
        ctx.note("second client saw: %s" % out)
        assert out["lines"] and out["lines"][0].startswith("421"), (
            "second client got %s, expected 421" % out["lines"])
        assert out["closed"], "second client's connection not closed after the 421"
        result = first.finish(30)
    finally:
        first.kill()
    assert result.get("noop", "").startswith("200"), (
        "first session broken by the refused one: %s" % result)
    # The slot is free again: a transfer works.
    do_transfer(ctx, "explicit", 4, "EPSV", "get")


def idle_timeout(ctx):
    """-t 3: a client that says nothing gets 421 and a close after ~3 s."""
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "idle", host, port, wait=15)
    assert "error" not in out, "client: %s" % out.get("error")
    ctx.note("idle client saw: %s" % out)
    assert out["closed"], "idle session still open after 15 s with -t 3"
    assert out["elapsed"] >= 2.5, (
        "closed after %.1f s, before the 3 s idle timeout"
        % out["elapsed"])
    assert out["lines"] and out["lines"][-1].startswith("421"), (
        "no 421 line before the close: %s" % out["lines"])
    check_after_session(ctx, {}, 0)


def port20(cmd, want20):
    """-r: active-mode data connections for PORT (not EPRT) come from port 20."""
    def fn(ctx):
        r = do_transfer(ctx, "explicit", 4, cmd, "get")
        peer = r.data_peer
        assert peer, "no data peer recorded"
        if want20:
            assert peer[1] == 20, "data connection came from port %d, not 20" % peer[1]
        else:
            assert peer[1] != 20, "data connection came from port 20 for %s" % cmd
    return fn


def no_port20_by_default(ctx):
    r = do_transfer(ctx, "explicit", 4, "PORT", "get")
    assert r.data_peer and r.data_peer[1] != 20, (
        "data connection from port 20 without -r: %s" % (r.data_peer,))


# -- daemons started by the case itself ----------------------------------------

def sigkill_leaves_nothing(ctx):
    """A daemon killed with SIGKILL while a pinhole is open leaves no table
    (and so no pinhole) behind."""
    d = start_daemon(ctx, "sigkill")
    c = None
    try:
        host, port = ctx.target(4)
        c = clients.Interactive(ctx.lab, "transfer", host, port, flavour="explicit", cmd="PASV",
                                pause=True, direction="get", remote=FILE_NAME,
                                local=os.path.join(ctx.workdir, ctx.unique("killed")), timeout=5)
        state = c.read_json(30)
        assert state.get("state") == "READY", "client did not negotiate: %s" % state
        table = checks.nft_table(ctx.lab, *d.table)
        assert checks.pinhole_count(table or []) > 0, "no pinhole before the kill"
        os.kill(d.pid, signal.SIGKILL)
        d.proc.popen.wait(10)
        assert table_gone(ctx, d), (
            "table %s %s still there after SIGKILL: %s"
            % (d.table + (checks.describe(checks.nft_table(ctx.lab, *d.table)),)))
    finally:
        if c:
            c.kill()
        d.stop()


def stale_table_replaced(ctx):
    """A table left by a dead instance is replaced at start-up."""
    family, name = ("ip", "ftp-proxy-%d" % labmod.PROXY_PORT)
    ctx.lab.nft("add table %s %s\nadd set %s %s stale { type ipv4_addr; }\n"
                "add element %s %s stale { 192.0.2.99 }\n"
                % (family, name, family, name, family, name))
    d = start_daemon(ctx, "stale")
    try:
        table = checks.nft_table(ctx.lab, family, name)
        assert "stale" not in checks.sets(table), (
            "the stale table's set survived the daemon's start-up")
        ctx.daemons = {4: d}
        do_transfer(ctx, "explicit", 4, "EPSV", "get")
    finally:
        ctx.daemons = {}
        status = d.stop()
    assert status == 0, "exit %s after SIGTERM" % status
    assert table_gone(ctx, d), "table left after exit"


def signal_ends_sessions(signame):
    """SIGTERM, SIGINT and SIGHUP end every session with a 421, remove the
    table and exit 0."""
    def fn(ctx):
        d = start_daemon(ctx, signame)
        c = None
        try:
            host, port = ctx.target(4)
            c = clients.Interactive(ctx.lab, "idle", host, port, wait=15)
            state = c.read_json(30)
            assert state.get("state") == "READY", "client could not log in: %s" % state
            os.kill(d.pid, getattr(signal, signame))
            try:
                status = d.proc.popen.wait(10)
            except Exception:
                status = "still running 10 s later"
            out = c.finish(30)
        finally:
            if c:
                c.kill()
            d.stop()
        ctx.note("client saw: %s" % out)
        assert status == 0, "exit %s after %s" % (status, signame)
        assert table_gone(ctx, d), "table left after %s" % signame
        assert out.get("closed"), "session still open after %s" % signame
        lines = out.get("lines") or [""]
        assert lines[-1].startswith("421"), "no 421 before the close: %s" % lines
    return fn


def log_rules(options, want):
    """-v puts a log statement on the pinhole rule; without it there is none."""
    def fn(ctx):
        d = start_daemon(ctx, "log", options=options)
        try:
            text = json.dumps(checks.nft_table(ctx.lab, *d.table))
        finally:
            d.stop()
        assert ('"log"' in text) == want, (
            "%s: log statement %s in the daemon's rules"
            % (" ".join(options) or "no -v", "missing" if want else "present"))
    return fn


def queue_rule(ctx):
    """-q 1:10: the data connections' packets get that priority (tc class)."""
    d = ctx.daemons[4]
    text = json.dumps(checks.nft_table(ctx.lab, *d.table))
    assert '"priority"' in text, "no priority statement with -q: %s" % text[:500]


def bad_queue_refused(ctx):
    """-q that is not a tc class id is refused at start-up, exit 1."""
    d = daemonmod.Daemon(ctx.lab, 4, labmod.PROXY_PORT, ["-q", "not-a-class"], ctx.binary,
                         ctx.logdir, name="bad-queue")
    cp = procs.run(d.argv(), ns=ctx.lab.gateway, timeout=10, check=False)
    ctx.note(cp.stderr)
    assert cp.returncode == 1, (
        "exit %d for -q not-a-class (stderr: %s)"
        % (cp.returncode, cp.stderr.strip()))
    assert checks.nft_table(ctx.lab, *d.table) is None, "a table was left behind"


# -- the tables -----------------------------------------------------------------

def matrix(server_names=servers.ALL, client_names=clients.ALL):
    """Every server, client, family, data command and direction."""
    out = []
    for server in server_names:
        for client in client_names:
            for family in (4, 6):
                for cmd in clients.modes(client, family):
                    for direction in ("get", "put"):
                        out.append(pytest.param(
                            server, client, family, cmd, direction,
                            id="%s/%s/v%d/%s/%s" % (server, client, family, cmd, direction)))
    return out


def transfers(rows):
    """(client, family, cmd, direction) rows as parameters."""
    return [pytest.param(*row, id="%s/v%d/%s/%s" % row) for row in rows]


def modes(rows):
    return [pytest.param(family, cmd, id="v%d/%s" % (family, cmd)) for family, cmd in rows]


ALL_MODES = ((4, "PASV"), (4, "EPSV"), (4, "PORT"), (4, "EPRT"), (6, "EPSV"), (6, "EPRT"))
TRANSFER = "client,family,cmd,direction"


def sigterm_exit_0_table_gone(self, setup_daemons):
    """The last case of a set-up with daemons: SIGTERM, and each daemon
    must exit 0 and take its table with it."""
    problems = setup_daemons.stop_setup()
    assert not problems, "; ".join(problems)


# -- the set-ups and their cases ----------------------------------------------------

class TestDefault:
    """ftp-proxy and ftp-proxy -6, no options."""
    SETUP = "default"

    @any_kind
    @pytest.mark.parametrize("server,client,family,cmd,direction", matrix())
    def test_transfer(self, ctx, server, client, family, cmd, direction):
        do_transfer(ctx, client, family, cmd, direction)

    @pytest.mark.parametrize("family,cmd", modes(ALL_MODES))
    def test_pinhole_while_negotiated(self, ctx, family, cmd):
        pinhole_visible(family, cmd, absent=[labmod.addr(family, "gw-alt")])(ctx)

    @pytest.mark.parametrize("family,cmd", modes([(4, "PASV"), (6, "EPSV")]))
    def test_one_connection_per_pinhole(self, ctx, family, cmd):
        one_connection_per_pinhole(family, cmd)(ctx)

    def test_conntrack_mark_default(self, ctx):
        conntrack_mark(labmod.DEFAULT_MARK)(ctx)

    @pytest.mark.parametrize("cmd", ["PASV", "PORT"])
    def test_v6_refuses(self, ctx, cmd):
        v6_refuses(cmd)(ctx)

    def test_bad_port_refused(self, ctx):
        bad_port(ctx)

    def test_no_port20_by_default(self, ctx):
        no_port20_by_default(ctx)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestAnonymousOnly:
    """-A: only the anonymous users."""
    SETUP = "anonymous-only"

    def test_anonymous_only(self, ctx):
        anonymous_only(ctx)

    def test_transfer(self, ctx):
        do_transfer(ctx, "explicit", 4, "PASV", "get")

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestMaxSessions:
    """-m 1."""
    SETUP = "max-sessions"

    def test_second_client_421(self, ctx):
        max_sessions(ctx)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestIdleTimeout:
    """-t 3."""
    SETUP = "idle-timeout"

    def test_idle_client_421(self, ctx):
        idle_timeout(ctx)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestPort20:
    """-r: active-mode data connections from port 20."""
    SETUP = "port20"

    def test_PORT_from_port_20(self, ctx):
        port20("PORT", True)(ctx)

    def test_EPRT_not_port_20(self, ctx):
        port20("EPRT", False)(ctx)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestTag:
    """-T: the data connections carry the conntrack mark the admin's accept
    line matches."""
    SETUP = "tag"

    def test_conntrack_mark(self, ctx):
        conntrack_mark(TAG)(ctx)

    def test_wrong_accept_line_blocks(self, ctx):
        wrong_accept_line_blocks(ctx)

    @pytest.mark.parametrize(TRANSFER, transfers(
        ("explicit", family, cmd, direction) for family, cmd in ALL_MODES
        for direction in ("get", "put")))
    def test_transfer(self, ctx, client, family, cmd, direction):
        do_transfer(ctx, client, family, cmd, direction)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestSourceAddress:
    """-a: the source address toward servers."""
    SETUP = "source-address"

    @pytest.mark.parametrize(TRANSFER, transfers([
        ("explicit", 4, "PASV", "get"), ("explicit", 4, "PORT", "put"),
        ("explicit", 6, "EPSV", "get"), ("explicit", 6, "EPRT", "put"),
        ("lftp", 4, "PASV", "put"), ("curl", 4, "PORT", "get")]))
    def test_transfer(self, ctx, client, family, cmd, direction):
        do_transfer(ctx, client, family, cmd, direction)

    @pytest.mark.parametrize("family,cmd", modes([(4, "PASV"), (4, "PORT"), (6, "EPSV"),
                                                  (6, "EPRT")]))
    def test_pinhole(self, ctx, family, cmd):
        pinhole_visible(family, cmd, also=[labmod.addr(family, "gw-alt")],
                        absent=[labmod.addr(family, "gw-wan")])(ctx)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestQueue:
    """-q 1:10."""
    SETUP = "queue"

    def test_priority_rule(self, ctx):
        queue_rule(ctx)

    def test_transfer(self, ctx):
        do_transfer(ctx, "explicit", 4, "PASV", "get")

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone


class TestManual:
    """Cases that start, signal and kill their daemons themselves."""
    SETUP = "manual"

    def test_bad_queue_class_refused(self, ctx):
        bad_queue_refused(ctx)

    @pytest.mark.parametrize("options,want", [pytest.param(["-v"], True, id="v"),
                                              pytest.param([], False, id="without-v")])
    def test_log_rule(self, ctx, options, want):
        log_rules(options, want)(ctx)

    def test_sigkill_leaves_no_table(self, ctx):
        sigkill_leaves_nothing(ctx)

    def test_stale_table_replaced(self, ctx):
        stale_table_replaced(ctx)

    @pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGHUP"])
    def test_signal_ends_sessions_421(self, ctx, signame):
        signal_ends_sessions(signame)(ctx)


class TestReverse:
    """-R: the proxy in front of one server, clients connect to the proxy."""
    SETUP = "reverse"

    @pytest.mark.parametrize("server,client,family,cmd,direction", [
        pytest.param(server, *row, id="%s/%s/v%d/%s/%s" % ((server,) + row))
        for server in servers.ALL
        for client, family, cmd in (("explicit", 4, "PASV"), ("explicit", 4, "PORT"),
                                    ("lftp", 4, "PASV"), ("curl", 4, "EPRT"),
                                    ("explicit", 6, "EPSV"), ("ftplib", 6, "EPRT"))
        for row in [(client, family, cmd, d) for d in ("get", "put")]])
    def test_transfer(self, ctx, server, client, family, cmd, direction):
        do_transfer(ctx, client, family, cmd, direction)

    test_sigterm_exit_0_table_gone = sigterm_exit_0_table_gone
