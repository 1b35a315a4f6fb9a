"""One case of the hostile, faults and load suites: what it sees, what it
notes, and the checks every such case ends with.

A case is a function of a Trial. It asserts, or returns. A case that must
wait a long time for something (the 30 s first-reply timeout) is a
generator: it yields once when its connection is set up; its suite starts
it before the other cases and finishes it after them, so the wait costs no
extra time.

What a case says (`say`) documents what happened (the reply the client got,
the daemon's log lines of the session, figures) and is printed as `#`
lines under the case's outcome; what it notes (`note`) is printed only when
it fails.
"""

import inspect
import time

import pytest

from . import checks
from . import daemonlog


class Trial:
    """What one case sees: the shared environment and its own notes."""

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.doc = []               # printed after the outcome line
        self.details = []           # printed when the case fails
        self.sessions = []          # [(family, session id)] whose log lines are printed
        self.since = time.monotonic()
        self.closers = []           # called when the case is over, pass or fail
        self.pending = None         # a generator case's second half

    def __getattr__(self, attr):
        return getattr(self.env, attr)

    def say(self, text):
        self.doc.append(text)

    def note(self, text):
        self.details.append(text)

    def track(self, family=4):
        """Remember the daemon's newest session (the one just opened) so
        that its log lines are printed with the outcome."""
        d = self.env.daemons[family]
        sid = daemonlog.latest_session(d.log_path)
        if sid is not None:
            self.sessions.append((family, sid))
        return sid

    def log_doc(self):
        out = []
        for family, sid in self.sessions:
            d = self.env.daemons.get(family)
            if d is None:
                continue
            for line in daemonlog.session_lines(d.log_path, sid):
                out.append("log%s: %s" % ("" if family == 4 else "(-6)", line))
        return out

    def close(self):
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:
                pass
        self.closers = []

    def run(self, fn, checks_after=None):
        """fn(self), then the closers, then the checks every case ends with."""
        try:
            fn(self)
        finally:
            self.close()
        (checks_after or common_checks)(self)

    def start(self, fn):
        """The first half of generator case fn (up to its yield)."""
        assert inspect.isgeneratorfunction(fn)
        gen = fn(self)
        try:
            next(gen)
        except StopIteration:
            gen = iter(())
        self.pending = gen

    def finish(self, checks_after=None):
        """The second half of a generator case started with start()."""
        def rest(_):
            try:
                next(self.pending)
            except StopIteration:
                return
            raise AssertionError("case yielded twice")
        self.run(rest, checks_after)


def common_checks(trial):
    """Every daemon alive; every element any of them installed since the
    case began is an allowed pinhole; nothing left in any table."""
    env = trial.env
    for family, d in sorted(env.daemons.items()):
        if not d.alive():
            trial.note(d.log_tail(30))
            raise AssertionError("ftp-proxy -%d died (exit %s)" % (family, d.proc.popen.poll()))
    for family, w in sorted(env.watches.items()):
        bad = w.violations(trial.since)
        assert not bad, "forbidden pinhole in the kernel: %s" % "; ".join(bad[:5])
    for family, d in sorted(env.daemons.items()):
        reason = checks.wait_no_pinholes(env.lab, *d.table, timeout=5)
        assert reason is None, reason


def case(name, fn):
    """One row of a table of cases: fn(trial), shown as name."""
    return pytest.param(fn, id=name)
