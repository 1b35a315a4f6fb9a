"""Per-session timelines: where the time of a small session goes.

Sources, all on the wall clock (CLOCK_REALTIME), so they merge:

- a packet capture in the gateway namespace (tcpdump on every interface,
  the whole control connections and the data connections' SYN, FIN and
  RST): each control line as it reaches the gateway and as it leaves it, on
  the client's side and on the server's, and the data connection's SYN;
- for the daemon, strace -ttt -T of its sockets: the accepted client, the
  connect to the server, each control line read and written, and each
  netlink request (a pinhole) and the kernel's answer.

A session starts with the client's SYN to port 21. Every event is named by
where it was seen and what it was ("c>gw PASV" a PASV from the client
reaching the gateway, "gw>s PASV" leaving toward the server, "daemon
nft answers (2)"), numbered when a session has several ("#2"). The summary
orders the events by their median offset in the session and gives the
median gap from the one before; the round trips give, per command, the
client's wait (command in, reply out, on the client's side) and the
gateway's share of it (command in to command out, reply in to reply out).

strace stops the daemon at every system call, which stretches the steps
inside the daemon: the timings of those steps come from the round without
strace (packets only), and the strace round places the daemon's own events
inside them.
"""

import bisect
import re
import statistics
import struct

CLIENT_NET = "192.0.2."
CONTROL_PORTS = (21, 8021)
DELAYED_ACK_S = 0.02        # a pure ACK this long after the data it acknowledges
WAITED_S = 0.001            # the peer's next segment this soon after that ACK

# -- packets ------------------------------------------------------------------

LINKTYPE_SLL, LINKTYPE_SLL2 = 113, 276
PACKET_OUTGOING = 4
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


class Packet:
    __slots__ = ("t", "outgoing", "src", "sport", "dst", "dport", "flags", "seq", "ack",
                 "length", "payload")

    def __init__(self, t, outgoing, src, sport, dst, dport, flags, seq, ack, length, payload):
        self.t, self.outgoing = t, outgoing
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.flags, self.seq, self.ack = flags, seq, ack
        self.length, self.payload = length, payload

    @property
    def side(self):
        """c>gw, gw>c, s>gw or gw>s: which interface and which way."""
        if self.outgoing:
            return "gw>c" if self.dst.startswith(CLIENT_NET) else "gw>s"
        return "c>gw" if self.src.startswith(CLIENT_NET) else "s>gw"

    @property
    def control(self):
        return self.sport in CONTROL_PORTS or self.dport in CONTROL_PORTS

    def conn(self):
        """The connection, the same both ways."""
        return tuple(sorted([(self.src, self.sport), (self.dst, self.dport)]))


def parse_pcap(data):
    """The IPv4 TCP packets of a pcap file captured on Linux's "any"
    device (cooked headers v1 or v2), in order."""
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype not in (LINKTYPE_SLL, LINKTYPE_SLL2):
        raise ValueError("link type %d, not Linux cooked capture" % linktype)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec + frac / (1e9 if nano else 1e6)
        if linktype == LINKTYPE_SLL:
            if len(frame) < 16:
                continue
            pkttype, proto, ip = struct.unpack(">H", frame[0:2])[0], frame[14:16], frame[16:]
        else:
            if len(frame) < 20:
                continue
            proto, pkttype, ip = frame[0:2], frame[10], frame[20:]
        if proto != b"\x08\x00" or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        sport, dport, seq, ack = struct.unpack(">HHII", tcp[:12])
        thl = (tcp[12] >> 4) * 4
        flags = tcp[13]
        length = max(0, total - ihl - thl)
        out.append(Packet(t, pkttype == PACKET_OUTGOING, _ip(ip[12:16]), sport, _ip(ip[16:20]),
                          dport, flags, seq, ack, length, bytes(tcp[thl:thl + length])))
    return out


def _ip(b):
    return "%d.%d.%d.%d" % tuple(b)


def line_label(payload):
    """'PASV', '227', '150+226': the first word of each line."""
    words = []
    for line in payload.split(b"\r\n"):
        w = line.split(b" ", 1)[0].split(b"-", 1)[0].decode("ascii", "replace").upper()
        if w and len(w) <= 8 and w.isalnum():
            words.append(w)
    return "+".join(words) or "?"


def packet_event(p):
    """The event a packet is in the timeline, or None (pure ACKs, and what
    the data connections carry besides their SYN and FIN)."""
    if p.flags & RST:
        what = "RST"
    elif p.flags & SYN:
        what = "SYN-ACK" if p.flags & ACK else "SYN"
    elif p.length:
        if not p.control:
            return None
        what = line_label(p.payload)
    elif p.flags & FIN:
        what = "FIN"
    else:
        return None
    return "%s %s%s" % (p.side, "" if p.control else "data ", what)


# -- the daemon's system calls --------------------------------------------------

STRACE_LINE = re.compile(r"(\d{9,}\.\d+) (\w+)\((.*)\) = (-?\d+)(?:<[^>]*>)?.*<(\d+\.\d+)>\s*$")
TCP_PEER = re.compile(r"<TCP(?:v6)?:\[[^\]]*->([\d.]+):\d+\]>")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_strace(text):
    """[(time, event)] of the daemon from strace -f -ttt -T -yy -e
    trace=accept4,connect,sendto,recvfrom,sendmsg,recvmsg: an event at the
    call's entry for what it sends or starts, at its return for what it
    receives. A netlink request is named by the nf_tables elements it adds
    and deletes ("daemon nft batch +3 -3"); the kernel's answers to it, one
    read each, make one event at the last read ("daemon nft answers (9)"):
    the moment the daemon knows the pinhole is in place."""
    out = []
    answers = []

    def flush():
        if answers:
            out.append((answers[-1], "daemon nft answers (%d)" % len(answers)))
            del answers[:]
    for line in text.splitlines():
        m = STRACE_LINE.search(line)
        if not m:
            continue
        t, call, args, ret, dur = float(m.group(1)), m.group(2), m.group(3), int(m.group(4)), \
            float(m.group(5))
        first = args.split(",", 1)[0]
        netlink = "NETLINK" in first
        if call in ("recvmsg", "recvfrom") and netlink:
            if ret > 0:
                answers.append(t + dur)
            continue
        flush()
        peer = TCP_PEER.search(first)
        side = None
        if peer:
            side = "c" if peer.group(1).startswith(CLIENT_NET) else "s"
        if call in ("accept4", "accept") and ret >= 0:
            out.append((t + dur, "daemon accept"))
        elif call == "connect" and not netlink:
            out.append((t, "daemon connect"))
        elif call in ("sendmsg", "sendto") and netlink:
            out.append((t, "daemon nft batch +%d -%d" % (args.count("NFT_MSG_NEWSETELEM"),
                                                         args.count("NFT_MSG_DELSETELEM"))))
        elif call in ("recvfrom", "sendto") and side and ret > 0:
            s = STRING.search(args)
            label = line_label(_unescape(s.group(1))) if s else "?"
            if call == "recvfrom":
                out.append((t + dur, "daemon read %s %s" % (side, label)))
            else:
                out.append((t, "daemon write %s %s" % (side, label)))
    flush()
    return out


def _unescape(s):
    return s.encode("latin-1", "replace").decode("unicode_escape").encode("latin-1", "replace")


# -- sessions ---------------------------------------------------------------------

def sessions(packets, daemon_events=()):
    """[[(time, event)]]: one list per session, in time order. A session
    starts with a client's SYN to port 21 (a retransmitted SYN starts
    none); a connection's events belong to the session in which its SYN was
    seen, so that the last FIN of one session, late, is not taken for a step
    of the next; the daemon's events belong to the session in progress."""
    starts, seen = [], set()
    for p in packets:
        if p.side == "c>gw" and p.control and p.flags & SYN and not p.flags & ACK:
            key = (p.sport, p.seq)
            if key not in seen:
                seen.add(key)
                starts.append(p.t)
    if not starts:
        return []
    out = [[] for _ in starts]

    def window(t):
        return max(0, bisect.bisect_right(starts, t) - 1)
    owner = {}          # connection -> (session, SYN sequence number)
    for p in packets:
        e = packet_event(p)
        conn = p.conn()
        if p.flags & SYN and not p.flags & ACK:
            if conn not in owner or owner[conn][1] != p.seq:
                owner[conn] = (window(p.t), p.seq)
        if e is None or p.t < starts[0]:
            continue
        out[owner[conn][0] if conn in owner else window(p.t)].append((p.t, e))
    for t, e in daemon_events:
        if t >= starts[0]:
            out[window(t)].append((t, e))
    for s in out:
        s.sort()
    return out


def numbered(session):
    """[(time, 'event #k')]: the k-th occurrence of an event in the session
    (#1 left out)."""
    count, out = {}, []
    for t, e in session:
        count[e] = count.get(e, 0) + 1
        out.append((t, e if count[e] == 1 else "%s #%d" % (e, count[e])))
    return out


def steps(sess):
    """[(event, median offset from the session's start us, median gap from
    the event before us, sessions)] for the events in at least half of the
    sessions, in the order of their median offset."""
    sess = [numbered(s) for s in sess if s]
    if not sess:
        return []
    offsets = {}
    for s in sess:
        t0 = s[0][0]
        for t, e in s:
            offsets.setdefault(e, []).append((t - t0) * 1e6)
    keys = [e for e, v in offsets.items() if len(v) * 2 >= len(sess)]
    keys.sort(key=lambda e: statistics.median(offsets[e]))
    out = []
    for i, e in enumerate(keys):
        gaps = []
        if i:
            prev = keys[i - 1]
            for s in sess:
                d = dict((k, t) for t, k in s)
                if e in d and prev in d:
                    gaps.append((d[e] - d[prev]) * 1e6)
        out.append((e, statistics.median(offsets[e]), statistics.median(gaps) if gaps else 0.0,
                    len(offsets[e])))
    return out


def _parts(e):
    """('c>gw', 'PASV') of 'c>gw PASV #2'; ('c>gw', 'data SYN') of a data SYN."""
    side, rest = e.split(" ", 1)
    return side, rest.split(" #", 1)[0]


def _payload(what):
    return not what.startswith(("data ", "SYN", "FIN", "RST")) and not what.startswith("daemon")


def _next(s, i, want, stop=None):
    """The time of the first event after s[i] that want(side, what) accepts,
    before any that stop(side, what) accepts."""
    for t, e in s[i + 1:]:
        if e.startswith("daemon"):
            continue
        side, what = _parts(e)
        if stop and stop(side, what):
            return None
        if want(side, what):
            return t
    return None


def round_trips(sess):
    """{command: {figure: [us]}} per numbered client command: "client wait",
    from the command reaching the gateway to the next reply leaving it
    toward the client; "gateway, command", the command's own crossing of
    the gateway (in from the client, out toward the server: the daemon's
    read, a PORT's pinhole, its write); "gateway, reply", the reply's (in
    from the server, out toward the client: a PASV's pinhole). For a data
    connection's SYN, "gateway": its crossing. And the "whole session",
    from the client's SYN to the last reply leaving toward the client."""
    out = {}

    def payload_on(side):
        return lambda sd, what: sd == side and _payload(what)
    for s in sess:
        s = numbered(s)
        replies = [t for t, e in s if not e.startswith("daemon") and _parts(e)[0] == "gw>c"
                   and _payload(_parts(e)[1])]
        if s and replies:
            out.setdefault("whole session", {}).setdefault(
                "client SYN to the last reply out", []).append((replies[-1] - s[0][0]) * 1e6)
        for i, (t, e) in enumerate(s):
            if e.startswith("daemon"):
                continue
            side, what = _parts(e)
            name = e.split(" ", 1)[1]
            if what == "data SYN" and side in ("c>gw", "s>gw"):
                toward = "gw>s" if side == "c>gw" else "gw>c"
                nxt = _next(s, i, lambda sd, w: sd == toward and w == "data SYN")
                if nxt is not None:
                    out.setdefault(name, {}).setdefault("gateway", []).append((nxt - t) * 1e6)
                continue
            if side != "c>gw" or not _payload(what):
                continue
            d = out.setdefault(name, {})
            reply_out = _next(s, i, payload_on("gw>c"))
            if reply_out is not None:
                d.setdefault("client wait", []).append((reply_out - t) * 1e6)
            client_next = payload_on("c>gw")
            cmd_out = _next(s, i, payload_on("gw>s"), stop=client_next)
            if cmd_out is not None:
                d.setdefault("gateway, command", []).append((cmd_out - t) * 1e6)
            reply_in = _next(s, i, payload_on("s>gw"), stop=client_next)
            if reply_in is not None and reply_out is not None and reply_out >= reply_in:
                d.setdefault("gateway, reply", []).append((reply_out - reply_in) * 1e6)
    return out


# -- what a step waited on -----------------------------------------------------------

def findings(packets):
    """What made a session wait, from the packets: retransmitted segments
    and SYNs, resets, and delayed ACKs that held a sender back (a pure ACK
    at least DELAYED_ACK_S after the segment it acknowledges, and the
    peer's next segment within WAITED_S of it: Nagle's algorithm waiting
    for that ACK). [(kind, side and connection, time)]."""
    out = []
    seen = {}
    last_data = {}      # (side, conn, sender) -> [(end seq, time)]
    by_conn = {}
    for p in packets:
        by_conn.setdefault((p.side, p.conn()), []).append(p)
        if p.flags & RST:
            out.append(("reset", "%s %s" % (p.side, _where(p)), p.t))
        if p.length or p.flags & SYN:
            key = (p.side, p.src, p.sport, p.dst, p.dport, p.seq, p.length, p.flags & SYN)
            if key in seen:
                out.append(("retransmitted %s" % ("SYN" if p.flags & SYN else "segment"),
                            "%s %s, %.0f ms after the first" % (p.side, _where(p),
                                                                (p.t - seen[key]) * 1e3), p.t))
            else:
                seen[key] = p.t
        if p.length:
            last_data.setdefault((p.side, p.conn(), (p.src, p.sport)), []).append(
                ((p.seq + p.length) & 0xffffffff, p.t))
    for (side, conn), pkts in by_conn.items():
        for i, p in enumerate(pkts):
            if p.length or p.flags & (SYN | FIN | RST) or not p.flags & ACK:
                continue
            sent = last_data.get((_reverse(side), conn, (p.dst, p.dport)), [])
            for end, t in sent:
                if end == p.ack and p.t - t >= DELAYED_ACK_S:
                    nxt = [q for q in by_conn.get((_reverse(side), conn), [])
                           if q.t > p.t and q.length and (q.src, q.sport) == (p.dst, p.dport)]
                    if nxt and nxt[0].t - p.t <= WAITED_S:
                        out.append(("delayed ACK held the next segment",
                                    "%s %s: ACK %.1f ms late" % (p.side, _where(p),
                                                                  (p.t - t) * 1e3), p.t))
                    break
    return out


def _reverse(side):
    # The same interface, the other way: c>gw <-> gw>c, s>gw <-> gw>s.
    a, b = side.split(">")
    return "%s>%s" % (b, a)


def _where(p):
    return "%s:%d > %s:%d%s" % (p.src, p.sport, p.dst, p.dport, "" if p.control else " (data)")


# -- text -------------------------------------------------------------------------------

def step_table(st):
    lines = ["| event | median offset (µs) | median gap from the one before (µs) | sessions |",
             "|---|---:|---:|---:|"]
    for e, off, gap, n in st:
        lines.append("| %s | %.0f | %.0f | %d |" % (e, off, gap, n))
    return "\n".join(lines)


def round_trip_table(columns):
    """columns: [(title, round_trips())]: one row per command and figure,
    one column of medians per timeline."""
    rows = []
    for _, rt in columns:
        for cmd, figs in rt.items():
            for fig in figs:
                if (cmd, fig) not in rows:
                    rows.append((cmd, fig))
    lines = ["| command | figure | " + " | ".join(t for t, _ in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for cmd, fig in rows:
        cells = []
        for _, rt in columns:
            v = rt.get(cmd, {}).get(fig)
            cells.append("%.0f" % statistics.median(v) if v else "—")
        lines.append("| %s | %s | %s |" % (cmd, fig, " | ".join(cells)))
    return "\n".join(lines)
