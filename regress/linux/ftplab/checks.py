"""What the kernel says: the daemon's nftables table and conntrack entries.

The daemon owns table `ip ftp-proxy-<port>` (`ip6 …` with -6); its sets and
maps hold one element per pinhole. "No pinhole left" means every set and map
of that table is empty.
"""

import json

from . import procs


def nft_table(lab, family, name):
    """The table as a list of nft JSON objects, or None if it does not exist."""
    cp = procs.run(["nft", "-j", "list", "table", family, name], ns=lab.gateway,
                   timeout=10, check=False)
    if cp.returncode != 0:
        if "No such file" in cp.stderr or "does not exist" in cp.stderr:
            return None
        raise procs.CommandError("nft -j list table %s %s: %s" % (family, name, cp.stderr.strip()))
    return json.loads(cp.stdout)["nftables"]


def sets(table):
    """{set or map name: the set object} of a listed table."""
    found = {}
    for obj in table or []:
        for kind in ("set", "map"):
            if kind in obj:
                found[obj[kind]["name"]] = obj[kind]
    return found


def elements(table):
    """{set or map name: [elements]} of a listed table (empty lists included)."""
    return {name: s.get("elem", []) for name, s in sets(table).items()}


def pinhole_count(table):
    return sum(len(e) for e in elements(table).values())


def describe(table):
    return "; ".join("%s=%s" % (n, json.dumps(e)) for n, e in elements(table).items() if e)


def wait_no_pinholes(lab, family, name, timeout=5):
    """Poll until every set/map of the table is empty; return None or a reason."""
    last = {}

    def empty():
        last["t"] = nft_table(lab, family, name)
        if last["t"] is None:
            return "gone"
        return "empty" if pinhole_count(last["t"]) == 0 else None
    try:
        state = procs.wait_for(empty, timeout, interval=0.05, what="no pinhole left")
    except TimeoutError:
        return "pinholes left in %s %s after the session: %s" % (family, name, describe(last["t"]))
    if state == "gone":
        return "table %s %s disappeared while the daemon runs" % (family, name)
    return None


def wait_table_gone(lab, family, name, timeout=5):
    """Poll until the table no longer exists; True if it went."""
    try:
        procs.wait_for(lambda: nft_table(lab, family, name) is None, timeout,
                       what="table %s %s removed" % (family, name))
        return True
    except TimeoutError:
        return False


def conntrack_marked(lab, mark):
    """conntrack entries in the gateway carrying mark (list of lines)."""
    cp = procs.run(["conntrack", "-L", "-m", str(mark)], ns=lab.gateway, timeout=10,
                   check=False)
    return [l for l in cp.stdout.splitlines() if l.strip()]


def conntrack_flush(lab):
    procs.run(["conntrack", "-F"], ns=lab.gateway, timeout=10, check=False)
