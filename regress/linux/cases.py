"""The test cases: what each one does and what it checks.

A case is a name, the daemon set-up it needs (a fixture), the FTP server it
talks to, and a function that raises Fail with a reason. The runner groups
cases by fixture and server, so daemons and servers start once per group.

Every transfer case checks, on top of the client's own success:
  - the sha256 of the bytes that arrived (client file for a download, the
    server's file for an upload) against the file the test made;
  - that the client really used the data command the case names;
  - in active mode, that the data connection came from the address the client
    believes it talks to (the original server);
  - with the daemon: that the daemon itself read and wrote far fewer bytes
    than the file (the data went through the kernel), and that no pinhole is
    left in its table once the session is over.
"""

import json
import os
import signal

import checks
import clients
import daemon as daemonmod
import lab as labmod
import procs
import servers

FILE_NAME = "data.bin"
FILE_SIZE = 3 * 1024 * 1024 + 12345
TAG = 4660


class Fail(Exception):
    pass


def fail_unless(condition, reason):
    if not condition:
        raise Fail(reason)


class Fixture:
    """The daemons a group of cases runs against, and the admin's accept line."""

    def __init__(self, name, daemons=(), accept_mark=labmod.DEFAULT_MARK, reverse_port=None):
        self.name = name
        self.daemons = list(daemons)     # [(family, port, options)]
        self.accept_mark = accept_mark
        self.reverse_port = reverse_port

    def target(self, family):
        """Where the client connects: the server's address port 21 (the
        gateway redirects it), or in reverse mode the proxy itself."""
        if self.reverse_port:
            return labmod.addr(family, "gw-lan"), self.reverse_port
        return labmod.addr(family, "server"), 21


P = labmod.PROXY_PORT
FIXTURES = {f.name: f for f in [
    Fixture("none"),
    Fixture("default", [(4, P, []), (6, P, [])]),
    Fixture("anonymous-only", [(4, P, ["-A"])]),
    Fixture("max-sessions", [(4, P, ["-m", "1"])]),
    Fixture("idle-timeout", [(4, P, ["-t", "3"])]),
    Fixture("port20", [(4, P, ["-r"])]),
    Fixture("tag", [(4, P, ["-T", str(TAG)]), (6, P, ["-T", str(TAG)])], accept_mark=TAG),
    Fixture("reverse", [(4, 2121, ["-R", labmod.SERVER4]), (6, 2121, ["-R", labmod.SERVER6])],
            reverse_port=2121),
    Fixture("source-address", [(4, P, ["-a", labmod.GATEWAY_ALT4]),
                               (6, P, ["-a", labmod.GATEWAY_ALT6])]),
    Fixture("queue", [(4, P, ["-q", "1:10"])]),
    # Cases that start, signal and kill daemons themselves.
    Fixture("manual"),
]}
FIXTURE_ORDER = list(FIXTURES)


class Case:
    def __init__(self, name, fixture, server, fn):
        self.name, self.fixture, self.server, self.fn = name, fixture, server, fn


class Context:
    """What a case can use: the lab, the running server and daemons, files."""

    def __init__(self, lab, workdir, data_sha, logdir=None, binary=None):
        self.lab = lab
        self.workdir = workdir
        self.logdir = logdir or workdir
        self.binary = binary
        self.data_sha = data_sha
        self.upload_src = os.path.join(workdir, "upload-src.bin")
        self.server = None
        self.fixture = FIXTURES["none"]
        self.daemons = {}            # family -> Daemon
        self.details = []            # lines explaining the last failure
        self.seq = 0

    def target(self, family):
        return self.fixture.target(family)

    def unique(self, stem):
        self.seq += 1
        return "%s-%d" % (stem, self.seq)

    def note(self, text):
        self.details.append(text)


# -- building blocks ---------------------------------------------------------

def daemon_io(ctx):
    return {f: d.io() for f, d in ctx.daemons.items() if d.alive()}


def check_after_session(ctx, io_before, moved):
    """The daemons are alive, moved few bytes themselves, left no pinhole."""
    for family, d in ctx.daemons.items():
        if not d.alive():
            ctx.note(d.log_tail())
            raise Fail("ftp-proxy (-%d) died: exit %s" % (family, d.proc.popen.poll()))
    if moved:
        for family, before in io_before.items():
            after = ctx.daemons[family].io()
            relayed = (after[0] - before[0]) + (after[1] - before[1])
            fail_unless(relayed < moved // 8,
                        "the daemon itself read+wrote %d bytes for a %d-byte transfer: data "
                        "went through it, not through the kernel" % (relayed, moved))
    for d in ctx.daemons.values():
        reason = checks.wait_no_pinholes(ctx.lab, *d.table)
        fail_unless(reason is None, reason)


def do_transfer(ctx, client, family, cmd, direction, timeout=20):
    """One transfer with every check of a transfer case; returns the Result."""
    host, port = ctx.target(family)
    io_before = daemon_io(ctx)
    if direction == "get":
        remote = FILE_NAME
        local = os.path.join(ctx.workdir, ctx.unique("got"))
    else:
        name = ctx.unique("put-%s-%d-%s" % (client, family, cmd))
        remote = "upload/" + name
        local = ctx.upload_src
    r = clients.transfer(ctx.lab, client, family, cmd, direction, remote, local,
                         target=(host, port), timeout=timeout)
    if not r.ok:
        ctx.note(r.output[-2000:])
        raise Fail("%s failed: %s" % (client, r.error))
    arrived = local if direction == "get" else ctx.server.uploaded(name)
    fail_unless(os.path.exists(arrived), "%s reports success but %s does not exist" % (client, arrived))
    sha = servers.sha256_file(arrived)
    size = os.path.getsize(arrived)
    os.unlink(arrived)
    fail_unless(sha == ctx.data_sha, "sha256 of the %d bytes that arrived differs" % size)
    fail_unless(r.sent and set(r.sent) == {cmd},
                "%s used data commands %s, not only %s" % (client, r.sent, cmd))
    if r.data_peer:
        fail_unless(r.data_peer[0] == host,
                    "active data connection came from %s, not from %s the client talks to"
                    % (r.data_peer[0], host))
    if r.negotiated and r.negotiated.get("told_host"):
        fail_unless(r.negotiated["told_host"] == host,
                    "227 reply advertises %s, the client talks to %s"
                    % (r.negotiated["told_host"], host))
    check_after_session(ctx, io_before, FILE_SIZE)
    return r


def transfer_case(client, family, cmd, direction):
    def fn(ctx):
        do_transfer(ctx, client, family, cmd, direction)
    return fn


def matrix(fixture, server_names, client_names=clients.ALL):
    out = []
    for server in server_names:
        for client in client_names:
            for family in (4, 6):
                for cmd in clients.modes(client, family):
                    for direction in ("get", "put"):
                        name = "transfer/%s/%s/v%d/%s/%s" % (server, client, family, cmd, direction)
                        if fixture != "default":
                            name = fixture + "/" + name
                        out.append(Case(name, fixture, server,
                                        transfer_case(client, family, cmd, direction)))
    return out


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
            fail_unless(state.get("state") == "READY", "client did not negotiate: %s" % state)
            table = checks.nft_table(ctx.lab, *daemon.table)
            fail_unless(table is not None, "table %s %s missing" % daemon.table)
            text = checks.describe(table)
            ctx.note("pinholes while negotiated: " + text)
            fail_unless(checks.pinhole_count(table) > 0,
                        "no element in any set/map of %s %s after %s" % (daemon.table + (cmd,)))
            wanted = [(who, labmod.addr(family, who)) for who in ("client", "server")]
            for want in also:
                wanted.append(("address", want))
            for who, want in wanted:
                fail_unless(want in text, "no pinhole element mentions the %s %s: %s"
                            % (who, want, text))
            for unwanted in absent:
                fail_unless('"%s"' % unwanted not in text,
                            "a pinhole element mentions %s: %s" % (unwanted, text))
            for name, s in checks.sets(table).items():
                for e in s.get("elem", []):
                    text_e = json.dumps(e)
                    fail_unless('"timeout"' in text_e or '"expires"' in text_e or "timeout" in s,
                                "element of %s has no timeout: %s" % (name, text_e))
            c.say()
            result = c.finish(60)
        finally:
            c.kill()
        fail_unless("error" not in result, "transfer after the pause failed: %s" % result.get("error"))
        sha = servers.sha256_file(local)
        os.unlink(local)
        fail_unless(sha == ctx.data_sha, "sha256 of the downloaded bytes differs")
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
        fail_unless("error" not in out, "client: %s" % out.get("error"))
        fail_unless(out["first"] == "connected", "first data connection: %s" % out["first"])
        fail_unless(out["second"] == "timeout",
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
        fail_unless(data, "no conntrack entry with mark %d (0x%x) after a transfer" % (mark, mark))
        ctx.note("conntrack: " + " | ".join(data))
    return fn


def wrong_accept_line_blocks(ctx):
    """Negative control: with -T and the admin's accept line still on the
    default mark, the data connection must not get through."""
    ctx.lab.set_accept_mark(labmod.DEFAULT_MARK)
    try:
        try:
            do_transfer(ctx, "explicit", 4, "PASV", "get", timeout=3)
        except Fail as e:
            ctx.note("expected failure: %s" % e)
        else:
            raise Fail("transfer worked although the forward chain accepts only mark 0x%x"
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
        fail_unless("error" not in out, "client: %s" % out.get("error"))
        ctx.note("replies: %s" % out["lines"])
        fail_unless(out["closed"], "session still open 10 s after %s under -6" % cmd)
        fail_unless(not any(l[:3] in ("200", "227") for l in out["lines"]),
                    "%s accepted under -6: %s" % (cmd, out["lines"]))
        check_after_session(ctx, {}, 0)
    return fn


def bad_port(ctx):
    """PORT with a port below 1024: 421 before the close, no pinhole."""
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "raw", host, port, line="PORT 192,0,2,2,0,80", wait=10)
    fail_unless("error" not in out, "client: %s" % out.get("error"))
    ctx.note("replies: %s" % out["lines"])
    fail_unless(out["closed"], "session still open 10 s after a PORT to port 80")
    fail_unless(out["lines"] and out["lines"][-1].startswith("421"),
                "no 421 line before the close: %s" % out["lines"])
    check_after_session(ctx, {}, 0)


def anonymous_only(ctx):
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "login", host, port, user="bob")
    fail_unless("error" not in out, "client: %s" % out.get("error"))
    replies = out["replies"]
    ctx.note("replies: %s" % replies)
    fail_unless(len(replies) >= 2 and replies[1].startswith("500"),
                "USER bob answered %r, expected a 500 refusal" % (replies[1:2],))
    for user in ("ftp", "anonymous"):
        out = clients.ftpc(ctx.lab, "login", host, port, user=user)
        replies = out.get("replies", [])
        fail_unless(replies and replies[-1].startswith("230"),
                    "USER %s not let through under -A: %s" % (user, replies or out))
    check_after_session(ctx, {}, 0)


def max_sessions(ctx):
    """-m 1: a second client gets 421 and a close; the first one goes on."""
    host, port = ctx.target(4)
    first = clients.Interactive(ctx.lab, "hold", host, port, timeout=20)
    try:
        state = first.read_json(30)
        fail_unless(state.get("state") == "READY", "first client could not log in: %s" % state)
        out = clients.ftpc(ctx.lab, "greet", host, port, wait=10)
        fail_unless("error" not in out, "second client: %s" % out.get("error"))
        ctx.note("second client saw: %s" % out)
        fail_unless(out["lines"] and out["lines"][0].startswith("421"),
                    "second client got %s, expected 421" % out["lines"])
        fail_unless(out["closed"], "second client's connection not closed after the 421")
        result = first.finish(30)
    finally:
        first.kill()
    fail_unless(result.get("noop", "").startswith("200"),
                "first session broken by the refused one: %s" % result)
    # The slot is free again: a transfer works.
    do_transfer(ctx, "explicit", 4, "EPSV", "get")


def idle_timeout(ctx):
    """-t 3: a client that says nothing gets 421 and a close after ~3 s."""
    host, port = ctx.target(4)
    out = clients.ftpc(ctx.lab, "idle", host, port, wait=15)
    fail_unless("error" not in out, "client: %s" % out.get("error"))
    ctx.note("idle client saw: %s" % out)
    fail_unless(out["closed"], "idle session still open after 15 s with -t 3")
    fail_unless(out["elapsed"] >= 2.5, "closed after %.1f s, before the 3 s idle timeout"
                % out["elapsed"])
    fail_unless(out["lines"] and out["lines"][-1].startswith("421"),
                "no 421 line before the close: %s" % out["lines"])
    check_after_session(ctx, {}, 0)


def port20(cmd, want20):
    """-r: active-mode data connections for PORT (not EPRT) come from port 20."""
    def fn(ctx):
        r = do_transfer(ctx, "explicit", 4, cmd, "get")
        peer = r.data_peer
        fail_unless(peer, "no data peer recorded")
        if want20:
            fail_unless(peer[1] == 20, "data connection came from port %d, not 20" % peer[1])
        else:
            fail_unless(peer[1] != 20, "data connection came from port 20 for %s" % cmd)
    return fn


def no_port20_by_default(ctx):
    r = do_transfer(ctx, "explicit", 4, "PORT", "get")
    fail_unless(r.data_peer and r.data_peer[1] != 20,
                "data connection from port 20 without -r: %s" % (r.data_peer,))


# -- daemons started by the case itself ----------------------------------------

def start_daemon(ctx, name, family=4, options=()):
    return daemonmod.Daemon(ctx.lab, family, labmod.PROXY_PORT, options, ctx.binary,
                            ctx.logdir, name=name).start()


def table_gone(ctx, d):
    return checks.wait_table_gone(ctx.lab, *d.table)


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
        fail_unless(state.get("state") == "READY", "client did not negotiate: %s" % state)
        table = checks.nft_table(ctx.lab, *d.table)
        fail_unless(checks.pinhole_count(table or []) > 0, "no pinhole before the kill")
        os.kill(d.pid, signal.SIGKILL)
        d.proc.popen.wait(10)
        fail_unless(table_gone(ctx, d), "table %s %s still there after SIGKILL: %s"
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
        fail_unless("stale" not in checks.sets(table),
                    "the stale table's set survived the daemon's start-up")
        ctx.daemons = {4: d}
        do_transfer(ctx, "explicit", 4, "EPSV", "get")
    finally:
        ctx.daemons = {}
        status = d.stop()
    fail_unless(status == 0, "exit %s after SIGTERM" % status)
    fail_unless(table_gone(ctx, d), "table left after exit")


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
            fail_unless(state.get("state") == "READY", "client could not log in: %s" % state)
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
        fail_unless(status == 0, "exit %s after %s" % (status, signame))
        fail_unless(table_gone(ctx, d), "table left after %s" % signame)
        fail_unless(out.get("closed"), "session still open after %s" % signame)
        lines = out.get("lines") or [""]
        fail_unless(lines[-1].startswith("421"), "no 421 before the close: %s" % lines)
    return fn


def log_rules(options, want):
    """-v puts a log statement on the pinhole rule; without it there is none."""
    def fn(ctx):
        d = start_daemon(ctx, "log", options=options)
        try:
            text = json.dumps(checks.nft_table(ctx.lab, *d.table))
        finally:
            d.stop()
        fail_unless(('"log"' in text) == want, "%s: log statement %s in the daemon's rules"
                    % (" ".join(options) or "no -v", "missing" if want else "present"))
    return fn


def queue_rule(ctx):
    """-q 1:10: the data connections' packets get that priority (tc class)."""
    d = ctx.daemons[4]
    text = json.dumps(checks.nft_table(ctx.lab, *d.table))
    fail_unless('"priority"' in text, "no priority statement with -q: %s" % text[:500])


def bad_queue_refused(ctx):
    """-q that is not a tc class id is refused at start-up, exit 1."""
    d = daemonmod.Daemon(ctx.lab, 4, labmod.PROXY_PORT, ["-q", "not-a-class"], ctx.binary,
                         ctx.logdir, name="bad-queue")
    cp = procs.run(d.argv(), ns=ctx.lab.gateway, timeout=10, check=False)
    ctx.note(cp.stderr)
    fail_unless(cp.returncode == 1, "exit %d for -q not-a-class (stderr: %s)"
                % (cp.returncode, cp.stderr.strip()))
    fail_unless(checks.nft_table(ctx.lab, *d.table) is None, "a table was left behind")


# -- the list ------------------------------------------------------------------

def all_cases(kind, server_names):
    """Every case for a gateway kind, in run order."""
    if kind != "proxy":
        return matrix("none", server_names)
    cases = matrix("default", server_names)
    first = server_names[0]
    for family, cmd in ((4, "PASV"), (4, "EPSV"), (4, "PORT"), (4, "EPRT"), (6, "EPSV"), (6, "EPRT")):
        cases.append(Case("kernel/pinhole-while-negotiated/v%d/%s" % (family, cmd), "default",
                          first, pinhole_visible(family, cmd,
                                                 absent=[labmod.addr(family, "gw-alt")])))
    for family, cmd in ((4, "PASV"), (6, "EPSV")):
        cases.append(Case("kernel/one-connection-per-pinhole/v%d/%s" % (family, cmd), "default",
                          first, one_connection_per_pinhole(family, cmd)))
    cases += [
        Case("kernel/conntrack-mark-default", "default", first, conntrack_mark(labmod.DEFAULT_MARK)),
        Case("refuse/v6-PASV", "default", first, v6_refuses("PASV")),
        Case("refuse/v6-PORT", "default", first, v6_refuses("PORT")),
        Case("refuse/bad-port", "default", first, bad_port),
        Case("option-r/off-by-default", "default", first, no_port20_by_default),
        Case("option-A/anonymous-only", "anonymous-only", first, anonymous_only),
        Case("option-A/transfer", "anonymous-only", first, transfer_case("explicit", 4, "PASV", "get")),
        Case("option-m/second-client-421", "max-sessions", first, max_sessions),
        Case("option-t/idle-client-421", "idle-timeout", first, idle_timeout),
        Case("option-r/PORT-from-port-20", "port20", first, port20("PORT", True)),
        Case("option-r/EPRT-not-port-20", "port20", first, port20("EPRT", False)),
        Case("option-T/conntrack-mark", "tag", first, conntrack_mark(TAG)),
        Case("option-T/wrong-accept-line-blocks", "tag", first, wrong_accept_line_blocks),
    ]
    for family, cmd in ((4, "PASV"), (4, "EPSV"), (4, "PORT"), (4, "EPRT"), (6, "EPSV"), (6, "EPRT")):
        for direction in ("get", "put"):
            cases.append(Case("option-T/transfer/v%d/%s/%s" % (family, cmd, direction), "tag",
                              first, transfer_case("explicit", family, cmd, direction)))
    for client, family, cmd, direction in (("explicit", 4, "PASV", "get"), ("explicit", 4, "PORT", "put"),
                                           ("explicit", 6, "EPSV", "get"), ("explicit", 6, "EPRT", "put"),
                                           ("lftp", 4, "PASV", "put"), ("curl", 4, "PORT", "get")):
        cases.append(Case("option-a/%s/v%d/%s/%s" % (client, family, cmd, direction), "source-address",
                          first, transfer_case(client, family, cmd, direction)))
    cases += [
        Case("option-a/pinhole/v4/PASV", "source-address", first,
             pinhole_visible(4, "PASV", also=[labmod.GATEWAY_ALT4], absent=[labmod.GATEWAY_WAN4])),
        Case("option-a/pinhole/v4/PORT", "source-address", first,
             pinhole_visible(4, "PORT", also=[labmod.GATEWAY_ALT4], absent=[labmod.GATEWAY_WAN4])),
        Case("option-a/pinhole/v6/EPSV", "source-address", first,
             pinhole_visible(6, "EPSV", also=[labmod.GATEWAY_ALT6], absent=[labmod.GATEWAY_WAN6])),
        Case("option-a/pinhole/v6/EPRT", "source-address", first,
             pinhole_visible(6, "EPRT", also=[labmod.GATEWAY_ALT6], absent=[labmod.GATEWAY_WAN6])),
        Case("option-q/priority-rule", "queue", first, queue_rule),
        Case("option-q/transfer", "queue", first, transfer_case("explicit", 4, "PASV", "get")),
        Case("option-q/bad-class-refused", "manual", first, bad_queue_refused),
        Case("option-v/log-rule", "manual", first, log_rules(["-v"], True)),
        Case("option-v/no-log-rule-without-v", "manual", first, log_rules([], False)),
        Case("daemon/sigkill-leaves-no-table", "manual", first, sigkill_leaves_nothing),
        Case("daemon/stale-table-replaced", "manual", first, stale_table_replaced),
    ]
    for signame in ("SIGTERM", "SIGINT", "SIGHUP"):
        cases.append(Case("daemon/%s-ends-sessions-421" % signame, "manual", first,
                          signal_ends_sessions(signame)))
    for server in server_names:
        for client, family, cmd in (("explicit", 4, "PASV"), ("explicit", 4, "PORT"),
                                    ("lftp", 4, "PASV"), ("curl", 4, "EPRT"),
                                    ("explicit", 6, "EPSV"), ("ftplib", 6, "EPRT")):
            for direction in ("get", "put"):
                cases.append(Case("option-R/%s/%s/v%d/%s/%s" % (server, client, family, cmd, direction),
                                  "reverse", server, transfer_case(client, family, cmd, direction)))
    return cases
