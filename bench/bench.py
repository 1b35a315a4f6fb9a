#!/usr/bin/env python3
"""Benchmark ftp-proxy against what an admin would use instead, in one run.

    make bench                       full run (root; installs what it lacks)
    make bench BENCH_QUICK=1         smoke test: every set-up once, tiny sizes
    python3 bench/bench.py [--quick] [--no-install] [--out DIR] [--timeline]

Set-ups, each in a copy of the regress lab of its own (client, gateway and
server network namespaces, vsftpd on the server): direct routing with a
route back (the ceiling), the kernel's conntrack FTP helper with
masquerade, this daemon, and the userspace relays that could be installed
(SuSE ftp-proxy, proftpd mod_proxy). Every pass brings them all up and runs
each measurement over them back to back. Prints a table (median, min, max
over the passes and the ratio to direct routing paired per pass), the
paired ratios of the daemon to the helper and to direct routing, the
proxies' CPU time per small session and per round trip and their system
calls per round trip, the latency each set-up adds to a control round
trip (paired per pass), the targets, and the per-session timelines' round trips. A full run
writes bench/results/<date>.md, .svg and .json and timeline-<date>.md and
.json there, and updates bench/README.md and the README's table.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

import accounting  # noqa: E402
from ftplab import daemon as daemonmod  # noqa: E402
import measures  # noqa: E402
from ftplab import procs  # noqa: E402
from ftplab import procstat  # noqa: E402
import report  # noqa: E402
import server  # noqa: E402
import setups as setupmod  # noqa: E402
import targets as targetmod  # noqa: E402
from results import Results  # noqa: E402


QUICK_SIZE = 8 << 20


class Config:
    """Sizes and repetitions. The quick mode checks that every set-up and
    every measurement works, not what the numbers are."""

    def __init__(self, quick, pin=False):
        self.quick = quick
        self.pin = pin
        # Repetitions come from passes: every pass measures each set-up once,
        # in turn, so a change in the machine's load during the run touches
        # all set-ups alike instead of whichever happened to run then.
        if quick:
            self.size, self.size_label = QUICK_SIZE, "8 MiB"
            self.passes, self.concurrent_passes, self.memory_passes = 1, 1, 1
            self.session_count, self.session_seconds = 5, 5
            self.concurrent_counts = (5, 10)
            self.noop_count = 50
            self.syscall_count = 200
            self.idle_sessions = (0, 5, 10)
            self.pinhole_sessions = 50
            self.max_seconds = 300
        else:
            self.size, self.size_label = 1 << 30, "1 GiB"
            self.passes, self.concurrent_passes, self.memory_passes = 5, 3, 3
            self.session_count, self.session_seconds = 300, 3
            self.concurrent_counts = (50, 500)
            self.noop_count = 2000
            self.syscall_count = 2000
            self.idle_sessions = (0, 100, 500)
            self.pinhole_sessions = 500
            self.max_seconds = 2400
        # One repetition of each per pass.
        self.bulk_runs = self.session_rounds = self.concurrent_rounds = 1
        self.noop_rounds = self.memory_rounds = self.pinhole_runs = 1
        self.bulk_timeout = 120
        # --timeline: sessions per set-up, mode and round.
        self.timeline_sessions = 5 if quick else 50
        self.timeline_rounds = 5
        self.concurrent_seconds = 120


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                   help="smoke mode: every set-up once, tiny sizes (also BENCH_QUICK=1)")
    p.add_argument("--no-install", action="store_true",
                   help="do not run bench/install-deps.sh")
    p.add_argument("--no-build", action="store_true", help="do not run cargo build")
    p.add_argument("--out", help="directory for the .md and .svg (default: bench/results "
                                 "for a full run, a temporary directory for --quick)")
    p.add_argument("--passes", type=int, help="passes over all set-ups (default 5, quick 1)")
    p.add_argument("--binary", help="the ftp-proxy to measure (default: the release build)")
    p.add_argument("--timeline", action="store_true",
                   help="instead of the figures, per-session timelines of PASV and PORT "
                        "through direct routing, the conntrack helper and the daemon "
                        "(packet capture on the gateway, strace of the daemon)")
    p.add_argument("--pin", action="store_true",
                   help="experiment: the FTP server on the last CPU, the proxy on the others "
                        "(as if the server were another machine)")
    p.add_argument("--no-timeline", action="store_true",
                   help="do not make the timelines after the figures")
    p.add_argument("--only", help="comma-separated set-up names (direct, helper, ftp-proxy, "
                                  "suse, proftpd-proxy)")
    return p.parse_args()


def say(text):
    print(text, flush=True)


def target_dir():
    t = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return t if os.path.isabs(t) else os.path.join(REPO, t)


def build():
    """The daemon and the pinhole-latency example, release profile."""
    procs.run(["cargo", "build", "--release", "--locked", "--bin", "ftp-proxy",
               "--example", "pinhole-latency"], timeout=1800)


MTU = {}
LOAD_AT_START = []


def note_mtu(lab):
    """The client's link MTU, read from the first lab (veth's default is
    1500, as on most Ethernet; the figures depend on it). Through ip(8):
    nsenter does not remount /sys, so /sys/class/net shows the host's."""
    if "lan0" not in MTU:
        cp = procs.run(["ip", "-o", "link", "show", "lan0"], ns=lab.client, check=False)
        fields = cp.stdout.split()
        if cp.returncode == 0 and "mtu" in fields:
            MTU["lan0"] = fields[fields.index("mtu") + 1]


def machine():
    """CPU model, cores, kernel, Debian release, MTU, load: what a reader
    needs to compare these figures with theirs."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    debian = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            debian = "Debian " + f.read().strip() + ", "
    mtu = MTU.get("lan0", "not yet read")
    load = "%.2f %.2f %.2f" % os.getloadavg()
    start = LOAD_AT_START[0] if LOAD_AT_START else load
    return ("Machine: %s, %d cores, %skernel %s, MTU %s (veth); load average %s at start, "
            "%s at end; client, gateway and server share the same CPUs (network namespaces)."
            % (model, os.cpu_count() or 0, debian, platform.release(), mtu, start, load))


def failed(setup):
    """How a failure is noted. A relay that fails under load is a finding
    about the relay, not a broken benchmark: it does not fail the run."""
    return "relay failed: " if isinstance(setup, setupmod.Relay) else "failed: "


def pin(server_pid, proxy_pid):
    """--pin: the server (and the processes it forks) on the last CPU, the
    proxy on the others, as if the server were another machine. Without
    it, the scheduler may wake the daemon on the CPU where the server is
    still busy (a vsftpd process exiting after its 221) and the daemon
    waits for that CPU; the timelines show it. An experiment: the
    benchmark's figures are made without it."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise RuntimeError("--pin needs two CPUs or more")
    os.sched_setaffinity(server_pid, {cpus[-1]})
    if proxy_pid:
        for pid in [proxy_pid] + procstat.descendants(proxy_pid):
            os.sched_setaffinity(pid, set(cpus[:-1]))


class Active:
    """One set-up brought up for a pass: its lab, its server, its context."""

    def __init__(self, setup, lab, srv, ctx):
        self.setup, self.lab, self.srv, self.ctx = setup, lab, srv, ctx


def bring_up(setup, index, cfg, results, workdir, big, pass_no):
    """A set-up in a lab of its own (namespaces named after index, so that
    every set-up's lab exists at once), with its server; None if it failed,
    noted. Whatever stops it half-way, Overtime included, the lab is torn
    down before the exception goes on."""
    lab = setupmod.BenchLab(setup.lab_kind, index)
    # A directory of its own each time: the timelines bring set-ups up again
    # after the passes, with pass numbers that start over.
    sdir = tempfile.mkdtemp(dir=workdir, prefix="%s-%d-" % (setup.name, pass_no))
    os.chmod(sdir, 0o755)
    srv = None
    active = None
    try:
        lab.up()
        note_mtu(lab)
        # Listen backlogs are small: vsftpd's a fixed 32, the daemon's 10.
        # With SYN cookies on, a burst of connects that overflows one leaves
        # clients whose handshake the listener forgot: they wait for a banner
        # that never comes (FTP servers speak first) and the run measures a
        # timeout. Without cookies the kernel keeps the request and
        # retransmits the SYN-ACK, every session completes, late, and the
        # overflow counts and sessions >= 1 s show that cost for each side.
        for ns in (lab.server, lab.gateway):
            lab.sysctl(ns, "net.ipv4.tcp_syncookies", 0)
        srv = server.start(lab, sdir, big[0], measures.BIG_FILE, measures.SMALL_FILE)
        setup.start(lab, sdir)
        if cfg.pin:
            pin(srv.proc.pid, setup.pid())
        ctx = measures.Context(lab, setup, cfg, results, big[1], cfg.size, say, pass_no, sdir)
        active = Active(setup, lab, srv, ctx)
        return active
    except Exception as e:
        results.note(failed(setup) + "%s: %s" % (setup.title, str(e).splitlines()[0][:300]))
        say("# %s: set-up failed: %s" % (setup.title, e))
        traceback.print_exc()
        return None
    finally:
        if active is None:
            tear_down(setup, lab, srv, results)


def tear_down(setup, lab, srv, results):
    """The set-up and its server stopped (a failure noted), then the lab's
    namespaces deleted whatever happened before: an exception that is not
    an Exception (Overtime, SystemExit) goes on only after that."""
    try:
        try:
            setup.stop()
        except Exception as e:
            results.note(failed(setup) + "%s: %s" % (setup.title, e))
        if srv:
            try:
                srv.stop()
            except Exception as e:
                results.note(failed(setup) + "%s, stopping its server: %s" % (setup.title, e))
    finally:
        lab.down()


def tear_down_all(actives, results):
    """tear_down() for each; an exception from one (Overtime) is raised
    again once every lab is down."""
    pending = None
    for a in actives:
        try:
            tear_down(a.setup, a.lab, a.srv, results)
        except BaseException as e:
            pending = pending or e
    if pending is not None:
        raise pending


def steps(cfg, pass_no, example):
    """(what, applies to set-up?, fn(active)) in the order measured: each step
    runs for every set-up back to back before the next step starts, so the
    set-ups' figures of one pass are taken under the same load and their
    per-pass ratios are fair."""
    first = pass_no == 0
    out = [("download PASV", None, lambda a: measures.bulk(a.ctx, True, first)),
           ("download PORT", None, lambda a: measures.bulk(a.ctx, False, first)),
           ("small sessions PASV", None, lambda a: measures.sessions(a.ctx, True)),
           ("small sessions PORT", None, lambda a: measures.sessions(a.ctx, False))]
    if pass_no < cfg.concurrent_passes:
        for n in cfg.concurrent_counts:
            out.append(("%d concurrent" % n, None,
                        lambda a, n=n: measures.concurrent(a.ctx, n, a.srv.proc.pid)))
    out.append(("NOOP round trips", None, lambda a: measures.noop(a.ctx)))
    if pass_no < cfg.memory_passes:
        out.append(("idle memory", lambda s: s.has_proxy,
                    lambda a: measures.idle_memory(a.ctx)))
    out.append(("pinholes", lambda s: s.name == "ftp-proxy",
                lambda a: measures.pinholes(a.ctx, example)))
    return out


def run_pass(chosen, cfg, results, workdir, big, example, pass_no, broken):
    """One pass: every set-up up at once, each in its own lab; then every
    measurement over the set-ups in turn (in reverse order every other pass,
    so that neither side of a ratio is always measured first). A failing
    measurement is noted, the others still run, and it is not tried again
    in later passes (broken: set of (set-up, step) that failed)."""
    order = chosen if pass_no % 2 == 0 else list(reversed(chosen))
    active = []
    try:
        for setup in order:
            say("# pass %d/%d: %s up" % (pass_no + 1, cfg.passes, setup.title))
            a = bring_up(setup, chosen.index(setup), cfg, results, workdir, big, pass_no)
            if a:
                active.append(a)
        for what, applies, fn in steps(cfg, pass_no, example):
            for a in active:
                if (applies and not applies(a.setup)) or (a.setup.name, what) in broken:
                    continue
                t0 = time.monotonic()
                try:
                    fn(a)
                    say("#   %-20s %-22s %5.1f s" % (a.setup.name, what, time.monotonic() - t0))
                except Exception as e:
                    broken.add((a.setup.name, what))
                    msg = "%s, %s (pass %d): %s" % (a.setup.title, what, pass_no + 1,
                                                    str(e).splitlines()[0][:300])
                    say("#   %-20s %-22s FAILED: %s" % (a.setup.name, what, msg))
                    results.note(failed(a.setup) + msg)
    finally:
        tear_down_all(active, results)


def main():
    args = parse_args()
    cfg = Config(args.quick, args.pin)
    if args.pin:
        args.out = args.out or tempfile.mkdtemp(prefix="ftp-proxy-bench-pinned-")
    if args.passes:
        cfg.passes = max(1, min(args.passes, 20))
    if os.geteuid() != 0:
        print("bench.py: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    started = procs.start_run(cfg.max_seconds)
    results = Results()
    if cfg.pin:
        results.note("--pin: the FTP server on the last CPU, the proxy on the others; "
                     "an experiment, not the benchmark's arrangement")
    workdir = procs.work_dir("ftp-proxy-bench-", "/var/tmp")
    status = 0
    timelines = None
    try:
        if not args.no_install:
            procs.run(["sh", os.path.join(HERE, "install-deps.sh")], timeout=1800)
        if not args.no_build:
            build()
        binary = args.binary or daemonmod.default_binary()
        example = os.path.join(target_dir(), "release", "examples", "pinhole-latency")
        chosen, left_out = setupmod.all_setups(binary)
        if args.only:
            wanted = args.only.split(",")
            chosen = [s for s in chosen if s.name in wanted]
        for title, why in left_out:
            results.note("%s left out: %s (bench/install-deps.sh installs it)" % (title, why))
            say("# %s left out: %s" % (title, why))
        LOAD_AT_START.append("%.2f %.2f %.2f" % os.getloadavg())
        say("# load average at start: %s" % LOAD_AT_START[0])
        # The timelines move 1 KiB files only: the large file of the quick size.
        size = QUICK_SIZE if args.timeline else cfg.size
        say("# making the %d MiB file" % (size >> 20))
        big = server.big_file(size)
        if not args.timeline:
            broken = set()
            for pass_no in range(cfg.passes):
                run_pass(chosen, cfg, results, workdir, big, example, pass_no, broken)
            results.sort([s.title for s in chosen])
        if args.timeline or not args.no_timeline:
            try:
                timelines = run_timeline(cfg, chosen, results, workdir, big)
            except procs.Overtime:
                raise
            except Exception:
                # The passes' figures are written whatever befell the
                # timelines, which come last.
                results.note("failed: timeline: " + traceback.format_exc().strip())
                status = 1
    except procs.Overtime:
        results.note("the run took more than %d s and was stopped" % cfg.max_seconds)
        status = 1
    finally:
        signal.alarm(0)
        procs.stop_all()
        accounting.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    status = max(status, output(args, cfg, results, elapsed, timelines))
    return status


def run_timeline(cfg, chosen, results, workdir, big):
    """The per-session timelines (bench/timeline_run.py): (markdown, data),
    or None when they could not be made (noted)."""
    import timeline_run

    if not timeline_run.available():
        results.note("timelines not made: tcpdump or strace missing "
                     "(bench/install-deps.sh installs them)")
        return None
    rounds = []

    def up(setup, index):
        rounds.append(setup)     # a directory of its own for each lab brought up
        return bring_up(setup, index, cfg, results, workdir, big, len(rounds))

    def down(actives):
        tear_down_all(actives, results)
    tl = timeline_run.run(chosen, cfg, up, down, say)
    for f in tl.failures:
        results.note("failed: timeline, " + f)
    return tl


def output(args, cfg, results, elapsed, timelines=None):
    """Print the table, the added latency and the targets; write the files.
    Exit status 1 when something failed to run (never for a missed target)."""
    when = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or (os.path.join(HERE, "results") if not cfg.quick
                       else tempfile.mkdtemp(prefix="ftp-proxy-bench-results-"))
    os.makedirs(out, exist_ok=True)
    stem = when.strftime("%Y-%m-%d") + ("-quick" if cfg.quick else "")
    if timelines:
        timelines.write(out, "timeline-" + stem)
    if args.timeline:
        say("")
        say(timelines.md if timelines else "no timelines")
        for n in results.notes:
            say("  " + n)
        say("# timelines: %s/timeline-%s.md and .json" % (out, stem))
        return 1 if [n for n in results.notes if n.startswith("failed")] or not timelines else 0
    desc = machine()
    title = "ftp-proxy benchmark, %s%s" % (when.strftime("%Y-%m-%d %H:%M UTC"),
                                           " (quick mode: sizes too small to mean anything)"
                                           if cfg.quick else "")
    added = report.added_latency(results)
    targets = targetmod.evaluate(results, cfg)
    paired = report.paired_lines(results, cfg.size_label)
    costs = report.cost_lines(results)
    say("")
    say(title)
    say(desc)
    say("")
    say(report.text_table(results))
    if paired:
        say("")
        say("Ratios paired per pass (median (min–max)):")
        for p in paired:
            say("  " + p)
    if costs:
        say("")
        say(report.COSTS_TITLE + ":")
        for c in costs:
            say("  " + c)
    if added:
        say("")
        say("Latency added to a NOOP round trip over direct routing, paired per pass "
            "(median (min–max) of the per-pass differences):")
        for setup, q, sp in added:
            say("  %-22s %-6s %s us" % (setup, q, sp.format("%+.1f")))
            results.note("NOOP round trip %s, %s: %s us over direct routing, paired per pass"
                         % (q, setup, sp.format("%+.1f")))
    say("")
    say("Targets%s:" % (" — quick mode, not meaningful" if cfg.quick else ""))
    for t in targets:
        say("  " + t)
    notes = [n for n in results.notes if not n.startswith("NOOP round trip")]
    if notes:
        say("")
        say("Notes:")
        for n in notes:
            say("  " + n)
    svg_name = stem + ".svg"
    with open(os.path.join(out, svg_name), "w") as f:
        f.write(report.svg(results, cfg.size_label, desc))
    page = report.markdown(results, desc, targets, title, svg_name, elapsed, paired, costs)
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(page)
    # Every per-run value, for anyone who wants other statistics than these.
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump({"title": title, "machine": desc, "elapsed_s": round(elapsed, 1),
                   "rows": results.to_json(),
                   "paired_ratios": [{"setup": a, "other": b, "metric": m,
                                      "per_pass": results.paired(a, b, m).values}
                                     for a, b, m in report.comparisons(cfg.size_label)
                                     if results.paired(a, b, m)],
                   "details": results.details,
                   "notes": results.notes}, f, indent=1)
    if not cfg.quick and not args.out and not args.only:
        readme_update(stem, results, desc, targets, title, paired, costs, timelines)
        top_readme_update(stem, results, cfg, desc)
    say("")
    if timelines:
        say(timelines.summary)
        say("")
        say("# timelines: %s/timeline-%s.md and .json" % (out, stem))
    say("# results: %s/%s.md, .svg and .json" % (out, stem))
    say("# %.0f s" % elapsed)
    # Only a measurement that could not be made fails the run; what the
    # figures say about the daemon (a shortfall, a missed target) does not.
    broken = [n for n in results.notes if n.startswith("failed") or "stopped" in n]
    return 1 if broken else 0


BEGIN, END = "<!-- latest results: begin -->", "<!-- latest results: end -->"


def readme_update(stem, results, desc, targets, title, paired, costs, timelines):
    """Put the latest figures, plot and timelines' round trips into
    bench/README.md between markers."""
    path = os.path.join(HERE, "README.md")
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return
    lines = [BEGIN, "", "**%s**" % title, "", desc, "",
             "![throughput and sessions per second](results/%s.svg)" % stem, ""]
    lines += ["Ratios paired per pass, median (min–max):", ""] + ["- " + p for p in paired] + [""]
    lines += ["The proxies' own costs:", ""] + ["- " + c for c in costs] + [""]
    lines += [report.markdown_table(results), "", "Targets:", ""] + ["- " + t for t in targets]
    if timelines:
        lines += ["", timelines.summary, "",
                  "Every step of every timeline: [results/timeline-%s.md](results/timeline-%s.md)."
                  % (stem, stem)]
    lines += ["", "Full page: [results/%s.md](results/%s.md)" % (stem, stem), "", END]
    section = "\n".join(lines)
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(head + section + tail)


def top_readme_update(stem, results, cfg, desc):
    """The top-level README's Benchmarks section: the compact table and the
    plot, between the same markers; the full table is in bench/README.md."""
    path = os.path.join(REPO, "README.md")
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return
    section = "\n".join([BEGIN, "",
                         report.summary_table(results, cfg.size_label), "",
                         "![throughput and sessions per second](bench/results/%s.svg)" % stem,
                         "", "Measured %s. %s Every figure, the targets and how each is "
                         "measured: [bench/README.md](bench/README.md)." % (stem, desc),
                         "", END])
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    with open(path, "w") as f:
        f.write(head + section + tail)


if __name__ == "__main__":
    sys.exit(main())
