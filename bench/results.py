"""Figures as they are collected: one row per set-up and metric, holding the
value of every repeated run, summarised as median, minimum and maximum.

The ratio column compares a set-up's median with direct routing's median of
the same metric in the same run, never with a figure from elsewhere: the
machine is shared and its speed varies from hour to hour.
"""

import statistics

BASELINE = "direct routing"


def percentile(values, q):
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


class Row:
    def __init__(self, setup, metric, values, fmt, ratio):
        self.setup = setup
        self.metric = metric
        self.values = list(values)
        self.fmt = fmt
        self.with_ratio = ratio

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

    def add(self, setup, metric, values, fmt="%.1f", ratio=True):
        """Record per-run values of metric for setup; values of later passes
        join the same row (empty: nothing added)."""
        values = [v for v in values if v is not None]
        if not values:
            return
        row = self.get(setup, metric)
        if row is None:
            self.rows.append(Row(setup, metric, values, fmt, ratio))
        else:
            row.values.extend(values)

    def sort(self, setup_order):
        """Rows grouped by set-up in setup_order; within a set-up, in the
        order they were first measured (the sort is stable)."""
        rank = {s: i for i, s in enumerate(setup_order)}
        self.rows.sort(key=lambda r: rank.get(r.setup, len(rank)))

    def note(self, text):
        """A note, once: the same finding in every pass is said once."""
        if text not in self.notes:
            self.notes.append(text)

    def get(self, setup, metric):
        for row in self.rows:
            if row.setup == setup and row.metric == metric:
                return row
        return None

    def ratio(self, row):
        """row's median over direct routing's median of the same metric."""
        if not row.with_ratio:
            return None
        base = self.get(BASELINE, row.metric)
        if base is None or base.median == 0:
            return None
        return row.median / base.median

    def setups(self):
        seen = []
        for row in self.rows:
            if row.setup not in seen:
                seen.append(row.setup)
        return seen
