"""Every pinhole the kernel ever held, and whether each one was allowed.

Two views of the daemon's table, kept for the whole run:

  - `nft -j monitor new elements` in the gateway: the kernel reports each
    element the moment it is added, so an element that lived for a
    microsecond between two samples is still seen;
  - a sampler that lists the table (`nft -j list table`) a few times a
    second: what is really there at a given time, and the most at once.

A pinhole is allowed only in one of the two shapes the daemon installs, with
every address one of the control connection's peers and the data port at
least 1024 (the key is the data connection's original saddr . daddr . dport):

  passive  key client . server . pport   rdr_to server . port   nat_to proxy
  active   key server . proxy . pport    rdr_to client . port   nat_to server

where proxy is one of the gateway's own WAN addresses (the kernel picks the
daemon's source address toward the server) and pport is in 49152..65534.
"""

import json
import threading
import time

from . import checks
from . import lab as labmod
from . import procs

PPORTS = range(49152, 65535)
MIN_DATA_PORT = 1024


class Element:
    """One set or map element: set name, key (saddr, daddr, dport), value."""

    def __init__(self, table, set_name, key, value):
        self.table = table
        self.set = set_name
        self.key = key
        self.value = value

    def __repr__(self):
        v = "" if self.value is None else " : %s" % (self.value,)
        return "%s %s %s%s" % (self.table, self.set, " . ".join(map(str, self.key)), v)


def parse_items(table, set_name, items):
    """Elements from the "elem"/"set" list nft -j prints for a set or map."""
    out = []
    for item in items:
        value = None
        if isinstance(item, list):          # map: [key, value]
            item, value = item
            if isinstance(value, dict) and "concat" in value:
                value = tuple(value["concat"])
        if isinstance(item, dict) and "elem" in item:
            item = item["elem"]["val"]
        key = tuple(item["concat"]) if isinstance(item, dict) and "concat" in item else (item,)
        out.append(Element(table, set_name, key, value))
    return out


def element_texts(listing, table_name="t"):
    """The elements of a listing as sorted text, without their expiry."""
    return sorted(repr(e) for e in listed_elements(listing, table_name))


def listed_elements(listing, table_name):
    """Every element of a `nft -j list table` result."""
    out = []
    for name, s in checks.sets(listing).items():
        out += parse_items(table_name, name, s.get("elem", []))
    return out


def gateway_wan(family):
    """The gateway's own addresses on the server side."""
    roles = [r for r in ("gw-wan", "gw-alt") if _has_role(family, r)]
    return tuple(labmod.addr(family, r) for r in roles)


def _has_role(family, role):
    try:
        labmod.addr(family, role)
        return True
    except KeyError:
        return False


def violation(e, family):
    """Why element e is not an allowed pinhole, or None."""
    client = labmod.addr(family, "client")
    server = labmod.addr(family, "server")
    proxies = gateway_wan(family)
    if len(e.key) != 3:
        return "key is not saddr . daddr . dport"
    saddr, daddr, pport = e.key
    if not isinstance(pport, int) or pport not in PPORTS:
        return "proxy port %r outside 49152..65534" % (pport,)
    if (saddr, daddr) == (client, server):
        mode, target, source = "passive", server, proxies
    elif saddr == server and daddr in proxies:
        mode, target, source = "active", client, (server,)
    else:
        return "key names %s -> %s, not client -> server nor server -> proxy" % (saddr, daddr)
    if e.set == "once":
        return None if e.value is None else "once element has a value"
    if e.set == "rdr_to":
        if not (isinstance(e.value, tuple) and len(e.value) == 2):
            return "rdr_to value %r is not address . port" % (e.value,)
        addr, port = e.value
        if addr != target:
            return "%s redirect to %s, not to %s" % (mode, addr, target)
        if not isinstance(port, int) or port < MIN_DATA_PORT:
            return "redirect to port %r, below %d" % (port, MIN_DATA_PORT)
        return None
    if e.set in ("nat_to", "nat_to_20"):
        if e.value not in source:
            return "%s source address %r, not %s" % (mode, e.value, " or ".join(source))
        if e.set == "nat_to_20" and mode != "active":
            return "port-20 source on a passive pinhole"
        return None
    return "element of an unknown set %s" % e.set


class Watch:
    """The monitor and the sampler of one daemon's table (family 4 or 6)."""

    def __init__(self, lab, family, table, logdir, interval=0.2):
        self.lab = lab
        self.family = family
        self.nft_family, self.name = table
        self.interval = interval
        self.added = []            # [(monotonic time, Element)] from the monitor
        self.sampled = []          # [(monotonic time, [Element])] from the sampler
        self.max_seen = 0
        self.max_at = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        import subprocess
        self.monitor = procs.Background(
            "nft-monitor-%d" % family, ["nft", "-j", "monitor", "new", "elements"],
            ns=lab.gateway, stdout=subprocess.PIPE,
            log_path="%s/nft-monitor-%d.err" % (logdir, family))
        self._reader = threading.Thread(target=self._read_monitor, daemon=True)
        self._reader.start()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _read_monitor(self):
        for raw in self.monitor.popen.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            for verb in ("add", "create"):
                el = obj.get(verb, {}).get("element")
                if not el or el.get("table") != self.name or el.get("family") != self.nft_family:
                    continue
                items = el.get("elem", {}).get("set", [])
                now = time.monotonic()
                with self._lock:
                    for e in parse_items(self.name, el["name"], items):
                        self.added.append((now, e))

    def _sample(self):
        while not self._stop.wait(self.interval):
            try:
                listing = checks.nft_table(self.lab, self.nft_family, self.name)
            except Exception:
                continue
            if listing is None:
                continue
            elems = listed_elements(listing, self.name)
            now = time.monotonic()
            with self._lock:
                self.sampled.append((now, elems))
                if len(self.sampled) > 20000:
                    del self.sampled[:10000]
                if len(elems) > self.max_seen:
                    self.max_seen, self.max_at = len(elems), now

    def mark(self):
        """A point in time to ask about later."""
        return time.monotonic()

    def added_since(self, since):
        with self._lock:
            return [e for t, e in self.added if t >= since]

    def sampled_since(self, since):
        with self._lock:
            return [(t, es) for t, es in self.sampled if t >= since]

    def settle(self, timeout=2):
        """Wait until the monitor has caught up. No marker element can be
        added to an owned table from outside, so wait for a quiet pipe
        instead: two reads of the count that agree 0.2 s apart."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self.added)
            if n == last:
                return
            last = n
            self._stop.wait(0.2)

    def violations(self, since):
        """Every element seen since `since` (added or sampled) that is not an
        allowed pinhole, as text; empty when all were allowed."""
        self.settle()
        bad = []
        seen = set()
        for e in self.added_since(since) + [e for _, es in self.sampled_since(since) for e in es]:
            r = violation(e, self.family)
            text = repr(e)
            if r and text not in seen:
                seen.add(text)
                bad.append("%s (%s)" % (text, r))
        return bad

    def count_added(self, since, distinct=True):
        """Pinholes added since `since`, from their `once` elements: distinct
        keys (the removal batch re-adds a consumed element before deleting
        it, so one pinhole can be reported twice), or every addition."""
        self.settle()
        keys = [e.key for e in self.added_since(since) if e.set == "once"]
        return len(set(keys)) if distinct else len(keys)

    def max_sampled(self, since):
        return max([len(es) for _, es in self.sampled_since(since)] or [0])

    def stop(self):
        self._stop.set()
        self.monitor.stop(timeout=5)
        self._sampler.join(5)
