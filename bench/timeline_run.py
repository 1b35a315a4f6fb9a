"""bench.py --timeline: per-session timelines of PASV and PORT sessions
through direct routing, the conntrack helper and the daemon (bench/timeline.py
turns the captures into steps, round trips and findings).

Every set-up's lab is up at once. For each mode: small sessions in rounds
that take the set-ups in turn, each lab's gateway with a packet capture of
its own; then, for the daemon, a further round with strace attached to it
as well. Written as timeline-<date>.md and .json beside the results.
"""

import json
import os
import shutil
import signal

from ftplab import lab as labmod
import measures
from ftplab import procs
import syscalls
import timeline

SETUPS = ("direct", "helper", "ftp-proxy")
CAPTURE_FILTER = ("tcp and (port 21 or port %d or tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)"
                  % labmod.PROXY_PORT)
STRACE = ["-ttt", "-T", "-yy", "-s", "64", "-e",
          "trace=accept4,accept,connect,sendto,recvfrom,sendmsg,recvmsg"]


class Capture:
    """tcpdump on every interface of a namespace, into a file, for the life
    of the object; ready once it says it is listening. --immediate-mode:
    otherwise packets wait in the kernel's ring for a block to fill or a
    second to pass, and those of the last second are lost when tcpdump is
    told to stop."""

    def __init__(self, ns, path):
        self.ns, self.path = ns, path
        self.log = path + ".log"
        self.proc = None

    def __enter__(self):
        argv = ["tcpdump", "-i", "any", "-n", "-s", "256", "-U", "--immediate-mode",
                "-w", self.path, CAPTURE_FILTER]
        self.proc = procs.Background("tcpdump", argv, ns=self.ns, log_path=self.log)

        def listening():
            if not self.proc.alive():
                raise RuntimeError("tcpdump exited: " + self.proc.log_tail())
            with open(self.log, errors="replace") as f:
                return "listening on" in f.read()
        procs.wait_for(listening, 10, what="tcpdump listening")
        return self

    def __exit__(self, *exc):
        self.proc.stop(signal.SIGINT, timeout=10)
        return False

    def packets(self):
        with open(self.path, "rb") as f:
            return timeline.parse_pcap(f.read())


def packets_rounds(actives, passive, cfg, tag):
    """The packets-only timelines of every set-up, in rounds: each round
    runs a few sessions through each set-up in turn (the order reversed
    every other round), so that the machine's changing load falls on all
    of them alike, as in the benchmark's passes. Each lab's gateway has its
    own capture. {set-up name: (sessions, packets)}."""
    n = cfg.timeline_sessions
    rounds = max(1, min(cfg.timeline_rounds, n))
    per = [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]
    caps = {}
    try:
        for a in actives:
            path = os.path.join(a.ctx.workdir, "timeline-%s-%s.pcap" % (a.setup.name, tag))
            caps[a.setup.name] = Capture(a.lab.gateway, path).__enter__()
        for i, count in enumerate(per):
            order = actives if i % 2 == 0 else list(reversed(actives))
            for a in order:
                _sessions(a, passive, count, tag)
    finally:
        for cap in caps.values():
            cap.__exit__(None, None, None)
    out = {}
    for name, cap in caps.items():
        packets = cap.packets()
        out[name] = (timeline.sessions(packets), packets)
    return out


def strace_round(active, passive, count, tag):
    """count sessions with a capture and strace on the daemon: (sessions,
    packets)."""
    ctx = active.ctx
    pcap = os.path.join(ctx.workdir, "timeline-%s-strace.pcap" % tag)
    trace = os.path.join(ctx.workdir, "timeline-%s.strace" % tag)
    with Capture(active.lab.gateway, pcap) as cap:
        with syscalls.Count(active.setup.account.pids(), trace, STRACE, ns=active.lab.gateway):
            _sessions(active, passive, count, tag + ", strace")
    with open(trace, errors="replace") as f:
        events = timeline.parse_strace(f.read())
    packets = cap.packets()
    return timeline.sessions(packets, events), packets


def _sessions(active, passive, count, tag):
    r = measures.loadgen(active.ctx, "sessions", count + 60, count=count,
                         max_seconds=count + 30, active=not passive)
    if r["errors"] or r["done"] != count:
        raise measures.Fail("timeline %s, %s: %d of %d sessions, first error %s"
                            % (active.setup.title, tag, r["done"], count, r["first_error"]))


def available():
    return shutil.which("tcpdump") is not None


class Timelines:
    """What run() made: the whole page (md), the round-trip tables alone
    (summary), every figure (data) and what failed."""

    def __init__(self, md, summary, data, failures):
        self.md, self.summary, self.data, self.failures = md, summary, data, failures

    def write(self, out, stem):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, stem + ".md"), "w") as f:
            f.write(self.md + "\n")
        with open(os.path.join(out, stem + ".json"), "w") as f:
            json.dump(self.data, f, indent=1)


def run(chosen, cfg, bring_up, tear_down_all, say):
    """Every timeline: a Timelines. tear_down_all(actives) takes every lab
    down, whatever happened."""
    wanted = [s for s in chosen if s.name in SETUPS]
    data, failures, summary = {}, [], []
    md = ["# Per-session timelines", "",
          "%d small sessions per set-up and mode (ftplib: log in, LIST, RETR of 1 KiB, QUIT), "
          "one after another, in %d rounds that take the set-ups in turn. Times in µs, "
          "medians over the sessions. c>gw: reaching the gateway from the client; gw>s: "
          "leaving it toward the server; s>gw, gw>c the other way; \"daemon ...\": the "
          "daemon's system calls, from a separate round with strace attached, which slows "
          "every call it traces: its gaps are longer than in the round without it."
          % (cfg.timeline_sessions, min(cfg.timeline_rounds, cfg.timeline_sessions)), ""]
    actives = []
    try:
        for index, setup in enumerate(wanted):
            a = bring_up(setup, index)
            if a is None:
                failures.append("%s: set-up failed" % setup.title)
            else:
                actives.append(a)
        for passive in (True, False):
            mode = measures.mode_name(passive)
            columns, sections = [], []
            timelines = []
            try:
                say("# timelines: %s, %s" % (mode, ", ".join(a.setup.name for a in actives)))
                got = packets_rounds(actives, passive, cfg, mode)
                for a in actives:
                    sess, packets = got[a.setup.name]
                    timelines.append((a.setup.title, sess, packets))
                    columns.append((a.setup.title, timeline.round_trips(sess)))
                for a in actives:
                    if a.setup.account and syscalls.available():
                        say("# timelines: %s, %s with strace" % (mode, a.setup.name))
                        sess, packets = strace_round(a, passive, cfg.timeline_sessions,
                                                     "%s-%s" % (a.setup.name, mode))
                        timelines.append((a.setup.title + ", strace", sess, packets))
            except Exception as e:
                say("# timelines: %s failed: %s" % (mode, e))
                sections += ["### %s: failed: %s" % (mode, e), ""]
                failures.append("%s: %s" % (mode, str(e).splitlines()[0][:300]))
            for title, sess, packets in timelines:
                st = timeline.steps(sess)
                found = timeline.findings(packets)
                data.setdefault(mode, {})[title] = {
                    "steps": [{"event": e, "offset_us": o, "gap_us": g, "sessions": n}
                              for e, o, g, n in st],
                    "round_trips": timeline.round_trips(sess),
                    "findings": [list(f) for f in found]}
                sections += ["### %s, %s" % (title, mode), "", _findings_text(found), "",
                             timeline.step_table(st), ""]
            table = ["%s: round trips through the gateway (µs, median of %d sessions):"
                     % (mode, cfg.timeline_sessions), "", timeline.round_trip_table(columns), ""]
            summary += table
            md += ["## %s" % mode, ""] + table + sections
    finally:
        tear_down_all(actives)
    return Timelines("\n".join(md), "\n".join(summary).rstrip(), data, failures)


def _findings_text(found):
    if not found:
        return "Nothing waited on a retransmission, a reset or a delayed ACK."
    kinds = {}
    for kind, where, _ in found:
        kinds.setdefault(kind, []).append(where)
    return "\n".join("- %s: %d (%s%s)" % (k, len(v), "; ".join(v[:3]),
                                           "; ..." if len(v) > 3 else "")
                     for k, v in kinds.items())
