#!/usr/bin/env python3
"""Hostile peers, faults and load against ftp-proxy, in the Linux lab.

    python3 regress/linux/hostile.py                  everything (as root)
    python3 regress/linux/hostile.py --quick          the CI size (under ~5 minutes)
    python3 regress/linux/hostile.py --groups load    only the load cases
    python3 regress/linux/hostile.py -k PORT --list   names of matching cases

Groups, each with its own daemons and server:
  hostile  a lying client and a lying server (evil_server.py) against
           ftp-proxy and ftp-proxy -6, both -t 5
  faults   the server dies, the client resets, the table is attacked, the
           daemon is killed and restarted, SIGTERM under load (vsftpd)
  load     -m N with N concurrent transfers and session N+1 refused; many
           sequential sessions with fds, memory and pinholes back where they
           started (vsftpd)

Prints `ok NAME` or `FAIL NAME: reason` per case, `#` lines documenting
each, then `N passed, N failed`; exits 1 if anything failed.
"""

import argparse
import os
import shutil
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import daemon as daemonmod  # noqa: E402
import env as envmod  # noqa: E402
import lab as labmod  # noqa: E402
import procs  # noqa: E402
import suite  # noqa: E402

GROUPS = ("hostile", "faults", "load")


def group_module(name):
    if name == "hostile":
        import hostile_cases as m
    elif name == "faults":
        import faults as m
    else:
        import load as m
    return m


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI size: fewer sessions, same cases")
    p.add_argument("--groups", default=",".join(GROUPS),
                   help="comma-separated groups (default: %(default)s)")
    p.add_argument("-k", action="append", default=[], metavar="TEXT",
                   help="only cases whose name contains TEXT (repeatable)")
    p.add_argument("--list", action="store_true", help="print the case names and exit")
    p.add_argument("--binary", default=daemonmod.default_binary(), help="ftp-proxy to test")
    p.add_argument("--logdir", help="where logs go (default: a new directory under /tmp)")
    p.add_argument("--max-seconds", type=int, default=1800,
                   help="abort the whole run after this long (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="failure details inline")
    return p.parse_args()


def selected(args):
    out = []
    for g in [g for g in args.groups.split(",") if g]:
        if g not in GROUPS:
            raise SystemExit("hostile.py: unknown group %r (%s)" % (g, ", ".join(GROUPS)))
        cases = group_module(g).cases(args.quick)
        if args.k:
            cases = [c for c in cases if any(k in c.name for k in args.k)]
        if cases:
            out.append((g, cases))
    return out


def run_group(env, name, cases, reporter):
    mod = group_module(name)
    env.group = name
    try:
        mod.setup(env)
    except Exception as e:
        for c in cases:
            reporter.report(c.name, "set-up failed: %s" % str(e).splitlines()[0],
                            details=[traceback.format_exc()])
        teardown(env, name, reporter, quiet=True)
        return
    try:
        suite.run_cases(env, cases, reporter, getattr(mod, "CHECKS", suite.common_checks))
    finally:
        teardown(env, name, reporter)


def teardown(env, name, reporter, quiet=False):
    env.stop_servers()
    problems = env.stop_daemons() if env.daemons else None
    env.stop_watches()
    if problems is not None and not quiet:
        reporter.report("%s/sigterm-exit-0-table-gone" % name, "; ".join(problems) or None)


def main():
    args = parse_args()
    groups = selected(args)
    if args.list:
        for g, cases in groups:
            for c in cases:
                print(c.name)
        return 0
    if not groups:
        print("hostile.py: no case matches", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("hostile.py: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    if not os.access(args.binary, os.X_OK):
        print("hostile.py: no daemon binary at %s (cargo build --release)" % args.binary,
              file=sys.stderr)
        return 2
    started = procs.start_run(args.max_seconds)
    logdir = procs.log_dir(args.logdir, "ftp-proxy-hostile-log-")
    workdir = procs.work_dir("ftp-proxy-hostile-")
    reporter = suite.Reporter(os.path.join(logdir, "details.log"), args.verbose)
    lab = labmod.Lab("proxy")
    env = envmod.Env(lab, args.binary, logdir, workdir, args.quick)
    print("# %s, %d cases, logs in %s" % ("quick" if args.quick else "full",
                                         sum(len(c) for _, c in groups), logdir), flush=True)
    try:
        lab.up()
        for name, cases in groups:
            t0 = time.monotonic()
            run_group(env, name, cases, reporter)
            env.figures["time/" + name] = "%.0f s" % (time.monotonic() - t0)
    except procs.Overtime:
        reporter.report("run/time-limit", "the run took more than %d s, stopped" % args.max_seconds)
    except Exception as e:
        reporter.report("lab/set-up", "%s: %s" % (type(e).__name__, e),
                        details=[traceback.format_exc()])
    finally:
        signal.alarm(0)
        try:
            env.stop_servers()
            env.stop_watches()
        except Exception:
            pass
        procs.stop_all()
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    for key, value in env.figures.items():
        print("# %s: %s" % (key, value))
    if reporter.failed:
        print("# failure details: %s" % os.path.join(logdir, "details.log"))
    print("# %.0f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (reporter.passed, reporter.failed))
    return 1 if reporter.failed else 0


if __name__ == "__main__":
    sys.exit(main())
