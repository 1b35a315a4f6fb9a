"""The benchmark's targets, judged on this run's figures (the only place the
benchmark says met or not met; the measurements themselves never fail on a
number). Comparisons between set-ups use the ratios paired per pass: the
median of the per-pass ratios, with their range beside it."""

from report import HELPER, THIS
from results import BASELINE

SESSIONS_VS_HELPER = 0.95
THROUGHPUT_VS_DIRECT = 0.95
SYSCALLS_PER_ROUND_TRIP = 6


def evaluate(results, cfg):
    lines = []

    def judge(ok, text):
        lines.append("%s: %s" % ("met" if ok else "NOT met", text))

    def missing(what):
        lines.append("not measured: %s" % what)

    for mode in ("PASV", "PORT"):
        metric = "%s download %s (MB/s)" % (cfg.size_label, mode)
        row, sp = results.get(THIS, metric), results.paired(THIS, BASELINE, metric)
        if row is None or sp is None:
            missing("throughput %s" % mode)
        else:
            judge(sp.median >= THROUGHPUT_VS_DIRECT,
                  "throughput %s %.0f MB/s, %s x direct routing per pass (>= %.2f)"
                  % (mode, row.median, sp, THROUGHPUT_VS_DIRECT))
    for mode in ("PASV", "PORT"):
        row = results.get(THIS, "proxy CPU, %s download %s (s)" % (cfg.size_label, mode))
        if row is None:
            missing("proxy CPU %s" % mode)
        else:
            judge(row.median <= 0.02, "proxy CPU during the %s %s download %.4f s, max %.4f s "
                  "(<= 0.02 s)" % (cfg.size_label, mode, row.median, row.max))
    for mode in ("PASV", "PORT"):
        metric = "small sessions/s %s" % mode
        row, sp = results.get(THIS, metric), results.paired(THIS, HELPER, metric)
        if row is None or sp is None:
            missing("small sessions/s %s against the conntrack helper" % mode)
        else:
            judge(sp.median >= SESSIONS_VS_HELPER,
                  "small sessions/s %s %.0f, %s x conntrack helper per pass (>= %.2f)"
                  % (mode, row.median, sp, SESSIONS_VS_HELPER))
    row = results.get(THIS, "system calls per NOOP round trip")
    if row is None:
        missing("system calls per NOOP round trip")
    else:
        judge(row.median <= SYSCALLS_PER_ROUND_TRIP,
              "system calls per NOOP round trip %.2f, max %.2f (<= %d)"
              % (row.median, row.max, SYSCALLS_PER_ROUND_TRIP))
    row = results.get(THIS, "pinhole install, median (us)")
    if row is None:
        missing("pinhole install latency")
    else:
        judge(row.median <= 50, "pinhole install median %.1f us (<= 50 us)" % row.median)
    # The largest number of idle sessions the daemon was measured with
    # (fewer than asked for when it could not hold them all: said so).
    held = [(int(r.metric.split()[1]), r) for r in results.rows
            if r.setup == THIS and r.metric.startswith("RSS, ")]
    if not held:
        missing("RSS with idle sessions")
    else:
        n, row = max(held, key=lambda x: x[0])
        judge(row.median <= 8, "RSS with %d idle sessions %.2f MiB (<= 8 MiB%s)"
              % (n, row.median, "" if n == 500 else "; the target is at 500"))
    return lines
