"""The network: three namespaces joined by veth pairs.

    client (LAN)            gateway                 server (WAN)
    lan0 ----------------- lan    wan ------------------ wan0
    192.0.2.2/24     192.0.2.1    198.51.100.1      198.51.100.2/24
    2001:db8:1::2/64 2001:db8:1::1  2001:db8:2::1   2001:db8:2::2/64
                                  (198.51.100.10, 2001:db8:2::a for -a)

The client's default route is the gateway. The server has no route back to
the client's network (except in the "direct" kind), so a data connection can
only work if the gateway translates it.

Kinds of gateway (what the admin configured):
  proxy   the ftp-proxy set-up: port 21 from the LAN is redirected to the
          daemon's port, the forward chain drops everything except packets of
          connections carrying the proxy's conntrack mark
  helper  the kernel's own FTP conntrack helper with masquerade (reference)
  direct  plain routing, the server routes back to the client (reference)
"""

import os

from . import procs

CLIENT4, GATEWAY_LAN4, GATEWAY_WAN4, SERVER4 = "192.0.2.2", "192.0.2.1", "198.51.100.1", "198.51.100.2"
CLIENT6, GATEWAY_LAN6, GATEWAY_WAN6, SERVER6 = "2001:db8:1::2", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::2"
# A second address on the gateway's WAN side, for -a (the source address
# toward servers); source address selection never picks it by itself (IPv4:
# secondary address; IPv6: deprecated).
GATEWAY_ALT4, GATEWAY_ALT6 = "198.51.100.10", "2001:db8:2::a"
LAN_IF, WAN_IF = "lan", "wan"

DEFAULT_MARK = 0x00667470
PROXY_PORT = 8021
ADMIN_TABLE = "lab"
KINDS = ("proxy", "helper", "direct")


def addr(family, role):
    """The address of role ('client', 'gw-lan', 'gw-wan', 'server') in family 4 or 6."""
    table = {
        4: {"client": CLIENT4, "gw-lan": GATEWAY_LAN4, "gw-wan": GATEWAY_WAN4, "server": SERVER4,
            "gw-alt": GATEWAY_ALT4},
        6: {"client": CLIENT6, "gw-lan": GATEWAY_LAN6, "gw-wan": GATEWAY_WAN6, "server": SERVER6,
            "gw-alt": GATEWAY_ALT6},
    }
    return table[family][role]


def url_host(address):
    return "[%s]" % address if ":" in address else address


class Lab:
    # The admin's own table (inet), beside the daemon's.
    admin_table = ADMIN_TABLE

    def __init__(self, kind="proxy", tag=None):
        if kind not in KINDS:
            raise ValueError("unknown gateway kind %r" % kind)
        self.kind = kind
        prefix = "fpx%d" % os.getpid()
        self.client, self.gateway, self.server = prefix + "c", prefix + "g", prefix + "s"
        self.created = []
        self.accept_mark = DEFAULT_MARK if tag is None else tag

    # -- life cycle -------------------------------------------------------

    def add_namespace(self, ns):
        """A new namespace of the lab's, deleted by down(): loopback up, no
        duplicate address detection (an address is usable at once), no
        reverse-path filter."""
        procs.run(["ip", "netns", "add", ns])
        self.created.append(ns)
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad",
                    "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            self.sysctl(ns, key, 0)
        self.ip(ns, "link", "set", "lo", "up")

    def up(self):
        for ns in (self.client, self.gateway, self.server):
            self.add_namespace(ns)
        procs.run(["ip", "link", "add", "lan0", "netns", self.client, "type", "veth",
                   "peer", "name", LAN_IF, "netns", self.gateway])
        procs.run(["ip", "link", "add", "wan0", "netns", self.server, "type", "veth",
                   "peer", "name", WAN_IF, "netns", self.gateway])
        self._address(self.client, "lan0", CLIENT4, CLIENT6)
        self._address(self.gateway, LAN_IF, GATEWAY_LAN4, GATEWAY_LAN6)
        self._address(self.gateway, WAN_IF, GATEWAY_WAN4, GATEWAY_WAN6)
        self._address(self.server, "wan0", SERVER4, SERVER6)
        self.ip(self.gateway, "addr", "add", GATEWAY_ALT4 + "/24", "dev", WAN_IF)
        # Deprecated (preferred_lft 0): never picked as a source address
        # unless a socket is bound to it, which is what -a does.
        self.ip(self.gateway, "addr", "add", GATEWAY_ALT6 + "/64", "dev", WAN_IF, "nodad",
                "preferred_lft", "0")
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            self.sysctl(self.gateway, key, 1)
        for ifname in (LAN_IF, WAN_IF):
            self.sysctl(self.gateway, "net.ipv4.conf.%s.rp_filter" % ifname, 0)
        self.ip(self.client, "route", "add", "default", "via", GATEWAY_LAN4)
        self.ip(self.client, "-6", "route", "add", "default", "via", GATEWAY_LAN6)
        if self.kind == "direct":
            self.ip(self.server, "route", "add", "192.0.2.0/24", "via", GATEWAY_WAN4)
            self.ip(self.server, "-6", "route", "add", "2001:db8:1::/64", "via", GATEWAY_WAN6)
        self.load_admin_rules()
        return self

    def down(self):
        """Stop whatever still runs in our namespaces (by PID), delete them."""
        for ns in reversed(self.created):
            cp = procs.run(["ip", "netns", "pids", ns], check=False, timeout=10)
            for pid in cp.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            procs.run(["ip", "netns", "del", ns], check=False, timeout=10)
        self.created = []

    # -- helpers ----------------------------------------------------------

    def ip(self, ns, *args):
        return procs.run(["ip"] + list(args), ns=ns, timeout=10)

    def sysctl(self, ns, key, value):
        procs.run(["sysctl", "-qw", "%s=%s" % (key, value)], ns=ns, timeout=10)

    def nft(self, script, ns=None):
        return procs.run(["nft", "-f", "-"], ns=ns or self.gateway, input=script, timeout=20)

    def _address(self, ns, ifname, a4, a6):
        self.ip(ns, "addr", "add", a4 + "/24", "dev", ifname)
        self.ip(ns, "addr", "add", a6 + "/64", "dev", ifname, "nodad")
        self.ip(ns, "link", "set", ifname, "up")

    # -- the admin's own rules on the gateway -----------------------------

    def admin_rules(self):
        if self.kind == "proxy":
            return """
table inet %(t)s {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "%(lan)s" tcp dport 21 redirect to :%(port)d
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct mark 0x%(mark)08x accept
	}
}
""" % {"t": ADMIN_TABLE, "lan": LAN_IF, "port": PROXY_PORT, "mark": self.accept_mark}
        if self.kind == "helper":
            return """
table inet %(t)s {
	ct helper ftp-std { type "ftp" protocol tcp; l3proto inet; }
	chain helpers {
		type filter hook prerouting priority filter; policy accept;
		iifname "%(lan)s" tcp dport 21 ct helper set "ftp-std"
	}
	chain pre { type nat hook prerouting priority dstnat; policy accept; }
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "%(lan)s" oifname "%(wan)s" ct state new accept
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "%(wan)s" masquerade
	}
}
""" % {"t": ADMIN_TABLE, "lan": LAN_IF, "wan": WAN_IF}
        return """
table inet %(t)s {
	chain forward { type filter hook forward priority filter; policy accept; }
}
""" % {"t": ADMIN_TABLE}

    def load_admin_rules(self, ns=None):
        """The admin's table into the gateway (or ns). Flush-and-load in one
        transaction: "add table" makes the delete valid on the first load
        too."""
        self.nft("add table inet %s\ndelete table inet %s\n%s"
                 % (self.admin_table, self.admin_table, self.admin_rules()), ns=ns)

    def set_accept_mark(self, mark):
        """Change the one accept line of the forward chain to another mark."""
        self.accept_mark = mark
        self.load_admin_rules()

    def ftp_target(self, family):
        """Where a client connects to reach the FTP server: the server's own
        address, port 21 (redirected to the proxy on the gateway)."""
        return addr(family, "server"), 21
