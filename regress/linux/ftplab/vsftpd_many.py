"""vsftpd for many sessions from one address: the lab's configuration with
its per-address and total limits raised (defaults 50 and 2000; with the
proxy every session comes from the gateway's one address).

vsftpd's listen backlog is a fixed 32: callers ramp connections up instead
of opening hundreds at once.
"""

from . import servers

EXTRA = """\
max_clients=%(n)d
max_per_ip=%(n)d
delay_failed_login=0
delay_successful_login=0
"""


class ManyVsftpd(servers.Vsftpd):
    def __init__(self, lab, workdir, files, sessions=1000):
        self.sessions = sessions
        super().__init__(lab, workdir, files)

    def argv(self):
        argv = super().argv()
        with open(argv[-1], "a") as f:
            f.write(EXTRA % {"n": self.sessions})
        return argv


def start(lab, workdir, files, sessions=1000):
    return ManyVsftpd(lab, workdir, files, sessions).start()
