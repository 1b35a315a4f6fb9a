#!/usr/bin/env python3
"""Decode the pf model's ioctl traces with py-pf and check every rule.

    pf-decode.py TRACE_DIR          check every TRACE_DIR/*.trace
    pf-decode.py --self-test DIR    also prove that a corrupted byte fails

The traces come from `PF_TRACE_DIR=DIR cargo test --test pf_model` (see
tests/pf_model.rs for the format). py-pf (PyPI, pure Python over ctypes)
describes pf's ioctl structures on its own; its pfioc_rule is 3408 bytes
and its pf_rule 1344, as in pfvar.h rev 1.543. For every DIOCADDRULE this
script decodes the bytes with py-pf and compares, field by field, with what
the `pinhole` line says the rule must be, following ftp-proxy(8):

  passive (PASV/EPSV), the client connects to orig:pport:
    pass in  quick on rdomain CRD inet proto tcp from CLIENT to ORIG port = PPORT
        flags S/SA keep state (max 1) rtable PRD rdr-to SERVER port PORT
    pass out quick on rdomain PRD inet proto tcp from CLIENT to SERVER port = PORT
        flags S/SA keep state (max 1) nat-to PROXY              (50001:65535)
  active (PORT/EPRT), the server connects to proxy:pport:
    pass in  quick on rdomain PRD ... from SERVER to PROXY port = PPORT
        ... rtable CRD rdr-to CLIENT port PORT
    pass out quick on rdomain CRD ... from SERVER to CLIENT port = PORT
        ... nat-to ORIG                     (port 20 with -r and PORT)
  -T TAG: `match` instead of `pass`, no quick, `tag TAG`; -q Q: `queue Q`;
  -v: log, -vv: log (all); IPv6: inet6.

It then prints py-pf's rendering of the rule beside the daemon's own
description of it (the `#<id> rules:` log line, `describe` in the trace)
and requires the two to agree, apart from the py-pf printer differences
listed in PRINTER_DIFFERENCES.

Exit status 0 when every rule matches, 1 otherwise.
"""

import ctypes
import glob
import os
import re
import socket
import sys
import tempfile

try:
    import pf._struct as pfs
    import pf.constants as pfc
    import pf.rule as pfr
except ImportError as e:  # pragma: no cover - reported to the caller
    sys.exit(f"pf-decode: py-pf is not importable ({e}); "
             "run regress/linux/install-deps.sh pypf and set PYTHONPATH")

# OpenBSD's address families, as the kernel and the traces carry them.
# py-pf takes AF_INET/AF_INET6 from the host's socket module: on Linux
# AF_INET6 is 10, not 24, so its printer cannot read an OpenBSD inet6 rule.
OPENBSD_AF_INET = 2
OPENBSD_AF_INET6 = 24
IPPROTO_TCP = 6
TH_SYN, TH_ACK = 0x02, 0x10
NAT_PORTS = (50001, 65535)

# Where py-pf's printer differs from pfctl's print_rule, and how the
# comparison accounts for it (each is a fact about py-pf 0.2.3's printer,
# not about the rule: the fields themselves are checked above without it):
#  - it formats tag names with str() of bytes under Python 3, so pfctl's
#    `tag FTP` comes out as `tag b'FTP'`;
#  - it needs the host's AF_INET6 in the af field (see above): the copy it
#    renders carries the host's number, the field check the raw byte.
#  - it cannot print a rule with a queue at all (0.2.3 indexes the
#    integer scrub_flags: TypeError), and its set clause would read
#    `set ( queue Q )` where pfctl prints `set (queue Q)`: such a rule is
#    rendered from a copy without qname and compared with the daemon's line
#    without its ` set (queue Q)`, after qname itself was checked.
# Not a difference: `on rdomain 0` and `rtable 0`. pfctl prints them too
# (print_rule: onrdomain >= 0, rtableid != -1), and so does the daemon.
PRINTER_DIFFERENCES = [(re.compile(r"tag b'([^']*)'"), r"tag \1")]

assert ctypes.sizeof(pfs.pfioc_rule) == 3408, ctypes.sizeof(pfs.pfioc_rule)
assert ctypes.sizeof(pfs.pf_rule) == 1344, ctypes.sizeof(pfs.pf_rule)
TRANS_HEADER = ctypes.sizeof(pfs.pfioc_trans)


class Trace:
    """One trace file: blocks of a `pinhole` line, calls and descriptions."""

    def __init__(self, path):
        self.path = path
        self.blocks = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if line.startswith("pinhole "):
                    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                    self.blocks.append({"line": n, "pinhole": fields,
                                        "calls": [], "describe": []})
                elif line.startswith("describe "):
                    self.blocks[-1]["describe"].append(line[len("describe "):])
                elif line:
                    parts = line.split()
                    errno = None
                    if len(parts) > 2 and parts[2].startswith("errno="):
                        errno = int(parts[2][len("errno="):])
                    self.blocks[-1]["calls"].append(
                        (parts[0], bytes.fromhex(parts[1]), errno, n))


def cstr(raw):
    return bytes(raw).split(b"\0", 1)[0].decode()


def trans_element(data):
    """The pfioc_trans header and its one element from a trace's bytes."""
    head = pfs.pfioc_trans.from_buffer_copy(data[:TRANS_HEADER])
    elem = pfs.pfioc_trans_e.from_buffer_copy(data[TRANS_HEADER:])
    return head, elem


def host_bytes(wrap, af):
    """(address, mask) of a PF_ADDR_ADDRMASK address, as packed bytes."""
    n = 4 if af == OPENBSD_AF_INET else 16
    return (bytes(wrap.v.a.addr.addr8)[:n], bytes(wrap.v.a.mask.addr8)[:n])


def packed(addr):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return socket.inet_pton(fam, addr)


def expected(p):
    """The two rules the pinhole line calls for, as field dictionaries."""
    crd, prd = int(p["crd"]), int(p["prd"])
    tag = None if p["tag"] == "-" else p["tag"]
    queue = None if p["queue"] == "-" else p["queue"]
    log = {0: 0, 1: pfc.PF_LOG}.get(int(p["log"]), pfc.PF_LOG_ALL)
    inet6 = ":" in p["client"]

    def rule(direction, src, dst, port, on, rtable):
        return {
            "action": pfc.PF_MATCH if tag else pfc.PF_PASS,
            "direction": direction,
            "quick": 0 if tag else 1,
            "log": log,
            "af": OPENBSD_AF_INET6 if inet6 else OPENBSD_AF_INET,
            "proto": IPPROTO_TCP,
            "src": src, "dst": dst, "dst_port": int(port),
            "onrdomain": on, "rtableid": rtable,
            "qname": queue or "", "tagname": tag or "",
            "rdr": None, "nat": None,
        }

    pport, port = p["pport"], p["port"]
    if p["mode"] == "passive":
        rdr = rule(pfc.PF_IN, p["client"], p["orig"], pport, crd, prd)
        rdr["rdr"] = (p["server"], (int(port), 0))
        nat = rule(pfc.PF_OUT, p["client"], p["server"], port, prd, -1)
        nat["nat"] = (p["proxy"], NAT_PORTS)
    else:
        rdr = rule(pfc.PF_IN, p["server"], p["proxy"], pport, prd, crd)
        rdr["rdr"] = (p["client"], (int(port), 0))
        nat = rule(pfc.PF_OUT, p["server"], p["client"], port, crd, -1)
        rfc_port = p["r"] == "1" and p["cmd"] == "PORT"
        nat["nat"] = (p["orig"], (20, 20) if rfc_port else NAT_PORTS)
    return [rdr, nat]


class Checker:
    def __init__(self):
        self.failures = []
        self.rules = 0

    def fail(self, where, what):
        self.failures.append(f"{where}: {what}")

    def same(self, where, field, got, want):
        if got != want:
            self.fail(where, f"{field} is {got!r}, the pinhole line calls for {want!r}")

    def pool(self, where, name, pool, want, af):
        if want is None:
            self.same(where, f"{name} pool type", pool.addr.type, pfc.PF_ADDR_NONE)
            return
        addr, ports = want
        self.same(where, f"{name} pool type", pool.addr.type, pfc.PF_ADDR_ADDRMASK)
        a, m = host_bytes(pool.addr, af)
        self.same(where, f"{name} address", a, packed(addr))
        self.same(where, f"{name} mask", m, b"\xff" * len(a))
        self.same(where, f"{name} ports", tuple(pool.proxy_port), ports)
        self.same(where, f"{name} pool options", pool.opts, pfc.PF_POOL_NONE)

    def rule(self, where, pr, want, anchor, ticket):
        """Every field of one pfioc_rule against `want`."""
        self.rules += 1
        r = pr.rule
        self.same(where, "pfioc_rule.anchor", cstr(pr.anchor), anchor)
        self.same(where, "pfioc_rule.anchor_call", cstr(pr.anchor_call), "")
        self.same(where, "pfioc_rule.ticket", pr.ticket, ticket)
        for field in ("action", "direction", "quick", "log", "af", "proto",
                      "onrdomain", "rtableid"):
            self.same(where, field, getattr(r, field), want[field])
        self.same(where, "naf", r.naf, 0)
        self.same(where, "qname", cstr(r.qname), want["qname"])
        self.same(where, "tagname", cstr(r.tagname), want["tagname"])
        for side in ("src", "dst"):
            ra = getattr(r, side)
            self.same(where, f"{side} type", ra.addr.type, pfc.PF_ADDR_ADDRMASK)
            a, m = host_bytes(ra.addr, r.af)
            self.same(where, f"{side} address", a, packed(want[side]))
            self.same(where, f"{side} mask", m, b"\xff" * len(a))
            self.same(where, f"{side} negated", ra.neg, 0)
        self.same(where, "src port_op", r.src.port_op, 0)
        self.same(where, "dst port_op", r.dst.port_op, pfc.PF_OP_EQ)
        # Ports of a rule are in network order.
        self.same(where, "dst port", socket.ntohs(r.dst.port[0]), want["dst_port"])
        self.same(where, "flags", (r.flags, r.flagset), (TH_SYN, TH_SYN | TH_ACK))
        self.same(where, "keep_state", r.keep_state, pfc.PF_STATE_NORMAL)
        self.same(where, "max_states", r.max_states, 1)
        self.same(where, "once", r.rule_flag & pfc.PFRULE_ONCE, 0)
        self.pool(where, "rdr-to", r.rdr, want["rdr"], r.af)
        self.pool(where, "nat-to", r.nat, want["nat"], r.af)


def render(pr):
    """py-pf's pf.conf rendering of the rule in `pr`, and the queue name
    left out of it (see PRINTER_DIFFERENCES)."""
    rule = pfs.pf_rule.from_buffer_copy(bytes(pr.rule))
    if rule.af == OPENBSD_AF_INET6:
        rule.af = socket.AF_INET6  # see OPENBSD_AF_INET above
    queue = cstr(rule.qname)
    rule.qname = b""
    text = str(pfr.PFRule(rule))
    for theirs, ours in PRINTER_DIFFERENCES:
        text = theirs.sub(ours, text)
    return text, queue


def check_block(c, name, block):
    p = block["pinhole"]
    anchor = p["anchor"]
    calls = block["calls"]
    ticket = None
    adds = []
    for ioctl, data, errno, line in calls:
        where = f"{name}:{line} {ioctl}"
        if ioctl in ("DIOCXBEGIN", "DIOCXCOMMIT"):
            head, elem = trans_element(data)
            c.same(where, "pfioc_trans.size", head.size, 1)
            c.same(where, "pfioc_trans.esize", head.esize, ctypes.sizeof(pfs.pfioc_trans_e))
            c.same(where, "transaction type", elem.type, pfc.PF_TRANS_RULESET)
            c.same(where, "transaction anchor", cstr(elem.anchor), anchor)
            if ioctl == "DIOCXBEGIN" and errno is None:
                ticket = elem.ticket
                adds = []
            elif errno is None:
                c.same(where, "commit ticket", elem.ticket, ticket)
        elif ioctl == "DIOCADDRULE":
            adds.append((where, pfs.pfioc_rule.from_buffer_copy(data), errno))
        else:
            c.fail(where, "unexpected ioctl in a negotiation")
    last = calls[-1] if calls else None
    if p["mode"] == "close":
        if [x[0] for x in calls] != ["DIOCXBEGIN", "DIOCXCOMMIT"] or any(x[2] for x in calls):
            c.fail(f"{name}:{block['line']}", "a session's end must be one empty transaction")
        return
    if not last or last[0] != "DIOCXCOMMIT" or last[2] is not None:
        c.fail(f"{name}:{block['line']}", "the negotiation did not end in a commit")
    want = expected(p)
    if len(adds) != 2:
        c.fail(f"{name}:{block['line']}", f"{len(adds)} rules in the committed transaction")
        return
    described = block["describe"]
    for i, (where, pr, errno) in enumerate(adds):
        c.rule(where, pr, want[i], anchor, ticket)
        theirs, queue = render(pr)
        ours = described[i] if i < len(described) else "(none)"
        if queue:
            ours = ours.replace(f" set (queue {queue})", "", 1)
        print(f"  py-pf:  {theirs}")
        print(f"  daemon: {ours}")
        if theirs != ours:
            c.fail(where, "py-pf's rendering and the daemon's description differ")


def check_dir(directory, quiet=False):
    c = Checker()
    paths = sorted(glob.glob(os.path.join(directory, "*.trace")))
    if not paths:
        c.fail(directory, "no traces")
    out = sys.stdout
    if quiet:
        sys.stdout = open(os.devnull, "w")
    try:
        for path in paths:
            name = os.path.basename(path)
            print(name)
            for block in Trace(path).blocks:
                check_block(c, name, block)
    finally:
        if quiet:
            sys.stdout.close()
            sys.stdout = out
    return c


def self_test(directory):
    """Corrupts one byte at a time in a copy of a trace and requires each
    corruption to be caught by the field named; then a description that
    differs from the rule must be caught too."""
    source = os.path.join(directory, "rdomains.trace")
    rule_at = pfs.pfioc_rule.rule.offset
    cases = [
        ("rtableid", rule_at + pfs.pf_rule.rtableid.offset),
        ("dst port", rule_at + pfs.pf_rule.dst.offset + pfs.pf_rule_addr.port.offset + 1),
        ("src address", rule_at + pfs.pf_rule.src.offset + 3),
        ("max_states", rule_at + pfs.pf_rule.max_states.offset),
    ]
    for field, offset in cases:
        with tempfile.TemporaryDirectory() as tmp:
            lines = open(source).read().split("\n")
            i = next(n for n, l in enumerate(lines) if l.startswith("DIOCADDRULE "))
            name, hexed = lines[i].split()[:2]
            data = bytearray.fromhex(hexed)
            data[offset] ^= 0x01
            lines[i] = f"{name} {data.hex()}"
            with open(os.path.join(tmp, "rdomains.trace"), "w") as f:
                f.write("\n".join(lines))
            c = check_dir(tmp, quiet=True)
            if not any(f" {field} " in msg or f"{field} is" in msg for msg in c.failures):
                print(f"self-test: a flipped {field} byte went unnoticed: {c.failures}")
                return False
            print(f"self-test: a flipped {field} byte is caught: {c.failures[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        text = open(source).read().replace("describe pass in quick on rdomain 3",
                                           "describe pass in quick on rdomain 4", 1)
        with open(os.path.join(tmp, "rdomains.trace"), "w") as f:
            f.write(text)
        c = check_dir(tmp, quiet=True)
        if not any("rendering" in msg for msg in c.failures):
            print(f"self-test: a wrong description went unnoticed: {c.failures}")
            return False
        print(f"self-test: a wrong description is caught: {c.failures[0]}")
    return True


def main(argv):
    selftest = "--self-test" in argv
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        sys.exit(__doc__)
    c = check_dir(args[0])
    for msg in c.failures:
        print(f"FAIL {msg}")
    print(f"pf-decode: {c.rules} rules decoded, {len(c.failures)} mismatches")
    ok = not c.failures and c.rules > 0
    if selftest:
        ok = self_test(args[0]) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
