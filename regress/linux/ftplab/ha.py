"""The high-availability lab: two ftp-proxy gateways sharing addresses.

    client ns (LAN switch)            gateways                 server ns (WAN switch)
    sw 192.0.2.2/24 ---- la -- lan [a] wan -- wa ---- sw 198.51.100.2/24
       2001:db8:1::2     lb -- lan [b] wan -- wb         2001:db8:2::2
                                   a sync -- sync b
                                   203.0.113.1/.2

    gateway a: lan 192.0.2.3  2001:db8:1::3   wan 198.51.100.3  2001:db8:2::3
    gateway b: lan 192.0.2.4  2001:db8:1::4   wan 198.51.100.4  2001:db8:2::4
    shared (VRRP): 192.0.2.1, 2001:db8:1::1 (lan), 198.51.100.1, 2001:db8:2::1 (wan)

The shared addresses are lab.py's gateway addresses, so the client's
default route, lab.addr() and pinwatch's allowed shapes hold unchanged. The
server has no route to the client network.

Each gateway runs what a real pair runs, started here and stopped by PID:

  - the admin's table, dist/ha/nftables.conf as it is: port 21 from the
    LAN redirected to 8021, packets that would start tracking in the middle
    of a connection dropped, a forward chain with policy drop and one
    accept line for the conntrack mark;
  - ftp-proxy, -4 and -6, the same options on both: listening on the
    wildcard (the redirect goes to the host's own address), and `-a` the
    shared wan address, so every data connection's translated source moves
    with the master;
  - keepalived (VRRP) and conntrackd, with dist/ha/keepalived.conf and
    dist/ha/conntrackd.conf rendered into a temporary directory, and
    dist/ha/notify.sh as keepalived's notify script.

A late commit (Gateway.late_commit) runs notify.sh through a wrapper of
the lab's that waits before it, on the way to master only: the window
between the shared addresses and the copied states in the kernel, which
the admin's `pickup` chain covers, made wide enough to be hit every time.

Failure of a gateway is simulated by taking its three links down, then
stopping its processes: a dead host sends nothing, neither a FIN from its
ftp-proxy nor a priority-0 advertisement from keepalived, so the other one
learns of it only by the missing advertisements, as with a real crash. Its
return is a reboot: conntrack flushed, links up, its processes started
again.
"""

import ftplib
import hashlib
import os
import signal
import string
import time

from . import checks
from . import daemon as daemonmod
from . import ftpc
from . import lab as labmod
from . import nsnet
from . import procs
from . import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DIST = os.path.join(REPO, "dist", "ha")

LAN_IF, WAN_IF, SYNC_IF = labmod.LAN_IF, labmod.WAN_IF, "sync"
# The shared addresses (keepalived's virtual_ipaddress in dist/ha).
SHARED = {
    4: {"lan": labmod.GATEWAY_LAN4, "wan": labmod.GATEWAY_WAN4},
    6: {"lan": labmod.GATEWAY_LAN6, "wan": labmod.GATEWAY_WAN6},
}
HOSTS = {
    "a": {"lan4": "192.0.2.3", "lan6": "2001:db8:1::3", "wan4": "198.51.100.3",
          "wan6": "2001:db8:2::3", "sync": "203.0.113.1", "priority": 150},
    "b": {"lan4": "192.0.2.4", "lan6": "2001:db8:1::4", "wan4": "198.51.100.4",
          "wan6": "2001:db8:2::4", "sync": "203.0.113.2", "priority": 100},
}
# vsftpd sends each download at this rate (bytes per second; anon_max_rate,
# per session, so concurrent downloads cannot starve each other): a
# download of a few MiB is still flowing when a gateway fails.
SESSION_RATE = 512 << 10
START_TIMEOUT = 15


def render(template, values, path):
    """dist/ha/<template> with its ${NAME} fields filled, written to path."""
    with open(os.path.join(DIST, template)) as f:
        text = string.Template(f.read()).substitute(values)
    with open(path, "w") as f:
        f.write(text)
    return path


class Gateway:
    """One of the two firewalls. Has the attributes that daemon.Daemon,
    checks and pinwatch read from a lab (gateway, client, server)."""

    def __init__(self, lab, name, workdir, logdir, binary):
        self.lab = lab
        self.name = name
        self.conf = HOSTS[name]
        self.gateway = lab.prefix + name
        self.client, self.server = lab.client, lab.server
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.logdir = logdir
        self.binary = binary
        self.state_file = os.path.join(self.dir, "vrrp-state")
        self.daemons = {}          # family -> daemon.Daemon
        self.keepalived = None
        self.vrrp_pid = None       # keepalived's VRRP child, from its pid file
        self.vrrp_pid_file = os.path.join(self.dir, "vrrp.pid")
        self.conntrackd = None
        self.boots = 0
        peer = "b" if name == "a" else "a"
        self.ct_conf = render("conntrackd.conf", {
            "SYNC_ADDR": self.conf["sync"], "SYNC_PEER": HOSTS[peer]["sync"],
            "RUN_DIR": self.dir}, os.path.join(self.dir, "conntrackd.conf"))
        self.ka_conf = self.render_keepalived(os.path.join(DIST, "notify.sh"))

    def render_keepalived(self, notify):
        return render("keepalived.conf", {
            "ROUTER_ID": "ftp-proxy-" + self.name, "PRIORITY": self.conf["priority"],
            "NOTIFY": notify, "CONNTRACKD_CONF": self.ct_conf,
            "STATE_FILE": self.state_file}, os.path.join(self.dir, "keepalived.conf"))

    def __repr__(self):
        return "gateway " + self.name

    def ip(self, *args):
        return procs.run(["ip"] + list(args), ns=self.gateway, timeout=10)

    # -- the processes of one boot ------------------------------------------

    def start_daemons(self):
        """ftp-proxy -4 and -6 with the options both hosts share."""
        for family, wildcard in ((4, "0.0.0.0"), (6, "::")):
            d = daemonmod.Daemon(self, family, options=["-a", SHARED[family]["wan"]],
                                 binary=self.binary, logdir=self.logdir,
                                 name="ftp-proxy-%s%d" % (self.name, self.boots))
            d.listen = wildcard
            d.start()
            self.daemons[family] = d

    def start_conntrackd(self):
        self.conntrackd = procs.Background(
            "conntrackd-" + self.name, ["conntrackd", "-C", self.ct_conf], ns=self.gateway,
            log_path=os.path.join(self.logdir, "conntrackd-%s%d.out" % (self.name, self.boots)))

        def answers():
            if not self.conntrackd.alive():
                return "exited"
            return "ready" if self.ctl("-s").returncode == 0 else None
        state = procs.wait_for(answers, START_TIMEOUT, what="conntrackd on " + self.name)
        if state != "ready":
            raise RuntimeError("conntrackd on %s exited: %s" % (self.name, self.conntrackd.log_tail()))

    def start_keepalived(self):
        """keepalived in the foreground (its PID is ours), and the PID of the
        VRRP child it forks, read from the child's pid file: the child is
        not ours, and it is stopped by that PID when it outlives its
        parent."""
        if os.path.exists(self.vrrp_pid_file):
            os.unlink(self.vrrp_pid_file)
        self.keepalived = procs.Background(
            "keepalived-" + self.name,
            ["keepalived", "-n", "-l", "-D", "-G", "-P", "-f", self.ka_conf,
             "-p", os.path.join(self.dir, "keepalived.pid"), "-r", self.vrrp_pid_file],
            ns=self.gateway,
            log_path=os.path.join(self.logdir, "keepalived-%s%d.log" % (self.name, self.boots)))

        def vrrp_pid():
            if not self.keepalived.alive():
                return "exited"
            try:
                with open(self.vrrp_pid_file) as f:
                    pid = int(f.read().split()[0])
            except (FileNotFoundError, ValueError, IndexError):
                return None
            return pid if not procs.gone(pid) else None
        found = procs.wait_for(vrrp_pid, START_TIMEOUT, what="keepalived's VRRP child on " + self.name)
        if found == "exited":
            raise RuntimeError("keepalived on %s exited: %s" % (self.name, self.keepalived.log_tail()))
        self.vrrp_pid = found

    def stop_keepalived(self, sig):
        """keepalived (sig, bounded wait), then its VRRP child by PID if it
        is still there (SIGKILL), until it is gone (bounded). Returns the
        parent's exit status (None: it had to be killed)."""
        status = self.keepalived.stop(sig, timeout=10)
        self.keepalived = None
        pid, self.vrrp_pid = self.vrrp_pid, None
        if pid is not None and not procs.gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            procs.wait_for(lambda: procs.gone(pid), 10,
                           what="keepalived's VRRP child %d on %s gone" % (pid, self.name))
        return status

    def late_commit(self, seconds):
        """From now on, this host's notify.sh runs `seconds` late on the way
        to master, through a wrapper script; keepalived is restarted to read
        it. Only on a backup, where the restart moves nothing."""
        if self.state() != "BACKUP":
            raise RuntimeError("%s is %s: a late commit is set on a backup" % (self, self.state()))
        wrapper = os.path.join(self.dir, "notify-late.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\n# dist/ha/notify.sh, %s s late on the way to master\n'
                    '[ "$5" = MASTER ] && sleep %s\nexec "%s" "$@"\n'
                    % (seconds, seconds, os.path.join(DIST, "notify.sh")))
        os.chmod(wrapper, 0o755)
        self.ka_conf = self.render_keepalived(wrapper)
        self.stop_keepalived(signal.SIGTERM)
        since = time.time()
        self.start_keepalived()
        procs.wait_for(lambda: self.became("BACKUP", since), START_TIMEOUT,
                       what="%s BACKUP again" % self)

    def boot(self):
        """Links up, conntrackd, ftp-proxy, keepalived (in the order a
        firewall should start them: keepalived last, so the host never
        takes the shared addresses before it can serve them)."""
        self.boots += 1
        for ifname in (LAN_IF, WAN_IF, SYNC_IF):
            self.ip("link", "set", ifname, "up")
        self.start_conntrackd()
        self.start_daemons()
        self.start_keepalived()

    def crash(self):
        """Links down first (nothing the dying processes send gets out),
        then every process of this host stopped by PID: ftp-proxy with
        SIGKILL (its owned table goes with its netlink socket), keepalived
        with SIGTERM (a rebooted host has no shared address left),
        conntrackd with SIGKILL."""
        for ifname in (LAN_IF, WAN_IF, SYNC_IF):
            self.ip("link", "set", ifname, "down")
        failed_at = time.time()
        for d in self.daemons.values():
            d.proc.stop(signal.SIGKILL, timeout=5)
        self.daemons = {}
        if self.keepalived is not None:
            self.stop_keepalived(signal.SIGTERM)
        if self.conntrackd is not None:
            self.conntrackd.stop(signal.SIGKILL, timeout=5)
            self.conntrackd = None
        return failed_at

    def reboot(self):
        """What a reboot clears (conntrack, leftover shared addresses),
        then boot()."""
        procs.run(["conntrack", "-F"], ns=self.gateway, timeout=10, check=False)
        for family in (4, 6):
            for side in ("lan", "wan"):
                procs.run(["ip", "addr", "del", "%s/%d" % (SHARED[family][side],
                                                          24 if family == 4 else 64),
                           "dev", LAN_IF if side == "lan" else WAN_IF],
                          ns=self.gateway, timeout=10, check=False)
        for path in (os.path.join(self.dir, "conntrackd.lock"),
                     os.path.join(self.dir, "conntrackd.ctl")):
            if os.path.exists(path):
                os.unlink(path)
        self.boot()

    def stop(self):
        """Orderly shutdown, each with SIGTERM: keepalived (its VRRP child
        gone too), ftp-proxy (exit 0 and its table gone, daemon.stop_checked),
        conntrackd. Returns ({process: exit status}, the ftp-proxies'
        problems); after an orderly stop every status is 0 and there is no
        problem."""
        statuses = {}
        if self.keepalived is not None:
            statuses["keepalived"] = self.stop_keepalived(signal.SIGTERM)
        problems = daemonmod.stop_checked(self.daemons)
        self.daemons = {}
        if self.conntrackd is not None:
            statuses["conntrackd"] = self.conntrackd.stop(signal.SIGTERM, timeout=10)
            self.conntrackd = None
        return statuses, problems

    # -- what the host says -------------------------------------------------

    def ctl(self, *args):
        """conntrackd's client mode against this host's daemon."""
        return procs.run(["conntrackd", "-C", self.ct_conf] + list(args), ns=self.gateway,
                         timeout=10, check=False)

    def states(self):
        """[(state, began, ended)] from notify.sh, oldest first."""
        try:
            with open(self.state_file) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                out.append((parts[0], float(parts[1]), float(parts[2])))
        return out

    def state(self):
        s = self.states()
        return s[-1][0] if s else None

    def became(self, state, since):
        """The first notify.sh call reporting state that began after since."""
        for s in self.states():
            if s[0] == state and s[1] >= since:
                return s
        return None

    def has_shared(self):
        """Which shared addresses are on this host's interfaces (ip addr)."""
        cp = procs.run(["ip", "-o", "addr", "show"], ns=self.gateway, timeout=10)
        present = set()
        for line in cp.stdout.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[2] in ("inet", "inet6"):
                present.add(fields[3].split("/")[0])
        return {a for fam in SHARED.values() for a in fam.values() if a in present}

    def external_cache(self, mark):
        """Lines of conntrackd's external cache (the other host's states)
        that carry mark."""
        cp = self.ctl("-e")
        return [l for l in cp.stdout.splitlines() if "mark=%d " % mark in l + " "]

    def kernel_marked(self, mark):
        return checks.conntrack_marked(self, mark)

    def established(self, port=labmod.PROXY_PORT):
        """Established TCP connections ending in this host's port (its
        ftp-proxy's control connections from clients)."""
        n = 0
        for table in ("tcp", "tcp6"):
            cp = procs.run(["cat", "/proc/net/" + table], ns=self.gateway, timeout=10)
            for line in cp.stdout.splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    n += 1
        return n


class RateLimitedVsftpd(servers.Vsftpd):
    """servers.py's vsftpd, each anonymous session held to SESSION_RATE."""

    def argv(self):
        argv = super().argv()
        with open(argv[-1], "a") as f:
            f.write("anon_max_rate=%d\n" % SESSION_RATE)
        return argv


class HaLab(labmod.Lab):
    """lab.Lab with two gateways instead of one; the admin's rules are
    dist/ha's, sysctl and clean-up the single-gateway lab's."""

    # The admin's table in dist/ha/nftables.conf.
    admin_table = "filter"

    def __init__(self, workdir, logdir, binary=None):
        super().__init__("proxy")
        self.prefix = "fha%d" % os.getpid()
        self.client, self.server = self.prefix + "c", self.prefix + "s"
        self.binary = binary or daemonmod.default_binary()
        self.hosts = {n: Gateway(self, n, workdir, logdir, self.binary) for n in ("a", "b")}

    @property
    def gateway(self):
        """There are two: a caller names one (hosts["a"].gateway). lab.Lab's
        helpers take ns=None as the root namespace, so a silent None here
        would run their commands outside the lab."""
        raise RuntimeError("HaLab has two gateways: use hosts[name].gateway")

    @gateway.setter
    def gateway(self, value):
        # lab.Lab.__init__ names a single gateway; this lab has none.
        pass

    def up(self):
        namespaces = [self.client, self.server] + [g.gateway for g in self.hosts.values()]
        for ns in namespaces:
            self.add_namespace(ns)
        # The two switches: a bridge in the client's and the server's
        # namespace, with the host's own address on it. Multicast snooping
        # off, so VRRP advertisements and neighbour discovery flood.
        for ns, addr4, addr6, ports in (
                (self.client, labmod.CLIENT4, labmod.CLIENT6, ("la", "lb")),
                (self.server, labmod.SERVER4, labmod.SERVER6, ("wa", "wb"))):
            self.ip(ns, "link", "add", "name", "sw", "type", "bridge", "mcast_snooping", "0")
            ifname = LAN_IF if ns == self.client else WAN_IF
            for port, gw in zip(ports, ("a", "b")):
                procs.run(["ip", "link", "add", port, "netns", ns, "type", "veth", "peer",
                           "name", ifname, "netns", self.hosts[gw].gateway])
                self.ip(ns, "link", "set", port, "master", "sw")
                self.ip(ns, "link", "set", port, "up")
            self._address(ns, "sw", addr4, addr6)
        procs.run(["ip", "link", "add", SYNC_IF, "netns", self.hosts["a"].gateway, "type",
                   "veth", "peer", "name", SYNC_IF, "netns", self.hosts["b"].gateway])
        for g in self.hosts.values():
            c = g.conf
            self._address(g.gateway, LAN_IF, c["lan4"], c["lan6"])
            self._address(g.gateway, WAN_IF, c["wan4"], c["wan6"])
            g.ip("addr", "add", c["sync"] + "/24", "dev", SYNC_IF)
            g.ip("link", "set", SYNC_IF, "up")
            for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                self.sysctl(g.gateway, key, 1)
            for ifname in (LAN_IF, WAN_IF, SYNC_IF):
                self.sysctl(g.gateway, "net.ipv4.conf.%s.rp_filter" % ifname, 0)
        self.load_admin_rules()
        self.ip(self.client, "route", "add", "default", "via", labmod.GATEWAY_LAN4)
        self.ip(self.client, "-6", "route", "add", "default", "via", labmod.GATEWAY_LAN6)
        return self

    def admin_rules(self):
        """dist/ha/nftables.conf as it is: the ruleset both firewalls load."""
        with open(os.path.join(DIST, "nftables.conf")) as f:
            return f.read()

    def load_admin_rules(self, ns=None):
        """The admin's ruleset on both gateways."""
        for g in self.hosts.values():
            super().load_admin_rules(ns=g.gateway)

    def master(self):
        """The gateway that holds the shared addresses, or None."""
        holders = [g for g in self.hosts.values() if g.has_shared()]
        return holders[0] if len(holders) == 1 else None

    def start_pair(self):
        """a boots and becomes master, then b boots and stays backup."""
        a, b = self.hosts["a"], self.hosts["b"]
        t0 = time.time()
        a.boot()
        procs.wait_for(lambda: a.became("MASTER", t0), START_TIMEOUT, what="a MASTER")
        b.boot()
        procs.wait_for(lambda: b.became("BACKUP", t0), START_TIMEOUT, what="b BACKUP")

    def stop_all_hosts(self):
        """Gateway.stop() of each host: {name: (statuses, problems)}."""
        return {g.name: g.stop() for g in self.hosts.values()}



# -- clients through the shared address ---------------------------------------

USER, PASSWORD = "anonymous", "regress@example.org"


class Download:
    """One RETR through the shared address on a thread in the client
    namespace, with ftpc.Explicit forcing exactly one data command. The
    bytes are counted and hashed as they arrive, so a case can see that the
    transfer is flowing and, after a failover, how much came through the
    new master."""

    def __init__(self, lab, family, cmd, remote, timeout=30):
        self.family, self.cmd, self.remote = family, cmd, remote
        self.timeout = timeout
        self.host = labmod.addr(family, "server")
        self.received = 0
        self.sha = hashlib.sha256()
        self.error = None          # the transfer itself failed: why
        self.replies = []          # control replies after the data: 226, NOOP's 200
        self.control_error = None  # the control connection died instead
        self.t_start = time.monotonic()
        self.t_data = self.t_end = None  # the data connection open, closed
        self.thread = nsnet.spawn(lab.client, self._run, name="retr-%s%d" % (cmd, family))

    def __repr__(self):
        return "%s/v%d" % (self.cmd, self.family)

    def _run(self):
        ftp = ftpc.Explicit(self.cmd, False, timeout=self.timeout)
        try:
            ftp.connect(self.host, 21)
            ftp.login(USER, PASSWORD)
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("RETR " + self.remote)
            self.t_data = time.monotonic()
        except (ftplib.Error, OSError, EOFError) as e:
            self.error = "%s: %s" % (type(e).__name__, e)
            ftp.close()
            return
        try:
            with conn:
                while True:
                    block = conn.recv(1 << 16)
                    if not block:
                        break
                    self.sha.update(block)
                    self.received += len(block)
        except OSError as e:
            self.error = "data: %s: %s" % (type(e).__name__, e)
            ftp.close()
            return
        self.t_end = time.monotonic()
        # The end of the transfer on the control connection (226), then a
        # NOOP's reply: or the error that says the session has gone.
        try:
            ftp.putcmd("NOOP")
            self.replies.append(ftp.getresp())
            self.replies.append(ftp.getresp())
        except (ftplib.Error, OSError, EOFError) as e:
            self.control_error = "%s: %s" % (type(e).__name__, e)
        finally:
            ftp.close()

    def flowing(self, at_least):
        return self.received >= at_least

    def done(self):
        return not self.thread.is_alive()

    def join(self, timeout):
        self.thread.join(timeout)
        return self.done()


def downloads(lab, modes, remote, per_mode=1):
    """Starts per_mode downloads for each (family, cmd) in modes."""
    return [Download(lab, family, cmd, remote) for family, cmd in modes for _ in range(per_mode)]


def try_session(lab, family=4, timeout=1.0):
    """Logs in through the shared address from the client namespace and
    holds the session; returns (ftp, None) or (None, why)."""
    def body():
        ftp = ftplib.FTP(timeout=timeout)
        try:
            ftp.connect(labmod.addr(family, "server"), 21)
            ftp.login(USER, PASSWORD)
            return ftp, None
        except (ftplib.Error, OSError, EOFError) as e:
            ftp.close()
            return None, "%s: %s" % (type(e).__name__, e)
    return nsnet.call_in(lab.client, body, timeout=timeout * 4 + 5)
