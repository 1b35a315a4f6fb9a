"""System calls a running process makes over a stretch of work, counted
exactly with strace -c.

strace attaches to the process (and, -f, its threads and children) by PID,
counts every system call while the work runs, and on SIGINT detaches and
writes its summary (calls and failed calls per system call). Attaching
slows each system call of the traced process but does not change which
calls it makes when the client waits for every reply before it sends the
next command, so the count per round trip is exact; the timings of the
same stretch are not used.
"""

import os
import select
import shutil
import signal
import subprocess
import time

ATTACH_TIMEOUT = 10


def available():
    return shutil.which("strace") is not None


def parse_summary(text):
    """{system call: (calls, errors)} from strace -c's table.

    The table's lines are `% time  seconds  usecs/call  calls  [errors]
    name`, errors blank when none; the header, the rules and the `total`
    line are skipped."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total" or not fields[0][0].isdigit():
            continue
        numbers = fields[:-1]
        try:
            calls = int(numbers[3])
            errors = int(numbers[4]) if len(numbers) > 4 else 0
            float(numbers[0])
        except ValueError:
            continue
        out[fields[-1]] = (calls, errors)
    return out


def per_unit(counts, units):
    """(total per unit, [(name, calls per unit, errors per unit)]) for units
    round trips, the most frequent system call first."""
    if units <= 0:
        raise ValueError("no round trips to divide by")
    total = sum(c for c, _ in counts.values()) / units
    rows = sorted(((n, c / units, e / units) for n, (c, e) in counts.items()),
                  key=lambda r: (-r[1], r[0]))
    return total, rows


def describe(rows):
    """'epoll_wait 2.00, recvfrom 4.00 (2.00 failed), sendto 2.00'."""
    return ", ".join("%s %.2f%s" % (n, c, " (%.2f failed)" % e if e else "")
                     for n, c, e in rows)


class Count:
    """strace attached to pids for the life of the object (a context
    manager), by default with -c: .counts holds the summary once it has
    left. Other options (a trace with timestamps) leave .counts None and
    the output in out_path."""

    def __init__(self, pids, out_path, options=("-c",), ns=None):
        self.ns = ns
        self.pids = list(pids)
        self.out_path = out_path
        self.options = list(options)
        self.proc = None
        self.counts = None

    def __enter__(self):
        argv = ["strace"] + self.options + ["-f", "-o", self.out_path]
        for pid in self.pids:
            argv += ["-p", str(pid)]
        if self.ns:
            # In the traced process's network namespace: -yy describes a
            # socket through sock_diag, which sees only its own namespace.
            argv = ["nsenter", "--net=/run/netns/" + self.ns, "--"] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        # strace says "Process N attached" for each PID on stderr; only then
        # is every call counted.
        # Raw reads of the pipe: a buffered readline() could take several
        # lines at once and leave select() waiting for bytes already read.
        fd = self.proc.stderr.fileno()
        want, err = len(self.pids), b""
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while err.count(b" attached") < want:
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0, left))[0] if left > 0 else []
            if not ready:
                self._end()
                raise RuntimeError("strace did not attach to %s within %d s: %s"
                                   % (self.pids, ATTACH_TIMEOUT, err.decode(errors="replace")))
            chunk = os.read(fd, 4096)
            if not chunk:
                self._end()
                raise RuntimeError("strace exited: %s" % err.decode(errors="replace"))
            err += chunk
        return self

    def __exit__(self, *exc):
        status = self._end()
        if exc[0] is None:
            # strace ends itself with the signal it was sent, after the summary.
            if status not in (0, -signal.SIGINT, 128 + signal.SIGINT):
                raise RuntimeError("strace exited %s" % status)
            if "-c" in self.options:
                with open(self.out_path) as f:
                    self.counts = parse_summary(f.read())
        return False

    def _end(self):
        """SIGINT (strace detaches and writes its summary), bounded wait."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc.stderr.close()
        status = self.proc.returncode
        self.proc = None
        return status
