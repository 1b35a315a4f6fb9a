"""Real FTP clients, run in the client namespace, bounded in time.

Each client is told which data command to use and reports which data
commands it really sent (from its own verbose output), so a case can check
that it exercised the mode it claims to.

  lftp      trusts the address in a 227 reply
  curl      ignores the address in a 227 reply (--ftp-skip-pasv-ip default)
  ftplib    Python's ftplib as it is: PASV/PORT on IPv4, EPSV/EPRT on IPv6,
            ignores the 227 address
  explicit  ftpc.py forcing exactly one of PORT/EPRT/PASV/EPSV
"""

import json
import os
import re
import select
import subprocess
import sys
import time

from . import lab as labmod
from . import procs

HERE = os.path.dirname(os.path.abspath(__file__))
FTPC = os.path.join(HERE, "ftpc.py")
DATA_COMMANDS = ("PORT", "EPRT", "PASV", "EPSV")
ALL = ("lftp", "curl", "ftplib", "explicit")
CLIENT_TIMEOUT = 60


def modes(client, family):
    """The data commands client can be made to use in family."""
    if family == 6:
        return ("EPRT", "EPSV")
    if client == "ftplib":
        return ("PORT", "PASV")
    if client == "lftp":
        return ("PORT", "PASV", "EPSV")
    return DATA_COMMANDS


class Result:
    def __init__(self, ok, sent=(), error="", data_peer=None, negotiated=None, output=""):
        self.ok = ok
        self.sent = [c for c in sent if c in DATA_COMMANDS]
        self.error = error
        self.data_peer = data_peer
        self.negotiated = negotiated
        self.output = output


def python():
    return sys.executable or "python3"


def ftpc_argv(action, host, port=21, **opts):
    argv = ["timeout", str(CLIENT_TIMEOUT + 5), python(), FTPC, action, "--host", host,
            "--port", str(port)]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (None, False):
            argv += [flag, str(value)]
    return argv


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def transfer(lab, client, family, cmd, direction, remote, local, target=None, timeout=20):
    """Download remote into local, or upload local as remote, with client
    using data command cmd. target: (host, port) to connect to, by default
    the server's address, port 21."""
    host, port = target or lab.ftp_target(family)
    fn = {"lftp": _lftp, "curl": _curl, "ftplib": _ftpc, "explicit": _ftpc}[client]
    if client in ("ftplib", "explicit"):
        return _ftpc(lab, client, host, port, cmd, direction, remote, local, timeout)
    return fn(lab, client, host, port, cmd, direction, remote, local)


def _ftpc(lab, client, host, port, cmd, direction, remote, local, timeout=20):
    if client == "ftplib":
        opts = {"flavour": "ftplib", "passive": cmd in ("PASV", "EPSV")}
    else:
        opts = {"flavour": "explicit", "cmd": cmd}
    argv = ftpc_argv("transfer", host, port, direction=direction, remote=remote,
                     local=local, timeout=timeout, **opts)
    cp = procs.run(argv, ns=lab.client, timeout=CLIENT_TIMEOUT + 10, check=False)
    out = last_json(cp.stdout)
    return Result(cp.returncode == 0 and "error" not in out, out.get("sent", []),
                  out.get("error", cp.stderr.strip()[-300:]), out.get("data_peer"),
                  out.get("negotiated"), cp.stdout + cp.stderr)


def _lftp(lab, client, host, port, cmd, direction, remote, local):
    passive = cmd in ("PASV", "EPSV")
    debug = "%s.%s.%s.lftp-debug" % (local, direction, cmd)
    if os.path.exists(debug):
        os.unlink(debug)
    script = [
        "set cmd:fail-exit yes",
        "set net:timeout 10",
        "set net:max-retries 1",
        "set net:reconnect-interval-base 1",
        "set net:persist-retries 0",
        "set ftp:ssl-allow no",
        "set xfer:clobber on",
        "set ftp:passive-mode %s" % ("on" if passive else "off"),
        "set ftp:prefer-epsv %s" % ("yes" if cmd == "EPSV" else "no"),
        "debug -o %s 5" % debug,
        "open -u anonymous,regress@example.org -p %d ftp://%s" % (port, labmod.url_host(host)),
    ]
    if direction == "get":
        script.append("get %s -o %s" % (remote, local))
    else:
        script.append("put %s -o %s" % (local, remote))
    script.append("quit")
    argv = ["timeout", str(CLIENT_TIMEOUT), "lftp", "-c", "; ".join(script)]
    cp = procs.run(argv, ns=lab.client, timeout=CLIENT_TIMEOUT + 10, check=False)
    log = _read(debug)
    sent = re.findall(r"^---> (\w+)", log, re.M)
    return Result(cp.returncode == 0, sent, (cp.stderr or cp.stdout).strip()[-300:],
                  output=cp.stdout + cp.stderr + log[-3000:])


def _curl(lab, client, host, port, cmd, direction, remote, local):
    url = "ftp://%s:%d/%s" % (labmod.url_host(host), port, remote)
    argv = ["timeout", str(CLIENT_TIMEOUT), "curl", "-sS", "-v", "--max-time", str(CLIENT_TIMEOUT - 5),
            "--connect-timeout", "10", "--user", "anonymous:regress@example.org"]
    if cmd in ("PASV", "EPSV"):
        argv.append("--ftp-pasv")
        if cmd == "PASV":
            argv.append("--disable-epsv")
    else:
        argv += ["--ftp-port", "-"]
        if cmd == "PORT":
            argv.append("--disable-eprt")
    if direction == "get":
        argv += ["-o", local, url]
    else:
        argv += ["-T", local, url]
    cp = procs.run(argv, ns=lab.client, timeout=CLIENT_TIMEOUT + 10, check=False)
    sent = re.findall(r"^> (\w+)", cp.stderr, re.M)
    errors = [l for l in cp.stderr.splitlines() if l.startswith("curl:")]
    return Result(cp.returncode == 0, sent, " ".join(errors) or "exit %d" % cp.returncode,
                  output=cp.stderr[-3000:])


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Interactive:
    """ftpc.py running in the client namespace with a pipe to talk to it:
    used for a client that pauses (pinhole inspection) or holds a session."""

    def __init__(self, lab, action, host, port, **opts):
        self.proc = procs.Background("ftpc-" + action, ftpc_argv(action, host, port, **opts),
                                     ns=lab.client, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.popen = self.proc.popen

    def read_json(self, timeout):
        """The next JSON line from the client, waiting at most timeout seconds."""
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.popen.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                line, _, rest = buf.partition(b"\n")
                self._rest = rest
                return json.loads(line)
        raise TimeoutError("no answer from the client within %ss (got %r)" % (timeout, buf))

    def say(self, line="go"):
        self.popen.stdin.write((line + "\n").encode())
        self.popen.stdin.flush()

    def finish(self, timeout=30):
        """Close stdin (communicate does), read the final JSON, wait for the exit."""
        rest = getattr(self, "_rest", b"")
        try:
            out, _ = self.popen.communicate(timeout=timeout)
        except Exception:
            self.proc.stop()
            raise
        result = last_json((rest + (out or b"")).decode("utf-8", "replace"))
        self.proc.stop()
        return result

    def kill(self):
        self.proc.stop()


def ftpc(lab, action, host, port, **opts):
    """Run one non-interactive ftpc.py action; return its JSON result."""
    cp = procs.run(ftpc_argv(action, host, port, **opts), ns=lab.client,
                   timeout=CLIENT_TIMEOUT + 10, check=False)
    out = last_json(cp.stdout)
    if not out:
        out = {"error": "no result: exit %d: %s" % (cp.returncode, cp.stderr.strip()[-300:])}
    return out
