"""Figures as they are collected: one row per set-up and metric, holding the
value of every repeated run and the pass it came from, summarised as
median, minimum and maximum.

Ratios (and differences) between set-ups are paired: every pass measures each set-up back to
back, so a ratio is taken within a pass (this set-up's value over the other
set-up's value in the same pass) and the table gives the median and the
range of those per-pass ratios. A ratio of medians would mix a quiet pass
of one set-up with a loaded pass of the other: on a shared machine whose
speed varies from minute to minute, it cannot tell a 10 % difference from
noise, while the paired ratio cancels what both measurements of a pass
shared.
"""

import statistics

BASELINE = "direct routing"


def percentile(values, q):
    """The q-th quantile (q in 0..1) of a non-empty list: the sorted value
    at index round(q * (n - 1)), no interpolation between neighbours."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def paired_ratios(a, b):
    """Per-pass ratios a/b of two {pass: [values]} maps: one ratio for every
    pass both measured (the median of each side's values in that pass; a
    pass with a zero for b gives none)."""
    out = []
    for p in sorted(set(a) & set(b)):
        den = statistics.median(b[p])
        if den:
            out.append(statistics.median(a[p]) / den)
    return out


def paired_differences(a, b):
    """Per-pass differences a - b of two {pass: [values]} maps, as
    paired_ratios: one for every pass both measured, from each side's
    median in that pass."""
    return [statistics.median(a[p]) - statistics.median(b[p]) for p in sorted(set(a) & set(b))]


class Spread:
    """Median, minimum and maximum of a non-empty list of numbers."""

    def __init__(self, values):
        self.values = list(values)
        self.median = statistics.median(self.values)
        self.min = min(self.values)
        self.max = max(self.values)

    def format(self, fmt="%.2f"):
        """"median (min–max)", each with fmt; the median alone when the
        range is a single value."""
        if len(self.values) == 1 or self.min == self.max:
            return fmt % self.median
        return "%s (%s–%s)" % (fmt % self.median, fmt % self.min, fmt % self.max)

    def __str__(self):
        return self.format()


class Row:
    def __init__(self, setup, metric, fmt, ratio):
        self.setup = setup
        self.metric = metric
        self.values = []
        self.passes = []
        self.fmt = fmt
        self.with_ratio = ratio

    def by_pass(self):
        """{pass: [values measured in that pass]}."""
        out = {}
        for p, v in zip(self.passes, self.values):
            out.setdefault(p, []).append(v)
        return out

    @property
    def median(self):
        return statistics.median(self.values)

    @property
    def min(self):
        return min(self.values)

    @property
    def max(self):
        return max(self.values)


class Results:
    def __init__(self):
        self.rows = []
        self.notes = []
        self.details = {}

    def add(self, setup, metric, values, fmt="%.1f", ratio=True, pass_no=0):
        """Record values of metric for setup measured in pass pass_no; values
        of later passes join the same row (empty: nothing added)."""
        values = [v for v in values if v is not None]
        if not values:
            return
        row = self.get(setup, metric)
        if row is None:
            row = Row(setup, metric, fmt, ratio)
            self.rows.append(row)
        row.values.extend(values)
        row.passes.extend([pass_no] * len(values))

    def sort(self, setup_order):
        """Rows grouped by set-up in setup_order; within a set-up, in the
        order they were first measured (the sort is stable)."""
        rank = {s: i for i, s in enumerate(setup_order)}
        self.rows.sort(key=lambda r: rank.get(r.setup, len(rank)))

    def note(self, text):
        """A note, once: the same finding in every pass is said once."""
        if text not in self.notes:
            self.notes.append(text)

    def detail(self, setup, metric, text):
        """What lies behind a figure (a breakdown), per pass: {setup: {metric: [text]}}."""
        self.details.setdefault(setup, {}).setdefault(metric, []).append(text)

    def get(self, setup, metric):
        for row in self.rows:
            if row.setup == setup and row.metric == metric:
                return row
        return None

    def paired(self, setup, other, metric):
        """Spread of setup's per-pass ratios to other for metric, or None
        when no pass measured both."""
        a, b = self.get(setup, metric), self.get(other, metric)
        if a is None or b is None:
            return None
        ratios = paired_ratios(a.by_pass(), b.by_pass())
        return Spread(ratios) if ratios else None

    def paired_difference(self, setup, other, metric):
        """Spread of setup's per-pass differences from other for metric
        (setup's value minus other's in the same pass), or None when no
        pass measured both."""
        a, b = self.get(setup, metric), self.get(other, metric)
        if a is None or b is None:
            return None
        diffs = paired_differences(a.by_pass(), b.by_pass())
        return Spread(diffs) if diffs else None

    def ratio(self, row):
        """Spread of row's per-pass ratios to direct routing, the same metric."""
        if not row.with_ratio:
            return None
        return self.paired(row.setup, BASELINE, row.metric)

    def setups(self):
        seen = []
        for row in self.rows:
            if row.setup not in seen:
                seen.append(row.setup)
        return seen

    def to_json(self):
        return [{"setup": r.setup, "metric": r.metric, "values": r.values,
                 "passes": r.passes} for r in self.rows]
