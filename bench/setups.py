"""What runs on the gateway in each compared set-up.

Each set-up gets a fresh lab (regress/linux/ftplab/lab.py) of the right kind, so no
state (conntrack entries, nftables tables, TIME_WAIT sockets) carries over
from one to the next:

  direct    plain routing, the server routes back to the client: the ceiling
  helper    the kernel's FTP conntrack helper and masquerade: what a Linux
            admin has today without a proxy
  ftp-proxy this daemon (release build), as the lab runs it, with -m 500
  relays    SuSE ftp-proxy, proftpd mod_proxy (relays.py), when installed

A set-up with a proxy process gives its CPU and memory through an
accounting.Account; the kernel-only set-ups have no process to measure.
"""

import os

import accounting
from ftplab import daemon as daemonmod
from ftplab import lab as labmod
import relays


class BenchLab(labmod.Lab):
    """The regress lab, its namespaces named after the set-up's index, so
    that every set-up of a pass has its lab up at the same time and each
    measurement can run over all of them back to back."""

    def __init__(self, kind, index):
        super().__init__(kind)
        prefix = "fpx%db%d" % (os.getpid(), index)
        self.client, self.gateway, self.server = prefix + "c", prefix + "g", prefix + "s"


class BenchDaemon(daemonmod.Daemon):
    """The lab's daemon at its default log level: -D 7 (the lab's choice,
    for diagnosis) writes every control line to stderr, a cost an admin
    does not pay and the benchmark must not measure."""

    def argv(self):
        argv = super().argv()
        i = argv.index("-D")
        del argv[i:i + 2]
        return argv


class Setup:
    name = None
    title = None
    lab_kind = None
    has_proxy = False

    def __init__(self):
        self.account = None

    def target(self):
        """(host, port) the client connects to."""
        return labmod.SERVER4, 21

    def start(self, lab, workdir):
        pass

    def stop(self):
        if self.account:
            self.account.close()
            self.account = None

    def pid(self):
        return None


class Direct(Setup):
    name, title, lab_kind = "direct", "direct routing", "direct"


class Helper(Setup):
    name, title, lab_kind = "helper", "conntrack helper", "helper"


class FtpProxy(Setup):
    name, title, lab_kind, has_proxy = "ftp-proxy", "ftp-proxy (this)", "proxy", True

    def __init__(self, binary=None, max_sessions=500):
        super().__init__()
        self.binary = binary
        self.max_sessions = max_sessions
        self.daemon = None

    def start(self, lab, workdir):
        self.daemon = BenchDaemon(lab, 4, options=["-m", str(self.max_sessions)],
                                  binary=self.binary, logdir=workdir)
        self.daemon.start()
        self.account = accounting.Account(self.name, self.daemon.pid)

    def stop(self):
        if self.daemon:
            status = self.daemon.stop()
            self.daemon = None
            if status != 0:
                raise RuntimeError("ftp-proxy exited %s after SIGTERM" % status)
        super().stop()

    def pid(self):
        return self.daemon.pid


class Relay(Setup):
    lab_kind, has_proxy = "proxy", True

    def __init__(self, cls):
        super().__init__()
        self.cls = cls
        self.name, self.title = cls.name, cls.title
        self.relay = None

    def target(self):
        return labmod.GATEWAY_LAN4, relays.PORT

    def start(self, lab, workdir):
        self.relay = self.cls(lab, workdir)
        pid = self.relay.start()
        # Into its cgroup before it can accept (and fork for) a session.
        self.account = accounting.Account(self.name, pid)
        self.relay.wait_ready()

    def stop(self):
        if self.relay:
            self.relay.stop()
            self.relay = None
        super().stop()

    def pid(self):
        return self.relay.proc.pid


def all_setups(binary=None):
    """(set-ups to run, [(title, why not)] for relays left out)."""
    chosen = [Direct(), Helper(), FtpProxy(binary)]
    left_out = []
    for cls in relays.ALL:
        why = cls.missing()
        if why:
            left_out.append((cls.title, "not installed (%s missing)" % why))
        else:
            chosen.append(Relay(cls))
    return chosen, left_out
