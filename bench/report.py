"""The results as a text table, a Markdown page and an SVG chart.

The SVG is written by hand (no plotting library on a firewall-sized Debian
install): grouped bar charts of the download throughput and the small
sessions per second, PASV and PORT side by side for each set-up, each bar
the median with a whisker from the minimum to the maximum; and a chart of
the daemon's paired ratios (per pass, to the conntrack helper and to
direct routing), median and min–max.
"""

import html
import math

from results import BASELINE

THIS = "ftp-proxy (this)"
HELPER = "conntrack helper"
COSTS_TITLE = ("The proxies' own costs (less sensitive to load than rates; system-call "
               "counts are exact)")
COLUMNS = ("set-up", "metric", "median", "min", "max",
           "ratio to direct, per pass: median (min–max)")


def cells(results):
    out = []
    for row in results.rows:
        ratio = results.ratio(row)
        out.append((row.setup, row.metric, row.fmt % row.median, row.fmt % row.min,
                    row.fmt % row.max, str(ratio) if ratio is not None else "—"))
    return out


def comparisons(size_label):
    """(set-up, other set-up, metric) whose paired ratio the report states
    apart from the table: the daemon against the conntrack helper (what an
    admin would use instead) and both against direct routing (the ceiling)."""
    metrics = ["%s download %s (MB/s)" % (size_label, m) for m in ("PASV", "PORT")]
    metrics += ["small sessions/s %s" % m for m in ("PASV", "PORT")]
    metrics += ["NOOP round trip, median (us)"]
    return [(a, b, m) for a, b in ((THIS, HELPER), (THIS, BASELINE), (HELPER, BASELINE))
            for m in metrics]


def paired_lines(results, size_label):
    """One line per comparison measured: "ftp-proxy (this) / conntrack helper,
    small sessions/s PASV: 0.83 (0.72–0.90), 5 passes"."""
    out = []
    for a, b, m in comparisons(size_label):
        sp = results.paired(a, b, m)
        if sp is not None:
            out.append("%s / %s, %s: %s, %d pass%s" % (a, b, m, sp, len(sp.values),
                                                       "" if len(sp.values) == 1 else "es"))
    return out


def text_table(results):
    rows = [COLUMNS] + cells(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cost_lines(results):
    """Per proxy set-up: its CPU time per small session and per NOOP round
    trip, and its system calls per round trip with their breakdown."""
    out = []
    for setup in results.setups():
        parts = []
        for metric, unit in (("proxy CPU per small session PASV (us)", "µs"),
                             ("proxy CPU per small session PORT (us)", "µs"),
                             ("proxy CPU per NOOP round trip (us)", "µs"),
                             ("system calls per NOOP round trip", "")):
            row = results.get(setup, metric)
            if row is None:
                continue
            name = metric.replace("proxy ", "").replace(" (us)", "")
            text = "%s %s%s" % (name, row.fmt % row.median, " " + unit if unit else "")
            if len(row.values) > 1:
                text += " (%s–%s)" % (row.fmt % row.min, row.fmt % row.max)
            parts.append(text)
        if parts:
            out.append("%s: %s" % (setup, "; ".join(parts)))
        for text in results.details.get(setup, {}).get("system calls per NOOP round trip", [])[-1:]:
            out.append("%s: system calls per NOOP round trip, last pass: %s" % (setup, text))
    return out


def markdown_table(results):
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|---|---|---:|---:|---:|---:|"]
    for r in cells(results):
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def markdown(results, machine, targets, title, svg_name=None, elapsed=None, paired=(),
             costs=()):
    parts = ["# %s" % title, "", machine, ""]
    if svg_name:
        parts += ["![throughput and sessions per second](%s)" % svg_name, ""]
    if paired:
        parts += ["## Paired ratios (per pass: median (min–max))", ""] + \
            ["- " + p for p in paired] + [""]
    if costs:
        parts += ["## " + COSTS_TITLE, ""] + \
            ["- " + c for c in costs] + [""]
    parts += ["## Every figure", "", markdown_table(results), ""]
    if targets:
        parts += ["## Targets", ""] + ["- " + t for t in targets] + [""]
    if results.notes:
        parts += ["## Notes", ""] + ["- " + n for n in results.notes] + [""]
    if elapsed is not None:
        parts += ["Run time: %.0f s." % elapsed, ""]
    return "\n".join(parts)


# -- SVG ----------------------------------------------------------------------

COLOURS = {"PASV": "#3b7dd8", "PORT": "#e08a2c"}


def _chart(x0, y0, w, h, title, unit, groups, marks=()):
    """groups: [(label, {"PASV": (median, min, max), "PORT": ...})]; marks:
    [(value, label)] drawn as dashed reference lines. Returns SVG elements."""
    out = ['<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>'
           % (x0, y0 - 10, html.escape(title))]
    top = _nice(max([v[2] for _, vals in groups for v in vals.values() if v] +
                    [m for m, _ in marks] + [1e-9]))
    plot_h = h - 60
    base_y = y0 + plot_h
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>'
               % (x0, base_y, x0 + w, base_y))
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = base_y - frac * plot_h
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (x0, y, x0 + w, y))
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%s</text>'
                   % (x0 - 4, y + 3, _short(top * frac)))
    out.append('<text x="%d" y="%d" font-size="10" transform="rotate(-90 %d %d)" '
               'text-anchor="middle">%s</text>' % (x0 - 40, y0 + plot_h // 2, x0 - 40,
                                                 y0 + plot_h // 2, html.escape(unit)))
    slot = w / max(1, len(groups))
    bar = min(40, slot / 3)
    for i, (label, vals) in enumerate(groups):
        cx = x0 + slot * i + slot / 2
        for j, mode in enumerate(("PASV", "PORT")):
            if vals.get(mode) is None:
                continue
            v, lo, hi = vals[mode]
            bh = v / top * plot_h
            x = cx - bar + j * bar
            mid = x + bar / 2 - 1
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (x, base_y - bh, bar - 2, bh, COLOURS[mode]))
            if hi > lo:
                # The whisker: minimum to maximum over the passes.
                ylo, yhi = base_y - lo / top * plot_h, base_y - hi / top * plot_h
                out.append('<path d="M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f" '
                           'stroke="#222" fill="none"/>'
                           % (mid, ylo, yhi, mid - 4, ylo, mid + 4, mid - 4, yhi, mid + 4))
            out.append('<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>'
                       % (mid, min(base_y - bh, base_y - hi / top * plot_h) - 3, _short(v)))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                   % (cx, base_y + 16, html.escape(label)))
    for i, (value, text) in enumerate(marks):
        # Labels at alternate ends: close reference lines do not overlap.
        y = base_y - value / top * plot_h
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" '
                   'stroke-dasharray="4 3"/>' % (x0, y, x0 + w, y))
        out.append('<text x="%d" y="%.1f" font-size="9" fill="#c00" text-anchor="%s">%s</text>'
                   % (x0 + w if i % 2 == 0 else x0 + 4, y - 3 if i % 2 == 0 else y + 10,
                      "end" if i % 2 == 0 else "start", html.escape(text)))
    return out


def _nice(v):
    """The smallest 1, 2, 2.5 or 5 times a power of ten at least v: round
    gridline labels."""
    scale = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= v:
            return step * scale
    return 10 * scale


def _short(v):
    if v == 0:
        return "0"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def svg(results, size_label, subtitle):
    setups = results.setups()
    thr, ses = [], []
    for s in setups:
        t = {m: _spread(results, s, "%s download %s (MB/s)" % (size_label, m))
             for m in ("PASV", "PORT")}
        k = {m: _spread(results, s, "small sessions/s %s" % m) for m in ("PASV", "PORT")}
        if any(v is not None for v in t.values()):
            thr.append((s, t))
        if any(v is not None for v in k.values()):
            ses.append((s, k))
    ratios = []
    for label, other, metric in (
            ("sessions/s ÷ conntrack helper", HELPER, "small sessions/s %s"),
            ("sessions/s ÷ direct routing", BASELINE, "small sessions/s %s"),
            ("throughput ÷ direct routing", BASELINE, size_label + " download %s (MB/s)")):
        vals = {}
        for m in ("PASV", "PORT"):
            sp = results.paired(THIS, other, metric % m)
            if sp is not None:
                vals[m] = (sp.median, sp.min, sp.max)
        if vals:
            ratios.append((label, vals))
    width, chart_h = 860, 300
    heading, nlines = _wrapped(20, 20, subtitle, 110)
    top = 20 + 15 * nlines + 35
    body = ['<rect width="100%" height="100%" fill="white"/>', heading]
    body += _chart(80, top, width - 120, chart_h, "%s download throughput (median, "
                   "min–max over passes)" % size_label, "MB/s", thr)
    top += chart_h + 60
    body += _chart(80, top, width - 120, chart_h,
                   "small sessions per second, sequential (median, min–max)", "sessions/s", ses)
    if ratios:
        top += chart_h + 60
        body += _chart(80, top, width - 120, chart_h,
                       "ftp-proxy (this): ratios paired per pass (median, min–max)", "ratio",
                       ratios, marks=((1.0, "1.00"), (0.95, "target 0.95")))
    legend_y = top + chart_h + 30
    for i, mode in enumerate(("PASV", "PORT")):
        x = 80 + i * 120
        body.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                    % (x, legend_y - 10, COLOURS[mode]))
        body.append('<text x="%d" y="%d" font-size="12">%s</text>'
                    % (x + 18, legend_y, "passive (PASV)" if mode == "PASV" else
                       "active (PORT)"))
    height = legend_y + 20
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="sans-serif">\n%s\n</svg>\n'
            % (width, height, width, height, "\n".join(body)))


def _wrapped(x, y, text, width):
    """text in lines of at most width characters (SVG has no wrapping)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + " " + word).strip()
    lines.append(line)
    spans = "".join('<tspan x="%d" dy="%d">%s</tspan>' % (x, 0 if i == 0 else 15, html.escape(l))
                    for i, l in enumerate(lines))
    return '<text x="%d" y="%d" font-size="12">%s</text>' % (x, y, spans), len(lines)


def _spread(results, setup, metric):
    row = results.get(setup, metric)
    return (row.median, row.min, row.max) if row else None


def added_latency(results):
    """The latency each set-up adds to a NOOP round trip over direct
    routing, paired per pass as the ratios are: [(set-up, "median" or
    "p99", Spread of the per-pass differences in µs)]."""
    out = []
    for setup in results.setups():
        if setup == BASELINE:
            continue
        for q in ("median", "p99"):
            sp = results.paired_difference(setup, BASELINE, "NOOP round trip, %s (us)" % q)
            if sp is not None:
                out.append((setup, q, sp))
    return out


def summary_table(results, size_label):
    """The top-level README's compact table: one line per set-up, medians,
    and the small sessions' rate as a ratio to the conntrack helper paired
    per pass (median, min–max)."""
    lines = ["| set-up | %s MB/s PASV / PORT | proxy CPU s per transfer PASV / PORT | "
             "small sessions/s PASV / PORT | sessions/s ÷ conntrack helper, per pass, "
             "PASV / PORT |" % size_label, "|---|---|---|---|---|"]

    def pair(setup, metric, fmt):
        vals = [results.get(setup, metric % m) for m in ("PASV", "PORT")]
        return " / ".join(fmt % r.median if r else "—" for r in vals)

    def ratio(setup):
        sps = [results.paired(setup, HELPER, "small sessions/s %s" % m) for m in ("PASV", "PORT")]
        return " / ".join(str(sp) if sp else "—" for sp in sps)
    for setup in results.setups():
        lines.append("| %s | %s | %s | %s | %s |" % (
            setup,
            pair(setup, size_label + " download %s (MB/s)", "%.0f"),
            pair(setup, "proxy CPU, " + size_label + " download %s (s)", "%.4f"),
            pair(setup, "small sessions/s %s", "%.1f"),
            ratio(setup) if setup != HELPER else "1"))
    return "\n".join(lines)
