"""What a group of hostile, fault or load cases runs in: the lab, the
daemons with their pinhole watches, the FTP server of the moment.

A group (a test module, through plugin.group_env) starts its own daemons
(its options) and server; when the group is over each daemon still running
gets SIGTERM and must exit 0 with its table gone.
"""

import os

from . import daemon as daemonmod
from . import pinwatch


class Env:
    def __init__(self, lab, binary, logdir, workdir, quick):
        self.lab = lab
        self.binary = binary
        self.logdir = logdir
        self.workdir = workdir
        self.quick = quick
        self.daemons = {}      # family -> daemon.Daemon
        self.watches = {}      # family -> pinwatch.Watch
        self.evil = None       # evil_server.EvilServer
        self.server = None     # servers.Server
        self.group = ""
        self.figures = {}      # name -> text, printed at the end of the run
        self.starts = 0        # daemon starts, so a restart gets a log of its own

    def start_daemon(self, family, options, name=None):
        self.starts += 1
        d = daemonmod.Daemon(self.lab, family, options=options, binary=self.binary,
                             logdir=self.logdir,
                             name=name or ("ftp-proxy-%s-%d" % (self.group, self.starts)))
        if family not in self.watches:
            self.watches[family] = pinwatch.Watch(self.lab, family, d.table, self.logdir)
        d.start()
        self.daemons[family] = d
        return d

    def stop_daemons(self):
        """SIGTERM each daemon; the problems (exit status, table left)."""
        problems = daemonmod.stop_checked(self.daemons)
        self.daemons = {}
        return problems

    def stop_watches(self):
        for w in self.watches.values():
            w.stop()
        self.watches = {}

    def stop_servers(self):
        if self.evil is not None:
            self.evil.stop()
            self.evil = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def path(self, name):
        return os.path.join(self.workdir, name)
