"""CPU time and memory of a proxy, including every process it forks.

The userspace relays fork one process per session, and those processes end
with the session, so reading /proc/<pid>/stat of the parent before and after
a transfer would miss nearly all of their work. Each proxy is therefore put
into a cgroup of its own right after it starts; its children inherit it, and
the cgroup's counter keeps the time of processes that have already exited.
The counter is in nanoseconds (cgroup v1 cpuacct.usage) or microseconds
(cgroup v2 cpu.stat usage_usec), far finer than the 10 ms ticks of
/proc/<pid>/stat, which matters for a target of 0.02 s.

When no cgroup can be made, the fall-back is the sum of
/proc/<pid>/task/*/schedstat (nanoseconds, live threads of the one process
only) and the figures say so.
"""

import os
import time

CGROUP_V1 = "/sys/fs/cgroup/cpuacct"
CGROUP_V2_CANDIDATES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")


class Account:
    """One proxy's CPU and memory. kind: 'cgroup-v1', 'cgroup-v2' or 'process'."""

    def __init__(self, name, pid):
        self.pid = pid
        self.path = None
        self.kind = "process"
        leaf = "ftp-proxy-bench-%d-%s" % (os.getpid(), name)
        for base, kind in [(CGROUP_V1, "cgroup-v1")] + \
                [(b, "cgroup-v2") for b in CGROUP_V2_CANDIDATES]:
            if kind == "cgroup-v1" and not os.path.exists(os.path.join(base, "cpuacct.usage")):
                continue
            if kind == "cgroup-v2" and not os.path.exists(os.path.join(base, "cgroup.procs")):
                continue
            path = os.path.join(base, leaf)
            try:
                os.mkdir(path)
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                _rmdir(path)
                continue
            if kind == "cgroup-v2" and not os.path.exists(os.path.join(path, "cpu.stat")):
                _rmdir(path)
                continue
            self.path, self.kind = path, kind
            _made.append(path)
            break

    def cpu_seconds(self):
        """CPU time (user + system) used so far by the proxy and its children."""
        if self.kind == "cgroup-v1":
            with open(os.path.join(self.path, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        if self.kind == "cgroup-v2":
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    key, value = line.split()
                    if key == "usage_usec":
                        return int(value) / 1e6
        total = 0
        task_dir = "/proc/%d/task" % self.pid
        for tid in os.listdir(task_dir):
            try:
                with open(os.path.join(task_dir, tid, "schedstat")) as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total / 1e9

    def pids(self):
        """Every live process of the proxy."""
        if self.path is None:
            return [self.pid]
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]

    def close(self):
        if self.path:
            _rmdir(self.path)
            if self.path in _made:
                _made.remove(self.path)
            self.path = None


def vm_rss_kib(pid):
    """VmRSS of one process, KiB: what `ps` and the target talk about."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    """Proportional set size of one process, KiB: shared pages divided among
    the processes sharing them, so a sum over forked processes is fair."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


_made = []


def _rmdir(path):
    """A cgroup can only be removed once its processes are gone: retry a
    little (bounded) while they exit."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.1)
    return False


def cleanup():
    """Remove every cgroup still recorded (at exit)."""
    for path in list(_made):
        _rmdir(path)
        _made.remove(path)
