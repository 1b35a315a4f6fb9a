"""Cases, their outcome lines, and the checks every case ends with.

A case is a function of a Trial (what one case may use and what it notes).
It raises Fail with a reason, or returns. A case that must wait a long time
for something (the 30 s server timeout) is a generator: it yields once when
its connection is set up, the runner starts the other cases, and resumes it
at the end of its group, so the wait costs no extra time.

Output: `ok NAME` or `FAIL NAME: reason`, each followed by `#   ` lines that
document what happened (the reply the client got, the daemon's log lines of
the session, figures); `N passed, N failed` at the end.
"""

import time
import traceback

import checks
import daemonlog


class Fail(Exception):
    pass


def fail_unless(condition, reason):
    if not condition:
        raise Fail(reason)


class Case:
    def __init__(self, name, fn, quick=True):
        self.name = name
        self.fn = fn
        self.quick = quick          # part of --quick
        self.doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


class Reporter:
    def __init__(self, details_path, verbose=False):
        self.passed = self.failed = 0
        self.verbose = verbose
        self.details = open(details_path, "w")

    def report(self, name, reason=None, doc=(), details=()):
        if reason is None:
            self.passed += 1
            print("ok %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, reason.replace("\n", " ")[:500]), flush=True)
            self.details.write("==== %s\n%s\n" % (name, reason))
            for d in list(doc) + list(details):
                self.details.write(d + "\n")
            self.details.flush()
        for line in doc:
            print("#   " + line.replace("\n", " ")[:300], flush=True)
        if reason is not None and self.verbose:
            for d in details:
                for line in d.splitlines()[-20:]:
                    print("#!  " + line)


class Trial:
    """What one case sees: the shared environment and its own notes."""

    def __init__(self, env, name):
        self.env = env
        self.name = name
        self.doc = []               # printed after the outcome line
        self.details = []           # written to details.log on failure
        self.sessions = []          # [(family, session id)] whose log lines are printed
        self.since = time.monotonic()
        self.closers = []           # called when the case is over, pass or fail

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


def common_checks(trial):
    """Every daemon alive; every element any of them installed since the
    case began is an allowed pinhole; nothing left in any table."""
    env = trial.env
    for family, d in sorted(env.daemons.items()):
        if not d.alive():
            trial.note(d.log_tail(30))
            raise Fail("ftp-proxy -%d died (exit %s)" % (family, d.proc.popen.poll()))
    for family, w in sorted(env.watches.items()):
        bad = w.violations(trial.since)
        fail_unless(not bad, "forbidden pinhole in the kernel: %s" % "; ".join(bad[:5]))
    for family, d in sorted(env.daemons.items()):
        reason = checks.wait_no_pinholes(env.lab, *d.table, timeout=5)
        fail_unless(reason is None, reason)


def run_cases(env, cases, reporter, extra_checks=common_checks):
    """Run cases in order; generator cases are set up first and finished
    last. Every outcome is reported."""
    pending = []
    for c in cases:
        if not _is_gen(c.fn):
            continue
        trial = Trial(env, c.name)
        try:
            gen = c.fn(trial)
            next(gen)
        except StopIteration:
            gen = iter(())
        except Exception as e:
            _report_error(reporter, c, trial, e)
            continue
        pending.append((c, trial, gen))
    for c in cases:
        if not _is_gen(c.fn):
            trial = Trial(env, c.name)
            _run_one(reporter, c, trial, lambda t=trial, c=c: c.fn(t), extra_checks)
    for c, trial, gen in pending:
        _run_one(reporter, c, trial, lambda g=gen: _finish(g), extra_checks)


def _is_gen(fn):
    import inspect
    return inspect.isgeneratorfunction(fn)


def _finish(gen):
    try:
        next(gen)
    except StopIteration:
        return
    raise Fail("case yielded twice")


def _close_all(trial):
    for fn in reversed(trial.closers):
        try:
            fn()
        except Exception:
            pass
    trial.closers = []


def _run_one(reporter, c, trial, body, extra_checks):
    try:
        try:
            body()
        finally:
            _close_all(trial)
        if extra_checks:
            extra_checks(trial)
    except Fail as e:
        reporter.report(c.name, str(e), trial.doc + trial.log_doc(), trial.details)
        return False
    except Exception as e:
        _report_error(reporter, c, trial, e)
        return False
    reporter.report(c.name, None, trial.doc + trial.log_doc())
    return True


def _report_error(reporter, c, trial, e):
    _close_all(trial)
    reporter.report(c.name, "%s: %s" % (type(e).__name__, e), trial.doc + trial.log_doc(),
                    trial.details + [traceback.format_exc()])
