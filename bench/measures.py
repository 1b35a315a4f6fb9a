"""Each measurement, run against one set-up in its lab.

Every client runs in the client namespace (through the lab's procs.run,
bounded in time); all traffic stays between the lab's namespaces. Each
function records per-run values in a results.Results and returns nothing;
a failure raises, and the caller reports it for that set-up.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import accounting
from ftplab import lab as labmod
from ftplab import procs
import syscalls
from results import percentile

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN = os.path.join(HERE, "loadgen.py")
BIG_FILE = "big.bin"
CONCURRENT_TIMEOUT = 60
SMALL_FILE = "1k.bin"


class Fail(Exception):
    pass


class Context:
    """What a measurement needs: the lab, the set-up, the sizes, the results."""

    def __init__(self, lab, setup, cfg, results, big_sha, big_size, log, pass_no, workdir):
        self.lab, self.setup, self.cfg, self.results = lab, setup, cfg, results
        self.big_sha, self.big_size = big_sha, big_size
        self.log = log
        self.pass_no = pass_no
        self.workdir = workdir

    def add(self, metric, values, fmt="%.1f", ratio=True):
        self.results.add(self.setup.title, metric, values, fmt, ratio, self.pass_no)

    def cpu(self):
        """The proxy's CPU seconds so far (None: a kernel-only set-up)."""
        return self.setup.account.cpu_seconds() if self.setup.account else None


def loadgen(ctx, action, limit, **opts):
    """Run loadgen.py action in the client namespace, at most limit seconds."""
    host, port = ctx.setup.target()
    argv = [sys.executable or "python3", LOADGEN, action, "--host", host, "--port", str(port)]
    for key, value in opts.items():
        if value is True:
            argv.append("--" + key.replace("_", "-"))
        elif value not in (None, False):
            argv += ["--" + key.replace("_", "-"), str(value)]
    cp = procs.run(argv, ns=ctx.lab.client, timeout=limit)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def mode_name(passive):
    return "PASV" if passive else "PORT"


# -- 1 GiB download ---------------------------------------------------------

def curl_argv(ctx, passive, out):
    """curl, forced to PASV or PORT (no EPSV/EPRT: the SuSE relay knows
    neither, and the lab notes' figures are for PASV/PORT)."""
    host, port = ctx.setup.target()
    argv = ["curl", "-sS", "--max-time", str(ctx.cfg.bulk_timeout), "--disable-epsv",
            "--disable-eprt"]
    if not passive:
        argv += ["-P", labmod.CLIENT4]
    return argv + ["-o", out, "ftp://%s:%d/%s" % (host, port, BIG_FILE)]


def verify_download(ctx, passive):
    """One untimed download streamed into sha256: what arrived is the file,
    whole. Also warms caches and connection tracking for the timed runs."""
    argv = procs.in_ns(ctx.lab.client, curl_argv(ctx, passive, "-"))
    h, size = hashlib.sha256(), 0
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for block in iter(lambda: p.stdout.read(1 << 20), b""):
            h.update(block)
            size += len(block)
        p.wait(timeout=ctx.cfg.bulk_timeout + 10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    err = p.stderr.read().decode(errors="replace").strip()
    if p.returncode != 0 or size != ctx.big_size or h.hexdigest() != ctx.big_sha:
        raise Fail("%s download arrived wrong: exit %s, %d of %d bytes, sha256 %s: %s" % (
            mode_name(passive), p.returncode, size, ctx.big_size,
            "ok" if h.hexdigest() == ctx.big_sha else "differs", err[-300:]))


def bulk(ctx, passive, verify):
    """Throughput of one large download, and the proxy's CPU time meanwhile.

    Throughput is bytes over curl's own transfer time (time_total minus
    time_pretransfer): connection set-up and login are not part of it, the
    wait for the final 226 reply is. The CPU time is the proxy cgroup's
    counter read before and after the whole curl run (login included)."""
    if verify:
        verify_download(ctx, passive)
    rates, cpu = [], []
    fmt = "%{size_download} %{time_pretransfer} %{time_total}"
    for _ in range(ctx.cfg.bulk_runs):
        before = ctx.setup.account.cpu_seconds() if ctx.setup.account else None
        argv = curl_argv(ctx, passive, "/dev/null") + ["-w", fmt]
        cp = procs.run(argv, ns=ctx.lab.client, timeout=ctx.cfg.bulk_timeout + 10)
        if before is not None:
            cpu.append(ctx.setup.account.cpu_seconds() - before)
        size, pre, total = cp.stdout.split()
        if int(size) != ctx.big_size:
            raise Fail("%s download: %s of %d bytes" % (mode_name(passive), size, ctx.big_size))
        rates.append(int(size) / (float(total) - float(pre)) / 1e6)
    m = mode_name(passive)
    ctx.add("%s download %s (MB/s)" % (ctx.cfg.size_label, m), rates)
    ctx.add("proxy CPU, %s download %s (s)" % (ctx.cfg.size_label, m), cpu, "%.4f", ratio=False)


# -- small sessions ---------------------------------------------------------

def sessions(ctx, passive):
    """Sequential small sessions per second, over several rounds; each round
    stops at a count or a time budget, so the relays (about 10 a second)
    cost no more time than the rest. For a proxy, also its own CPU time per
    session (its cgroup's counter before and after the round, divided by
    the sessions): a cost that does not change with what else the machine
    runs, where the rate does."""
    rates, cpu = [], []
    for _ in range(ctx.cfg.session_rounds):
        before = ctx.cpu()
        r = loadgen(ctx, "sessions", ctx.cfg.session_seconds + 60, count=ctx.cfg.session_count,
                    max_seconds=ctx.cfg.session_seconds, active=not passive)
        after = ctx.cpu()
        if r["errors"] or not r["done"]:
            raise Fail("small sessions %s: %d failed, first: %s" % (
                mode_name(passive), r["errors"], r["first_error"]))
        rates.append(r["done"] / r["elapsed"])
        if before is not None:
            cpu.append((after - before) / r["done"] * 1e6)
    ctx.add("small sessions/s %s" % mode_name(passive), rates)
    ctx.add("proxy CPU per small session %s (us)" % mode_name(passive), cpu, ratio=False)


def listen_overflows(pid):
    """TcpExt ListenOverflows + ListenDrops in the network namespace of pid:
    connections a full accept queue turned away (each costs the client a
    SYN retransmit, 1 s)."""
    with open("/proc/%d/net/netstat" % pid) as f:
        lines = f.read().splitlines()
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            fields = dict(zip(head.split()[1:], (int(v) for v in values.split()[1:])))
            return fields.get("ListenOverflows", 0) + fields.get("ListenDrops", 0)
    return 0


def concurrent(ctx, n, server_pid):
    """Wall time for n small sessions started together (PASV), with the
    number that took a second or more, the number that failed (each waits
    at most CONCURRENT_TIMEOUT s, about as long as the kernel retransmits a
    SYN-ACK) and the listen-queue overflows on the server and on the proxy:
    medians alone would hide small backlogs (vsftpd 32, ftp-proxy 10)
    turning connections away. Failed sessions are a figure, not an error:
    the wall time then runs until the last one gave up."""
    walls, slow, failed, server_over, gateway_over = [], [], [], [], []
    gateway_pid = ctx.setup.pid()
    for _ in range(ctx.cfg.concurrent_rounds):
        before = listen_overflows(server_pid), gateway_pid and listen_overflows(gateway_pid)
        r = loadgen(ctx, "concurrent", ctx.cfg.concurrent_seconds + 60, count=n,
                    max_seconds=ctx.cfg.concurrent_seconds, timeout=CONCURRENT_TIMEOUT)
        server_over.append(listen_overflows(server_pid) - before[0])
        if gateway_pid:
            gateway_over.append(listen_overflows(gateway_pid) - before[1])
        if r["unfinished"] or r["done"] + r["errors"] != n:
            raise Fail("%d concurrent sessions: %d done, %d failed, %d unfinished; first: %s"
                       % (n, r["done"], r["errors"], r["unfinished"], r["first_error"]))
        if r["errors"]:
            ctx.results.note("finding: %s, %d concurrent: sessions failed, first: %s" % (
                ctx.setup.title, n, r["first_error"][0]))
        walls.append(r["wall"])
        slow.append(r["over_1s"])
        failed.append(r["errors"])
        time.sleep(0.5)   # let the last sessions' processes on the server exit
    ctx.add("%d concurrent sessions, wall (s)" % n, walls, "%.3f")
    ctx.add("%d concurrent: failed sessions" % n, failed, "%d", ratio=False)
    ctx.add("%d concurrent: sessions >= 1 s" % n, slow, "%d", ratio=False)
    ctx.add("%d concurrent: server listen overflows" % n, server_over, "%d", ratio=False)
    ctx.add("%d concurrent: proxy listen overflows" % n, gateway_over, "%d", ratio=False)


# -- control round trip ------------------------------------------------------

def noop(ctx):
    """NOOP round trips in one logged-in session, in phases the harness
    starts (loadgen.py noop):

    1. noop_count round trips, each timed: the median and the 99th
       percentile; for a proxy also its CPU time per round trip (its
       cgroup's counter around the phase alone, login excluded);
    2. for a proxy, syscall_count round trips under strace -c: the system
       calls per round trip, exact (each round trip waits for its reply,
       so tracing slows the proxy but does not change what it calls)."""
    host, port = ctx.setup.target()
    argv = [sys.executable or "python3", LOADGEN, "noop", "--host", host, "--port", str(port),
            "--max-seconds", "120"]
    client = procs.Background("noop", argv, ns=ctx.lab.client, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        state = _reply(client, 60, "login")
        if state.get("refused"):
            ctx.results.note("%s: NOOP not measured, the proxy answers NOOP itself: %s"
                             % (ctx.setup.title, state["refused"]))
            return
        before = ctx.cpu()
        s = _phase(client, ctx.cfg.noop_count)
        after = ctx.cpu()
        ctx.add("NOOP round trip, median (us)", [percentile(s, 0.5)])
        ctx.add("NOOP round trip, p99 (us)", [percentile(s, 0.99)])
        if before is not None:
            ctx.add("proxy CPU per NOOP round trip (us)", [(after - before) / len(s) * 1e6],
                    ratio=False)
        if ctx.setup.account and ctx.cfg.syscall_count and syscalls.available():
            # The set-up's own directory: never a predictable name in a
            # shared /tmp, where another user could plant a link for root.
            out = os.path.join(ctx.workdir, "strace-c-%s-%d.txt"
                               % (ctx.setup.name, ctx.pass_no))
            with syscalls.Count(ctx.setup.account.pids(), out) as count:
                n = len(_phase(client, ctx.cfg.syscall_count))
            total, rows = syscalls.per_unit(count.counts, n)
            ctx.add("system calls per NOOP round trip", [total], "%.2f", ratio=False)
            ctx.results.detail(ctx.setup.title, "system calls per NOOP round trip",
                               "%.2f over %d round trips: %s"
                               % (total, n, syscalls.describe(rows)))
        client.popen.stdin.close()
        client.popen.wait(timeout=30)
    finally:
        client.stop(timeout=10)


def _phase(client, count):
    """Ask the noop client for count round trips; their times (us)."""
    client.popen.stdin.write(b"%d\n" % count)
    client.popen.stdin.flush()
    s = _reply(client, 180, "%d NOOPs" % count).get("samples_us") or []
    if len(s) != count:
        raise Fail("NOOP: %d of %d round trips" % (len(s), count))
    return s


def _reply(client, timeout, what):
    line = _read_line(client.popen.stdout, timeout)
    if not line:
        raise Fail("NOOP client: no answer after %s (exit %s)" % (what, client.popen.poll()))
    return json.loads(line)


# -- memory with idle sessions -------------------------------------------------

def idle_memory(ctx):
    """The proxy's memory while n logged-in sessions sit idle. The daemon is
    one process: its VmRSS. The relays fork a process per session: the sum of
    their PSS (shared pages divided among the sharers; a VmRSS sum would
    count the shared libraries once per process)."""
    acct = ctx.setup.account
    single = ctx.setup.name == "ftp-proxy"
    for n in ctx.cfg.idle_sessions:
        for _ in range(ctx.cfg.memory_rounds):
            mib, held, state = _held_memory(ctx, n, acct, single)
            if held != n:
                # Still worth a figure (a proxy that stops one short of its
                # limit is measured at what it held), but as a failure.
                ctx.results.note("finding: %s: only %d of %d idle sessions could be held: %s"
                                 % (ctx.setup.title, held, n, state.get("first_error")))
            ctx.add("%s, %d idle sessions (MiB)" % ("RSS" if single else "PSS sum", held),
                    [mib], "%.2f", ratio=False)


def _held_memory(ctx, n, acct, single):
    host, port = ctx.setup.target()
    argv = [sys.executable or "python3", LOADGEN, "hold", "--host", host, "--port", str(port),
            "--count", str(n), "--max-seconds", "300"]
    holder = procs.Background("hold", argv, ns=ctx.lab.client, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        line = _read_line(holder.popen.stdout, 120)
        state = json.loads(line) if line else {}
        if state.get("state") != "READY" or not state.get("held", 0) and n:
            raise Fail("holding %d idle sessions: %s" % (n, line.strip() or "no answer"))
        time.sleep(0.5)   # let the proxy finish its side of the last logins
        if single:
            kib = accounting.vm_rss_kib(acct.pid)
        else:
            kib = sum(accounting.pss_kib(p) for p in acct.pids())
        holder.popen.stdin.close()
        _read_line(holder.popen.stdout, 60)
        return kib / 1024.0, state.get("held", 0), state
    finally:
        holder.stop(timeout=10)
        time.sleep(0.5)   # sessions' processes exit before the next round


def _read_line(stream, timeout):
    import select
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().decode(errors="replace") if ready else ""


# -- pinholes -----------------------------------------------------------------

def pinholes(ctx, binary):
    """Install, replace and removal latency of the daemon's nftables backend
    (bench/pinhole_latency.rs, the same Nftables code the daemon runs), in
    the gateway namespace, next to the running daemon's own table."""
    stats = {"install": ([], []), "replace": ([], []), "remove": ([], [])}
    for _ in range(ctx.cfg.pinhole_runs):
        cp = procs.run([binary, str(ctx.cfg.pinhole_sessions), "1", "9021"],
                       ns=ctx.lab.gateway, timeout=120)
        r = json.loads(cp.stdout)
        for key, (med, p99) in stats.items():
            med.append(r[key]["median_us"])
            p99.append(r[key]["p99_us"])
    for key, (med, p99) in stats.items():
        ctx.add("pinhole %s, median (us)" % key, med, "%.1f", ratio=False)
        ctx.add("pinhole %s, p99 (us)" % key, p99, "%.1f", ratio=False)
