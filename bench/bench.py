#!/usr/bin/env python3
"""Benchmark ftp-proxy against what an admin would use instead, in one run.

    make bench                       full run (root; installs what it lacks)
    make bench BENCH_QUICK=1         smoke test: every set-up once, tiny sizes
    python3 bench/bench.py [--quick] [--no-install] [--out DIR]

Set-ups, each in a fresh copy of the regress lab (client, gateway and server
network namespaces, vsftpd on the server): direct routing with a route back
(the ceiling), the kernel's conntrack FTP helper with masquerade, this
daemon, and the userspace relays that could be installed (SuSE ftp-proxy,
proftpd mod_proxy). Prints a table (median, min, max over repeated runs and
the ratio to direct routing), the latency each set-up adds to a control
round trip, and the targets of issue 7; a full run also writes
bench/results/<date>.md and .svg and updates bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

import accounting  # noqa: E402
from ftplab import daemon as daemonmod  # noqa: E402
from ftplab import lab as labmod  # noqa: E402
import measures  # noqa: E402
from ftplab import procs  # noqa: E402
import report  # noqa: E402
import server  # noqa: E402
import setups as setupmod  # noqa: E402
import targets as targetmod  # noqa: E402
from results import Results  # noqa: E402


class Config:
    """Sizes and repetitions. The quick mode checks that every set-up and
    every measurement works, not what the numbers are."""

    def __init__(self, quick):
        self.quick = quick
        # Repetitions come from passes: every pass measures each set-up once,
        # in turn, so a change in the machine's load during the run touches
        # all set-ups alike instead of whichever happened to run then.
        if quick:
            self.size, self.size_label = 8 << 20, "8 MiB"
            self.passes, self.concurrent_passes, self.memory_passes = 1, 1, 1
            self.session_count, self.session_seconds = 5, 5
            self.concurrent_counts = (5, 10)
            self.noop_count = 50
            self.idle_sessions = (0, 5, 10)
            self.pinhole_sessions = 50
            self.max_seconds = 300
        else:
            self.size, self.size_label = 1 << 30, "1 GiB"
            self.passes, self.concurrent_passes, self.memory_passes = 5, 3, 3
            self.session_count, self.session_seconds = 300, 3
            self.concurrent_counts = (50, 500)
            self.noop_count = 2000
            self.idle_sessions = (0, 100, 500)
            self.pinhole_sessions = 500
            self.max_seconds = 2400
        # One repetition of each per pass.
        self.bulk_runs = self.session_rounds = self.concurrent_rounds = 1
        self.noop_rounds = self.memory_rounds = self.pinhole_runs = 1
        self.bulk_timeout = 120
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


def run_setup(setup, cfg, results, workdir, big, example, pass_no, broken):
    """One pass of everything measured for one set-up, in its own lab. A
    failing measurement is noted, the others still run, and it is not tried
    again in later passes (broken: set of (set-up, step) that failed)."""
    lab = labmod.Lab(setup.lab_kind)
    sdir = os.path.join(workdir, "%s-%d" % (setup.name, pass_no))
    os.makedirs(sdir)
    os.chmod(sdir, 0o755)
    srv = None
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
        ctx = measures.Context(lab, setup, cfg, results, big[1], cfg.size, say)
        first = pass_no == 0
        steps = [("download PASV", lambda: measures.bulk(ctx, True, first)),
                 ("download PORT", lambda: measures.bulk(ctx, False, first)),
                 ("small sessions PASV", lambda: measures.sessions(ctx, True)),
                 ("small sessions PORT", lambda: measures.sessions(ctx, False))]
        if pass_no < cfg.concurrent_passes:
            for n in cfg.concurrent_counts:
                steps.append(("%d concurrent" % n,
                              lambda n=n: measures.concurrent(ctx, n, srv.proc.pid)))
        steps.append(("NOOP round trips", lambda: measures.noop(ctx)))
        if setup.has_proxy and pass_no < cfg.memory_passes:
            steps.append(("idle memory", lambda: measures.idle_memory(ctx)))
        if setup.name == "ftp-proxy":
            steps.append(("pinholes", lambda: measures.pinholes(ctx, example)))
        for what, fn in steps:
            if (setup.name, what) in broken:
                continue
            t0 = time.monotonic()
            try:
                fn()
                say("#   %-22s %5.1f s" % (what, time.monotonic() - t0))
            except Exception as e:
                broken.add((setup.name, what))
                msg = "%s, %s (pass %d): %s" % (setup.title, what, pass_no + 1,
                                                str(e).splitlines()[0][:300])
                say("#   %-22s FAILED: %s" % (what, msg))
                results.note(failed(setup) + msg)
    except Exception as e:
        results.note(failed(setup) + "%s: %s" % (setup.title, str(e).splitlines()[0][:300]))
        say("# %s: set-up failed: %s" % (setup.title, e))
        traceback.print_exc()
    finally:
        try:
            setup.stop()
        except Exception as e:
            results.note(failed(setup) + "%s: %s" % (setup.title, e))
        if srv:
            srv.stop()
        lab.down()


def main():
    args = parse_args()
    cfg = Config(args.quick)
    if args.passes:
        cfg.passes = max(1, min(args.passes, 20))
    if os.geteuid() != 0:
        print("bench.py: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    started = procs.start_run(cfg.max_seconds)
    results = Results()
    workdir = procs.work_dir("ftp-proxy-bench-", "/var/tmp")
    status = 0
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
        say("# making the %s file" % cfg.size_label)
        big = server.big_file(cfg.size)
        broken = set()
        for pass_no in range(cfg.passes):
            for setup in chosen:
                say("# pass %d/%d: %s" % (pass_no + 1, cfg.passes, setup.title))
                run_setup(setup, cfg, results, workdir, big, example, pass_no, broken)
        results.sort([s.title for s in chosen])
    except procs.Overtime:
        results.note("the run took more than %d s and was stopped" % cfg.max_seconds)
        status = 1
    finally:
        signal.alarm(0)
        procs.stop_all()
        accounting.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    status = max(status, output(args, cfg, results, elapsed))
    return status


def output(args, cfg, results, elapsed):
    """Print the table, the added latency and the targets; write the files.
    Exit status 1 when something failed to run (never for a missed target)."""
    when = datetime.datetime.now(datetime.timezone.utc)
    desc = machine()
    title = "ftp-proxy benchmark, %s%s" % (when.strftime("%Y-%m-%d %H:%M UTC"),
                                           " (quick mode: sizes too small to mean anything)"
                                           if cfg.quick else "")
    added = report.added_latency(results)
    targets = targetmod.evaluate(results, cfg)
    say("")
    say(title)
    say(desc)
    say("")
    say(report.text_table(results))
    if added:
        say("")
        say("Latency added to a NOOP round trip over direct routing (difference of medians):")
        for setup, q, us in added:
            say("  %-22s %-6s %+8.1f us" % (setup, q, us))
            results.note("NOOP round trip %s, %s: %+.1f us over direct routing"
                         % (q, setup, us))
    say("")
    say("Targets (issue 7)%s:" % (" — quick mode, not meaningful" if cfg.quick else ""))
    for t in targets:
        say("  " + t)
    if results.notes:
        say("")
        say("Notes:")
        for n in results.notes:
            if not n.startswith("NOOP round trip"):
                say("  " + n)
    out = args.out or (os.path.join(HERE, "results") if not cfg.quick
                       else tempfile.mkdtemp(prefix="ftp-proxy-bench-results-"))
    os.makedirs(out, exist_ok=True)
    stem = when.strftime("%Y-%m-%d") + ("-quick" if cfg.quick else "")
    svg_name = stem + ".svg"
    with open(os.path.join(out, svg_name), "w") as f:
        f.write(report.svg(results, cfg.size_label, desc))
    page = report.markdown(results, desc, targets, title, svg_name, elapsed)
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(page)
    # Every per-run value, for anyone who wants other statistics than these.
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump({"title": title, "machine": desc, "elapsed_s": round(elapsed, 1),
                   "rows": [{"setup": r.setup, "metric": r.metric, "values": r.values}
                            for r in results.rows],
                   "notes": results.notes}, f, indent=1)
    if not cfg.quick and not args.out and not args.only:
        readme_update(stem, results, desc, targets, title)
        top_readme_update(stem, results, cfg, desc)
    say("")
    say("# results: %s/%s.md, .svg and .json" % (out, stem))
    say("# %.0f s" % elapsed)
    # Only a measurement that could not be made fails the run; what the
    # figures say about the daemon (a shortfall, a missed target) does not.
    broken = [n for n in results.notes if n.startswith("failed") or "stopped" in n]
    return 1 if broken else 0


BEGIN, END = "<!-- latest results: begin -->", "<!-- latest results: end -->"


def readme_update(stem, results, desc, targets, title):
    """Put the latest table and plot into bench/README.md between markers."""
    path = os.path.join(HERE, "README.md")
    if not os.path.exists(path):
        return
    with open(path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return
    section = "\n".join([BEGIN, "", "**%s**" % title, "", desc, "",
                         "![throughput and sessions per second](results/%s.svg)" % stem, "",
                         report.markdown_table(results), "", "Targets:", ""] +
                        ["- " + t for t in targets] +
                        ["", "Full page: [results/%s.md](results/%s.md)" % (stem, stem), "", END])
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
