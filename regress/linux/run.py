#!/usr/bin/env python3
"""Run the end-to-end cases: real FTP servers and clients, three network
namespaces, the ftp-proxy daemon on the gateway.

    python3 regress/linux/run.py                 every case (as root)
    python3 regress/linux/run.py -k option-T     only cases whose name contains option-T
    python3 regress/linux/run.py --list          the case names
    python3 regress/linux/run.py --kind helper   the same transfers through the kernel's
                                                 FTP conntrack helper instead (reference)

Prints one line per case, `ok NAME` or `FAIL NAME: reason`, then
`N passed, N failed`; exits 1 if anything failed. Details of failures
(client output, daemon log) go to the log directory printed at the end.
"""

import argparse
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases as casemod  # noqa: E402
import checks  # noqa: E402
import daemon as daemonmod  # noqa: E402
import lab as labmod  # noqa: E402
import procs  # noqa: E402
import servers  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", action="append", default=[], metavar="TEXT",
                   help="run only cases whose name contains TEXT (repeatable: any of them)")
    p.add_argument("--list", action="store_true", help="print the case names and exit")
    p.add_argument("--kind", choices=labmod.KINDS, default="proxy",
                   help="gateway set-up (default: proxy, the daemon under test)")
    p.add_argument("--servers", default=",".join(servers.ALL),
                   help="comma-separated FTP servers (default: %(default)s; "
                        "unavailable ones are reported and skipped)")
    p.add_argument("--binary", default=daemonmod.default_binary(), help="ftp-proxy to test")
    p.add_argument("--logdir", help="where logs go (default: a new directory under /tmp)")
    p.add_argument("--max-seconds", type=int, default=1200,
                   help="abort the whole run after this long (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="print failure details inline")
    return p.parse_args()


class Runner:
    def __init__(self, args, lab, workdir, logdir, data_sha):
        self.args = args
        self.lab = lab
        self.workdir = workdir
        self.logdir = logdir
        self.ctx = casemod.Context(lab, workdir, data_sha, logdir, args.binary)
        self.passed = self.failed = 0
        self.details = open(os.path.join(logdir, "details.log"), "w")

    def report(self, name, reason=None, details=()):
        if reason is None:
            self.passed += 1
            print("ok %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, reason.replace("\n", " ")[:400]), flush=True)
            self.details.write("==== %s\n%s\n" % (name, reason))
            for d in details:
                self.details.write(d + "\n")
            self.details.flush()
            if self.args.verbose:
                for d in details:
                    for line in d.splitlines()[-20:]:
                        print("#   " + line)

    # -- servers and daemons ----------------------------------------------

    def use_server(self, name, data):
        ctx = self.ctx
        if ctx.server is not None and ctx.server.name == name:
            return
        if ctx.server is not None:
            ctx.server.stop()
            ctx.server = None
        srv = servers.make(name, self.lab, tempfile.mkdtemp(dir=self.workdir, prefix=name), data)
        srv.start()
        ctx.server = srv

    def start_fixture(self, fixture):
        ctx = self.ctx
        ctx.fixture = fixture
        if self.lab.kind != "proxy":
            return
        self.lab.set_accept_mark(fixture.accept_mark)
        for family, port, options in fixture.daemons:
            d = daemonmod.Daemon(self.lab, family, port, options, self.args.binary, self.logdir,
                                 name="ftp-proxy-" + fixture.name)
            ctx.daemons[family] = d
            d.start()

    def stop_fixture(self):
        """SIGTERM each daemon: it must exit 0 and take its table with it.
        Reported as a case of its own."""
        ctx = self.ctx
        if not ctx.daemons:
            return
        problems = []
        for family, d in sorted(ctx.daemons.items()):
            status = d.stop()
            if status != 0:
                problems.append("ftp-proxy -%d exited %s after SIGTERM" % (family, status))
            if not checks.wait_table_gone(self.lab, *d.table):
                problems.append("table %s %s still there after the daemon exited" % d.table)
        name = "%s/sigterm-exit-0-table-gone" % ctx.fixture.name
        self.report(name, "; ".join(problems) or None,
                    [d.log_tail(30) for d in ctx.daemons.values()])
        ctx.daemons = {}

    # -- the loop ---------------------------------------------------------

    def run(self, selected, data):
        ctx = self.ctx
        groups = []
        for c in selected:
            key = (c.fixture, c.server)
            if not groups or groups[-1][0] != key:
                groups.append((key, []))
            groups[-1][1].append(c)
        current_fixture = None
        for (fixture_name, server_name), group in groups:
            try:
                if fixture_name != current_fixture:
                    self.stop_fixture()
                    current_fixture = fixture_name
                    self.start_fixture(casemod.FIXTURES[fixture_name])
                self.use_server(server_name, data)
            except Exception as e:
                for c in group:
                    self.report(c.name, "set-up failed: %s" % str(e).splitlines()[0], [str(e)])
                self.stop_fixture_quietly()
                current_fixture = None
                continue
            for c in group:
                self.run_case(c)
        self.stop_fixture()
        if ctx.server is not None:
            ctx.server.stop()

    def stop_fixture_quietly(self):
        for d in self.ctx.daemons.values():
            d.stop()
        self.ctx.daemons = {}

    def run_case(self, c):
        ctx = self.ctx
        ctx.details = []
        try:
            c.fn(ctx)
        except casemod.Fail as e:
            self.report(c.name, str(e), ctx.details + self.daemon_logs())
        except Exception as e:
            self.report(c.name, "%s: %s" % (type(e).__name__, e),
                        ctx.details + [traceback.format_exc()] + self.daemon_logs())
        else:
            self.report(c.name)

    def daemon_logs(self):
        return ["ftp-proxy %s log:\n%s" % (" ".join(d.options), d.log_tail(15))
                for d in self.ctx.daemons.values()]


def main():
    args = parse_args()
    if os.environ.get("CI") == "true":
        args.verbose = True   # the machine is gone afterwards: details inline
    wanted = [s for s in args.servers.split(",") if s]
    cases = casemod.all_cases(args.kind, wanted)
    if args.k:
        cases = [c for c in cases if any(k in c.name for k in args.k)]
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    if not cases:
        print("run.py: no case matches %s" % " ".join(args.k), file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("run.py: needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    started = procs.start_run(args.max_seconds)
    logdir = procs.log_dir(args.logdir, "ftp-proxy-regress-log-")
    workdir = procs.work_dir("ftp-proxy-regress-")
    data = os.urandom(casemod.FILE_SIZE)
    with open(os.path.join(workdir, "upload-src.bin"), "wb") as f:
        f.write(data)
    data_sha = hashlib.sha256(data).hexdigest()
    lab = labmod.Lab(args.kind)
    runner = Runner(args, lab, workdir, logdir, data_sha)
    try:
        lab.up()
        unavailable = [s for s in wanted if not servers.available(s)]
        for s in unavailable:
            print("# server %s not available (run regress/linux/install-deps.sh): "
                  "its cases are not run" % s)
        selected = [c for c in cases if c.server not in unavailable]
        print("# %d cases, gateway kind %s, logs in %s" % (len(selected), args.kind, logdir),
              flush=True)
        runner.run(selected, {casemod.FILE_NAME: data})
    except procs.Overtime:
        runner.report("run/time-limit", "the run took more than %d s, stopped" % args.max_seconds)
    except Exception as e:
        runner.report("lab/set-up", "%s: %s" % (type(e).__name__, e), [traceback.format_exc()])
    finally:
        signal.alarm(0)
        procs.stop_all()
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    if runner.failed:
        print("# failure details: %s" % os.path.join(logdir, "details.log"))
    print("# %.0f s" % elapsed)
    print("%d passed, %d failed" % (runner.passed, runner.failed))
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
