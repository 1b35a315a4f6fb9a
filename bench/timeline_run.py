"""bench.py --timeline: per-session timelines of PASV and PORT sessions
through direct routing, the conntrack helper and the daemon (bench/timeline.py
turns the captures into steps, round trips and findings).

For each set-up and mode: a round of small sessions with a packet capture
in the gateway namespace only, then, for the daemon, a second round with
strace attached to it as well. Writes timeline-<date>.md and .json.
"""

import json
import os
import shutil
import signal

import measures
import procs
import syscalls
import timeline

SETUPS = ("direct", "helper", "ftp-proxy")
CAPTURE_FILTER = ("tcp and (port 21 or port %d or tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)"
                  % 8021)
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
        argv = ["tcpdump", "-i", "any", "-n", "-s", "256", "-U", "--immediate-mode", "-w", self.path, CAPTURE_FILTER]
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


def one_round(active, passive, count, tag, with_strace):
    """count small sessions with a capture (and strace on the daemon):
    (sessions, packets)."""
    ctx = active.ctx
    pcap = os.path.join(ctx.workdir, "timeline-%s.pcap" % tag)
    trace = os.path.join(ctx.workdir, "timeline-%s.strace" % tag)
    events = []
    with Capture(active.lab.gateway, pcap) as cap:
        if with_strace:
            with syscalls.Count(active.setup.account.pids(), trace, STRACE,
                                ns=active.lab.gateway):
                r = _sessions(ctx, passive, count)
            with open(trace, errors="replace") as f:
                events = timeline.parse_strace(f.read())
        else:
            r = _sessions(ctx, passive, count)
    if r["errors"] or r["done"] != count:
        raise measures.Fail("timeline %s: %d of %d sessions, first error %s"
                            % (tag, r["done"], count, r["first_error"]))
    packets = cap.packets()
    return timeline.sessions(packets, events), packets


def _sessions(ctx, passive, count):
    return measures.loadgen(ctx, "sessions", count + 60, count=count, max_seconds=count + 30,
                            active=not passive)


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


def run(chosen, cfg, bring_up, tear_down, say):
    """Every timeline: a Timelines."""
    wanted = [s for s in chosen if s.name in SETUPS]
    data, failures, summary = {}, [], []
    md = ["# Per-session timelines", "",
          "%d small sessions per set-up and mode (ftplib: log in, LIST, RETR of 1 KiB, QUIT), "
          "one after another. Times in µs; medians over the sessions. c>gw: reaching the "
          "gateway from the client; gw>s: leaving it toward the server; s>gw, gw>c the other "
          "way; \"daemon ...\": the daemon's system calls (strace round only)."
          % cfg.timeline_sessions, ""]
    for passive in (True, False):
        mode = measures.mode_name(passive)
        columns, sections = [], []
        for index, setup in enumerate(wanted):
            active = bring_up(setup, index)
            if active is None:
                continue
            try:
                rounds = [("packets", False)]
                if setup.account and syscalls.available():
                    rounds.append(("packets and strace", True))
                for label, with_strace in rounds:
                    tag = "%s-%s-%s" % (setup.name, mode, "strace" if with_strace else "packets")
                    say("# timeline: %s %s, %s" % (setup.title, mode, label))
                    sess, packets = one_round(active, passive, cfg.timeline_sessions, tag,
                                              with_strace)
                    st = timeline.steps(sess)
                    rt = timeline.round_trips(sess)
                    found = timeline.findings(packets)
                    title = "%s%s" % (setup.title, ", strace" if with_strace else "")
                    if not with_strace:
                        columns.append((setup.title, rt))
                    data.setdefault(mode, {})[title] = {
                        "steps": [{"event": e, "offset_us": o, "gap_us": g, "sessions": n}
                                  for e, o, g, n in st],
                        "round_trips": rt, "findings": [list(f) for f in found]}
                    sections += ["### %s, %s" % (title, mode), ""]
                    sections += [_findings_text(found), "", timeline.step_table(st), ""]
            except Exception as e:
                say("# timeline: %s %s failed: %s" % (setup.title, mode, e))
                sections += ["### %s, %s: failed: %s" % (setup.title, mode, e), ""]
                failures.append("%s %s: %s" % (setup.title, mode, str(e).splitlines()[0][:300]))
            finally:
                tear_down(active)
        table = ["%s: round trips through the gateway (µs, median of %d sessions):"
                 % (mode, cfg.timeline_sessions), "", timeline.round_trip_table(columns), ""]
        summary += table
        md += ["## %s" % mode, ""] + table + sections
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
