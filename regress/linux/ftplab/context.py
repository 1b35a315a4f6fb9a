"""What an end-to-end case of the netns suite works with: the lab, the FTP
server of the moment, the daemons of a set-up, the test file; and the
checks every transfer case makes.

A set-up is the daemons a group of cases runs against (their options) and
the admin's accept line. The suite keeps one server and one set-up running
as long as consecutive cases want them, as an admin's machine would, so
daemons and servers start once per group, not once per case.

Every transfer checks, on top of the client's own success:
  - the sha256 of the bytes that arrived (client file for a download, the
    server's file for an upload) against the file the test made;
  - that the client really used the data command the case names;
  - in active mode, that the data connection came from the address the client
    believes it talks to (the original server);
  - with the daemon: that the daemon itself read and wrote far fewer bytes
    than the file (the data went through the kernel), and that no pinhole is
    left in its table once the session is over.
"""

import hashlib
import os
import tempfile

from . import checks
from . import clients
from . import daemon as daemonmod
from . import lab as labmod
from . import servers

FILE_NAME = "data.bin"
FILE_SIZE = 3 * 1024 * 1024 + 12345
TAG = 4660


class Setup:
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
SETUPS = {s.name: s for s in [
    Setup("none"),
    Setup("default", [(4, P, []), (6, P, [])]),
    Setup("anonymous-only", [(4, P, ["-A"])]),
    Setup("max-sessions", [(4, P, ["-m", "1"])]),
    Setup("idle-timeout", [(4, P, ["-t", "3"])]),
    Setup("port20", [(4, P, ["-r"])]),
    Setup("tag", [(4, P, ["-T", str(TAG)]), (6, P, ["-T", str(TAG)])], accept_mark=TAG),
    Setup("reverse", [(4, 2121, ["-R", labmod.SERVER4]), (6, 2121, ["-R", labmod.SERVER6])],
          reverse_port=2121),
    Setup("source-address", [(4, P, ["-a", labmod.GATEWAY_ALT4]),
                             (6, P, ["-a", labmod.GATEWAY_ALT6])]),
    Setup("queue", [(4, P, ["-q", "1:10"])]),
    # Cases that start, signal and kill daemons themselves.
    Setup("manual"),
]}


class Context:
    """What a case can use: the lab, the running server and daemons, files."""

    def __init__(self, lab, workdir, logdir, binary, data):
        self.lab = lab
        self.workdir = workdir
        self.logdir = logdir
        self.binary = binary
        self.files = {FILE_NAME: data}
        self.data_sha = hashlib.sha256(data).hexdigest()
        self.upload_src = os.path.join(workdir, "upload-src.bin")
        with open(self.upload_src, "wb") as f:
            f.write(data)
        self.server = None
        self.setup = SETUPS["none"]
        self.daemons = {}            # family -> Daemon
        self.details = []            # lines explaining the last failure
        self.seq = 0

    def target(self, family):
        return self.setup.target(family)

    def unique(self, stem):
        self.seq += 1
        return "%s-%d" % (stem, self.seq)

    def note(self, text):
        self.details.append(text)

    # -- the server of the moment --------------------------------------------

    def use_server(self, name):
        """Make server name the one running, stopping another one first."""
        if self.server is not None and self.server.name == name:
            return
        self.stop_server()
        srv = servers.make(name, self.lab, tempfile.mkdtemp(dir=self.workdir, prefix=name),
                           self.files)
        srv.start()
        self.server = srv

    def stop_server(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- the daemons of a set-up ---------------------------------------------

    def start_setup(self, setup):
        """Start setup's daemons (none unless the gateway runs the proxy)."""
        self.setup = setup
        if self.lab.kind != "proxy":
            return
        self.lab.set_accept_mark(setup.accept_mark)
        for family, port, options in setup.daemons:
            d = daemonmod.Daemon(self.lab, family, port, options, self.binary, self.logdir,
                                 name="ftp-proxy-" + setup.name)
            d.start()
            self.daemons[family] = d

    def stop_setup(self):
        """SIGTERM each daemon: it must exit 0 and take its table with it.
        Returns the problems, empty when all went well."""
        problems = daemonmod.stop_checked(self.daemons)
        self.daemons = {}
        self.setup = SETUPS["none"]
        return problems

    def daemon_logs(self):
        return ["ftp-proxy -%d %s log:\n%s" % (f, " ".join(d.options), d.log_tail(15))
                for f, d in sorted(self.daemons.items())]


# -- the checks of a transfer --------------------------------------------------

def daemon_io(ctx):
    return {f: d.io() for f, d in ctx.daemons.items() if d.alive()}


def check_after_session(ctx, io_before, moved):
    """The daemons are alive, moved few bytes themselves, left no pinhole."""
    for family, d in ctx.daemons.items():
        if not d.alive():
            ctx.note(d.log_tail())
            raise AssertionError("ftp-proxy (-%d) died: exit %s" % (family, d.proc.popen.poll()))
    if moved:
        for family, before in io_before.items():
            after = ctx.daemons[family].io()
            relayed = (after[0] - before[0]) + (after[1] - before[1])
            assert relayed < moved // 8, (
                "the daemon itself read+wrote %d bytes for a %d-byte transfer: data "
                "went through it, not through the kernel" % (relayed, moved))
    for d in ctx.daemons.values():
        reason = checks.wait_no_pinholes(ctx.lab, *d.table)
        assert reason is None, reason


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
        raise AssertionError("%s failed: %s" % (client, r.error))
    arrived = local if direction == "get" else ctx.server.uploaded(name)
    assert os.path.exists(arrived), (
        "%s reports success but %s does not exist" % (client, arrived))
    sha = servers.sha256_file(arrived)
    size = os.path.getsize(arrived)
    os.unlink(arrived)
    assert sha == ctx.data_sha, "sha256 of the %d bytes that arrived differs" % size
    assert r.sent and set(r.sent) == {cmd}, (
        "%s used data commands %s, not only %s" % (client, r.sent, cmd))
    if r.data_peer:
        assert r.data_peer[0] == host, (
            "active data connection came from %s, not from %s the client talks to"
            % (r.data_peer[0], host))
    if r.negotiated and r.negotiated.get("told_host"):
        assert r.negotiated["told_host"] == host, (
            "227 reply advertises %s, the client talks to %s"
            % (r.negotiated["told_host"], host))
    check_after_session(ctx, io_before, FILE_SIZE)
    return r


# -- daemons started by the case itself ----------------------------------------

def start_daemon(ctx, name, family=4, options=()):
    return daemonmod.Daemon(ctx.lab, family, labmod.PROXY_PORT, options, ctx.binary,
                            ctx.logdir, name=name).start()


def table_gone(ctx, d):
    return checks.wait_table_gone(ctx.lab, *d.table)
