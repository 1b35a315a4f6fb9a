"""What /proc says about a process: open descriptors, memory, children."""

import os


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def status_kib(pid, field):
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def peak_rss_kib(pid):
    return status_kib(pid, "VmHWM")


def reset_peak_rss(pid):
    """Start VmHWM again from the current RSS (Linux 4.0+: write 5 to
    clear_refs)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def descendants(pid):
    """PIDs of every descendant of pid, children first."""
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(name)] = int(fields[1])
    out = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out
