"""The userspace relays an admin could run on the gateway instead.

Both run in the gateway namespace, listen on the gateway's LAN address,
port 8021, and relay every session to the one FTP server: the client
connects to them explicitly (reverse-proxy style). They copy each data
connection through their own sockets, which is what the benchmark compares
with the daemon's kernel pinholes. Their packages are unpacked privately by
bench/install-deps.sh (PKG_ROOT); a relay whose files are missing is
reported as unavailable and left out.

  suse      Debian's `ftp-proxy` (SuSE proxy suite): standalone daemon, a
            process forked per session; ForkLimit (40 a minute by default)
            and MaxClients raised so the session benchmarks measure the relay,
            not its rate limit
  proftpd   proftpd with mod_proxy in reverse mode (mod_tls loaded first, as
            mod_proxy requires), a process forked per session
"""

import os
import shutil

from ftplab import lab as labmod
from ftplab import procs
from ftplab import servers

PKG_DIR = os.environ.get("FTP_PROXY_BENCH_PKGS", "/var/tmp/ftp-proxy-bench/pkgs")
PKG_ROOT = os.path.join(PKG_DIR, "root")
PORT = 8021
START_TIMEOUT = 10


class Relay:
    name = None
    title = None

    def __init__(self, lab, workdir):
        self.lab = lab
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir)
        # Both drop to nobody, and proftpd refuses world-writable log
        # directories: root-owned 0755, with a log file nobody may write.
        os.chmod(self.dir, 0o755)
        self.proc = None

    @classmethod
    def missing(cls):
        """What is missing to run this relay, or None."""
        raise NotImplementedError

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.proc = procs.Background(self.name, self.argv(), ns=self.lab.gateway,
                                     log_path=os.path.join(self.dir, "stderr.log"))
        return self.proc.pid

    def wait_ready(self):
        servers.wait_listening(self.name, self.proc, PORT, START_TIMEOUT, self.log_tail)

    def log_tail(self):
        return ""

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


class SuseFtpProxy(Relay):
    name = "suse"
    title = "SuSE ftp-proxy"

    @classmethod
    def binary(cls):
        return os.path.join(PKG_ROOT, "usr/sbin/ftp-proxy")

    @classmethod
    def missing(cls):
        return None if os.access(cls.binary(), os.X_OK) else cls.binary()

    def argv(self):
        logdir = os.path.join(self.dir, "log")
        os.makedirs(logdir)
        shutil.chown(logdir, "nobody")
        conf = os.path.join(self.dir, "ftp-proxy.conf")
        with open(conf, "w") as f:
            f.write("""\
[-Global-]
ServerType          standalone
Listen              %(listen)s
Port                %(port)d
DestinationAddress  %(server)s
DestinationPort     21
User                nobody
Group               nogroup
ForkLimit           100000
MaxClients          512
TimeOut             900
LogLevel            WRN
LogDestination      %(logdir)s/ftp-proxy.log
PidFile             %(logdir)s/ftp-proxy.pid
""" % {"listen": labmod.GATEWAY_LAN4, "port": PORT, "server": labmod.SERVER4,
            "logdir": logdir})
        # -d standalone, -n stay in the foreground (its PID is ours to stop).
        return [self.binary(), "-d", "-n", "-f", conf]


class ProftpdModProxy(Relay):
    name = "proftpd-proxy"
    title = "proftpd mod_proxy"

    @classmethod
    def binary(cls):
        return servers.Proftpd.binary()

    @classmethod
    def modules(cls):
        return os.path.join(PKG_ROOT, "usr/lib/proftpd")

    @classmethod
    def missing(cls):
        for path in (cls.binary(), os.path.join(cls.modules(), "mod_proxy.so"),
                     os.path.join(cls.modules(), "mod_tls.so")):
            if not os.path.exists(path):
                return path
        return None

    def argv(self):
        tables = os.path.join(self.dir, "tables")
        os.makedirs(tables, mode=0o755)
        conf = os.path.join(self.dir, "proftpd.conf")
        with open(conf, "w") as f:
            f.write("""\
ServerName "bench relay"
ServerType standalone
DefaultServer on
Port %(port)d
DefaultAddress %(listen)s
SocketBindTight on
UseIPv6 off
UseReverseDNS off
User nobody
Group nogroup
MaxInstances 1000
PidFile %(dir)s/proftpd.pid
ScoreboardFile %(dir)s/proftpd.scoreboard
DelayTable none
WtmpLog off
TransferLog none
SystemLog %(dir)s/proftpd.log
TimeoutIdle 900
<IfModule mod_ctrls.c>
  ControlsEngine off
</IfModule>
ModulePath %(modules)s
LoadModule mod_tls.c
LoadModule mod_proxy.c
<IfModule mod_proxy.c>
  ProxyEngine on
  ProxyLog %(dir)s/proxy.log
  ProxyTables %(tables)s
  ProxyRole reverse
  ProxyReverseServers ftp://%(server)s:21
  ProxySourceAddress %(wan)s
</IfModule>
""" % {"port": PORT, "listen": labmod.GATEWAY_LAN4, "dir": self.dir, "tables": tables,
            "modules": self.modules(), "server": labmod.SERVER4, "wan": labmod.GATEWAY_WAN4})
        return [self.binary(), "-n", "-q", "-c", conf]

    def log_tail(self):
        for name in ("proxy.log", "proftpd.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    return f.read()[-1500:]
        return ""


ALL = (SuseFtpProxy, ProftpdModProxy)
