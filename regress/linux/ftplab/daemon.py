"""The ftp-proxy daemon under test, in the gateway namespace, in the foreground.

    ftp-proxy -d -D 7 [-6] -b <gateway LAN address> -p <port> [options]

Its PID is the one Popen returned (nsenter execs it); it is ready when its
namespace has a socket listening on the port and its nftables table exists;
it is stopped with SIGTERM and must then exit 0 and leave no table behind.
"""

import os
import signal

from . import checks
from . import lab as labmod
from . import procs
from . import servers

START_TIMEOUT = 10


def default_binary():
    # regress/linux/ftplab/daemon.py, also reached through bench/ftplab.
    here = os.path.dirname(os.path.realpath(__file__))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
    if not os.path.isabs(target):
        target = os.path.join(repo, target)
    return os.path.join(target, "release", "ftp-proxy")


class Daemon:
    def __init__(self, lab, family=4, port=labmod.PROXY_PORT, options=(), binary=None,
                 logdir=".", name="ftp-proxy"):
        self.lab = lab
        self.family = family
        self.port = port
        self.options = list(options)
        self.binary = binary or default_binary()
        self.listen = labmod.addr(family, "gw-lan")
        self.log_path = os.path.join(logdir, "%s-%d-%d.log" % (name, family, port))
        self.proc = None

    def argv(self):
        argv = [self.binary, "-d", "-D", "7"]
        if self.family == 6:
            argv.append("-6")
        return argv + ["-b", self.listen, "-p", str(self.port)] + self.options

    @property
    def table(self):
        return ("ip" if self.family == 4 else "ip6", "ftp-proxy-%d" % self.port)

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("no daemon binary at %s (cargo build --release)" % self.binary)
        self.proc = procs.Background("ftp-proxy", self.argv(), ns=self.lab.gateway,
                                     log_path=self.log_path)

        def ready():
            if not self.proc.alive():
                return "exited"
            if servers.listening(self.proc.pid, self.port) and \
                    checks.nft_table(self.lab, *self.table) is not None:
                return "ready"
            return None
        try:
            state = procs.wait_for(ready, START_TIMEOUT, interval=0.05,
                                   what="ftp-proxy listening with its table")
        except TimeoutError as e:
            state = str(e)
        if state != "ready":
            status = self.proc.stop()
            raise RuntimeError("daemon %s (exit %s): %s\n%s" % (
                " ".join(self.argv()), status, state, self.proc.log_tail()))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def io(self):
        """Bytes the process has read and written through system calls
        (sockets included): (rchar, wchar)."""
        with open("/proc/%d/io" % self.pid) as f:
            fields = dict(line.split(":") for line in f if ":" in line)
        return int(fields["rchar"]), int(fields["wchar"])

    def stop(self):
        """SIGTERM; return the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        status = self.proc.stop(signal.SIGTERM, timeout=10)
        return status

    def log_tail(self, n=20):
        return self.proc.log_tail(n) if self.proc else ""


def stop_checked(daemons):
    """SIGTERM each daemon of {family: Daemon}: it must exit 0 and take its
    table with it. The table is awaited (bounded, checks.wait_table_gone):
    the kernel drops an owned table when the daemon's netlink socket
    closes, which may come a moment after the exit status. Returns the
    problems, empty when all went well; the caller forgets the daemons."""
    problems = []
    for family, d in sorted(daemons.items()):
        status = d.stop()
        if status != 0:
            problems.append("ftp-proxy -%d exited %s after SIGTERM" % (family, status))
        if not checks.wait_table_gone(d.lab, *d.table):
            problems.append("table %s %s still there after the daemon exited" % d.table)
    return problems
