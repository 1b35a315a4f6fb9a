"""The results as a text table, a Markdown page and an SVG chart.

The SVG is written by hand (no plotting library on a firewall-sized Debian
install): two grouped bar charts, 1 GiB download throughput and small
sessions per second, PASV and PORT side by side for each set-up.
"""

import html
import math

from results import BASELINE

COLUMNS = ("set-up", "metric", "median", "min", "max", "ratio to direct")


def cells(results):
    out = []
    for row in results.rows:
        ratio = results.ratio(row)
        out.append((row.setup, row.metric, row.fmt % row.median, row.fmt % row.min,
                    row.fmt % row.max, "%.2f" % ratio if ratio is not None else "—"))
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


def markdown_table(results):
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|---|---|---:|---:|---:|---:|"]
    for r in cells(results):
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def markdown(results, machine, targets, title, svg_name=None, elapsed=None):
    parts = ["# %s" % title, "", machine, ""]
    if svg_name:
        parts += ["![throughput and sessions per second](%s)" % svg_name, ""]
    parts += [markdown_table(results), ""]
    if targets:
        parts += ["## Targets", ""] + ["- " + t for t in targets] + [""]
    if results.notes:
        parts += ["## Notes", ""] + ["- " + n for n in results.notes] + [""]
    if elapsed is not None:
        parts += ["Run time: %.0f s." % elapsed, ""]
    return "\n".join(parts)


# -- SVG ----------------------------------------------------------------------

COLOURS = {"PASV": "#3b7dd8", "PORT": "#e08a2c"}


def _chart(x0, y0, w, h, title, unit, groups):
    """groups: [(label, {"PASV": v, "PORT": v})]; returns SVG elements."""
    out = ['<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>'
           % (x0, y0 - 10, html.escape(title))]
    top = _nice(max([v for _, vals in groups for v in vals.values() if v] + [1]))
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
            v = vals.get(mode)
            if v is None:
                continue
            bh = v / top * plot_h
            x = cx - bar + j * bar
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (x, base_y - bh, bar - 2, bh, COLOURS[mode]))
            out.append('<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>'
                       % (x + bar / 2 - 1, base_y - bh - 3, _short(v)))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                   % (cx, base_y + 16, html.escape(label)))
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
        t = {m: _median(results, s, "%s download %s (MB/s)" % (size_label, m))
             for m in ("PASV", "PORT")}
        k = {m: _median(results, s, "small sessions/s %s" % m) for m in ("PASV", "PORT")}
        if any(v is not None for v in t.values()):
            thr.append((s, t))
        if any(v is not None for v in k.values()):
            ses.append((s, k))
    width, chart_h = 860, 300
    heading, nlines = _wrapped(20, 20, subtitle, 110)
    top = 20 + 15 * nlines + 35
    body = ['<rect width="100%" height="100%" fill="white"/>', heading]
    body += _chart(80, top, width - 120, chart_h, "%s download throughput" % size_label,
                   "MB/s", thr)
    body += _chart(80, top + chart_h + 60, width - 120, chart_h,
                   "small sessions per second (sequential)", "sessions/s", ses)
    legend_y = top + 2 * chart_h + 90
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


def _median(results, setup, metric):
    row = results.get(setup, metric)
    return row.median if row else None


def added_latency(results):
    """The latency each set-up adds to a NOOP round trip over direct routing."""
    out = []
    for setup in results.setups():
        if setup == BASELINE:
            continue
        for q in ("median", "p99"):
            metric = "NOOP round trip, %s (us)" % q
            row, base = results.get(setup, metric), results.get(BASELINE, metric)
            if row and base:
                out.append((setup, q, row.median - base.median))
    return out


def summary_table(results, size_label):
    """The top-level README's compact table: one line per set-up."""
    lines = ["| set-up | %s MB/s PASV / PORT | proxy CPU s per transfer PASV / PORT | "
             "small sessions/s PASV / PORT |" % size_label, "|---|---|---|---|"]

    def pair(setup, metric, fmt):
        vals = [results.get(setup, metric % m) for m in ("PASV", "PORT")]
        return " / ".join(fmt % r.median if r else "—" for r in vals)
    for setup in results.setups():
        lines.append("| %s | %s | %s | %s |" % (
            setup,
            pair(setup, size_label + " download %s (MB/s)", "%.0f"),
            pair(setup, "proxy CPU, " + size_label + " download %s (s)", "%.4f"),
            pair(setup, "small sessions/s %s", "%.1f")))
    return "\n".join(lines)
