"""The lab as pytest fixtures, and how a run reports.

Fixtures, from the widest scope down:

  session   binary, quick, logdir, workdir, figures; lab (the three
            namespaces, up for the whole run); netns (the netns suite's
            context: one FTP server and one set-up of daemons running at a
            time, kept for as long as consecutive cases want them)
  class     setup_daemons: the daemons of the class's SETUP (a name in
            context.SETUPS), started once for the class's cases
  module    env: a hostile, faults, load or fd-exhaustion module's own
            daemons and server (each module defines it with group_env
            below); test_ha.py's env is its own two-gateway lab
  function  ctx (a netns case's view, its failure notes), trial (a hostile,
            faults or load case's view)

Options (after pytest's own): --binary, --quick, --kind, --servers,
--logdir, --max-seconds. A failing case prints what it noted, the client's
output and the daemon's log tail under its traceback; a hostile, faults or
load case prints what it said (`#` lines) under its outcome line, passed or
failed. Nothing is only in the log directory: under CI that directory is
lost with the machine.
"""

import os
import shutil
import signal
import time

import pytest

from . import context
from . import daemon as daemonmod
from . import env as envmod
from . import lab as labmod
from . import procs
from . import servers
from .trial import Trial

FIGURES = {}      # name -> text, printed at the end of the run


def pytest_addoption(parser):
    g = parser.getgroup("ftplab", "the ftp-proxy lab")
    g.addoption("--binary", default=daemonmod.default_binary(),
                help="the ftp-proxy to test (default: the release build)")
    g.addoption("--quick", action="store_true",
                help="hostile, faults and load at the CI size: fewer sessions, same cases")
    g.addoption("--kind", choices=labmod.KINDS, default="proxy",
                help="gateway set-up for the netns suite (default: proxy, the daemon "
                     "under test; helper, direct: the transfer matrix through the kernel's "
                     "FTP helper or plain routing, for reference)")
    g.addoption("--servers", default=",".join(servers.ALL),
                help="comma-separated FTP servers for the netns suite (default: %(default)s; "
                     "unavailable ones are skipped)")
    g.addoption("--logdir", help="where logs go (default: a new directory under /tmp)")
    g.addoption("--max-seconds", type=int, default=1800,
                help="stop the whole run after this long (default: %(default)s)")


# -- selection and the run's limits --------------------------------------------

def _param(item, name, default=None):
    spec = getattr(item, "callspec", None)
    return spec.params.get(name, default) if spec else default


def pytest_collection_modifyitems(session, config, items):
    """--servers and --kind deselect cases; a run that is going to use the
    lab stops at once without root or without a daemon binary."""
    wanted = [s for s in config.getoption("servers").split(",") if s]
    kind = config.getoption("kind")
    keep, drop = [], []
    for item in items:
        server = _param(item, "server")
        proxy_only = not getattr(item.function, "any_kind", False)
        if (server is not None and server not in wanted) or (kind != "proxy" and proxy_only):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if config.option.collectonly or not items:
        return
    if os.geteuid() != 0:
        pytest.exit("needs root (network namespaces, nftables)", returncode=2)
    binary = config.getoption("binary")
    if kind == "proxy" and not os.access(binary, os.X_OK):
        pytest.exit("no daemon binary at %s (cargo build --release)" % binary, returncode=2)


def any_kind(fn):
    """Marks a netns case that also runs with --kind helper or direct."""
    fn.any_kind = True
    return fn


def _stop_run(signum, frame):
    what = "the run took more than %d s" % _stop_run.limit if signum == signal.SIGALRM \
        else "signal %d" % signum
    pytest.exit("%s, stopped" % what, returncode=1)


def pytest_sessionstart(session):
    """SIGALRM after --max-seconds, SIGTERM and SIGHUP end the run through
    pytest, so that every fixture's clean-up runs (namespaces deleted,
    processes stopped by PID)."""
    if session.config.option.collectonly:
        return
    _stop_run.limit = session.config.getoption("max_seconds")
    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_run)
    signal.alarm(_stop_run.limit)


def pytest_sessionfinish(session):
    signal.alarm(0)
    _say_all_skipped(session.config)


def _say_all_skipped(config):
    """A run in which every case was skipped (keepalived or vsftpd not
    installed) checked nothing, yet pytest exits 0: its skip reasons go to
    the file named by $REGRESS_SKIP_FILE, so that `make regress` reports
    the target as SKIP, not SUCCESS."""
    path = os.environ.get("REGRESS_SKIP_FILE")
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if not path or tr is None:
        return
    stats = tr.stats
    if any(stats.get(k) for k in ("passed", "failed", "error", "xfailed", "xpassed")):
        return
    reasons = []
    for rep in stats.get("skipped", []):
        lr = getattr(rep, "longrepr", None)
        why = lr[2] if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
        why = why.replace("Skipped: ", "", 1)
        if why not in reasons:
            reasons.append(why)
    if reasons:
        with open(path, "w") as f:
            f.write("; ".join(reasons) + "\n")


# -- reporting ------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A case's notes under its failure; a trial's `say` lines for its
    outcome line."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call":
        return
    ctx = item.funcargs.get("ctx")
    trial = item.funcargs.get("trial")
    details = []
    if ctx is not None:
        details = ctx.details + ctx.daemon_logs()
    if trial is not None:
        rep.doc_lines = trial.doc + trial.log_doc()
        details = trial.details
    if rep.failed and details:
        rep.sections.append(("details", "\n".join(details)))


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    lines = getattr(report, "doc_lines", None)
    if not lines:
        return
    tr = _reporter.get("tr")
    if tr is None:
        return
    for line in lines:
        tr.write_line("#   " + line.replace("\n", " ")[:300])


_reporter = {}


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    _reporter["tr"] = config.pluginmanager.get_plugin("terminalreporter")


def pytest_terminal_summary(terminalreporter):
    for key, value in FIGURES.items():
        terminalreporter.write_line("# %s: %s" % (key, value))
    if "logdir" in _reporter:
        terminalreporter.write_line("# logs in %s" % _reporter["logdir"])


# -- session fixtures -------------------------------------------------------------

@pytest.fixture(scope="session")
def binary(pytestconfig):
    return pytestconfig.getoption("binary")


@pytest.fixture(scope="session")
def quick(pytestconfig):
    return pytestconfig.getoption("quick")


@pytest.fixture(scope="session")
def figures():
    return FIGURES


@pytest.fixture(scope="session")
def logdir(pytestconfig):
    path = procs.log_dir(pytestconfig.getoption("logdir"), "ftp-proxy-regress-log-")
    _reporter["logdir"] = path
    return path


@pytest.fixture(scope="session")
def workdir():
    path = procs.work_dir("ftp-proxy-regress-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def lab(pytestconfig, workdir):
    """The three namespaces, up for the whole run; at the end every process
    still recorded is stopped by its PID and the namespaces are deleted.
    It takes workdir so that the work directory is deleted after that,
    once no server or daemon of the lab runs in it."""
    the_lab = labmod.Lab(pytestconfig.getoption("kind"))
    try:
        the_lab.up()
        yield the_lab
    finally:
        procs.stop_all()
        the_lab.down()


# -- the netns suite -----------------------------------------------------------------

@pytest.fixture(scope="session")
def netns(lab, workdir, logdir, binary):
    ctx = context.Context(lab, workdir, logdir, binary, os.urandom(context.FILE_SIZE))
    yield ctx
    ctx.stop_setup()
    ctx.stop_server()


@pytest.fixture(scope="class")
def setup_daemons(request, netns):
    """The daemons of the class's SETUP, for all its cases. The class's last
    case usually stops them and checks how they ended; if not, they are
    stopped here, and how they ended is still checked."""
    try:
        netns.start_setup(context.SETUPS[request.cls.SETUP])
    except BaseException:
        netns.stop_setup()
        raise
    yield netns
    problems = netns.stop_setup()
    assert not problems, "; ".join(problems)


def first_server(config):
    return [s for s in config.getoption("servers").split(",") if s][0]


@pytest.fixture
def ctx(request, setup_daemons):
    """A netns case's view: its server (the case's `server` parameter, or
    the first of --servers) running, its failure notes empty."""
    name = _param(request.node, "server") or first_server(request.config)
    if not servers.available(name):
        pytest.skip("server %s not available (run regress/linux/install-deps.sh netns)" % name)
    setup_daemons.use_server(name)
    setup_daemons.details = []
    return setup_daemons


# -- the hostile, faults and load suites ----------------------------------------------

def group_env(name, lab, binary, logdir, workdir, quick, setup):
    """A module's environment (a generator for a module-scoped fixture):
    setup(env) starts its daemons and server; at the end the servers, any
    daemon still running (SIGTERM: it must exit 0, its table gone) and the
    pinhole watches are stopped."""
    env = envmod.Env(lab, binary, logdir, workdir, quick)
    env.group = name
    env.figures = FIGURES
    started = time.monotonic()
    problems = []
    try:
        setup(env)
        yield env
    finally:
        env.stop_servers()
        if env.daemons:
            problems = env.stop_daemons()
        env.stop_watches()
        FIGURES["time/" + name] = "%.0f s" % (time.monotonic() - started)
    assert not problems, "; ".join(problems)


@pytest.fixture
def trial(request, env):
    """A case's Trial: a new one, or the one its module started early
    (env.waiting)."""
    t = getattr(env, "waiting", {}).pop(request.node.name, None) or Trial(env, request.node.name)
    yield t
    t.close()
