"""The daemon's -d -D 7 log, read back per session for the run's output.

Cases never assert on log text; they print the lines a session logged at
NOTICE and above (and its start and end) so the output documents what the
daemon said about each attack.
"""

import re

ACCEPTED = re.compile(r"^#(\d+) accepted connection from ")
# Protocol echo lines: useful in a file, too much for the run's output.
NOISE = re.compile(r"^#\d+ (client|server|proxy|rules): |^#\d+ accepted connection")


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


def latest_session(path):
    """The id of the most recently accepted session, or None."""
    for line in reversed(read_lines(path)):
        m = ACCEPTED.match(line)
        if m:
            return int(m.group(1))
    return None


def session_lines(path, sid, everything=False):
    """The lines of session sid (without the protocol echo unless
    everything)."""
    prefix = "#%d " % sid
    return [l for l in read_lines(path)
            if l.startswith(prefix) and (everything or not NOISE.match(l))]


def lines_since(path, count):
    """Lines after the first count lines, and the new count."""
    lines = read_lines(path)
    return lines[count:], len(lines)


PROBLEM = re.compile(r"failed|error|EMFILE|limit", re.I)


def problems(path, limit=3):
    """The first lines that report a failure (for a failure's reason)."""
    return [l for l in read_lines(path) if PROBLEM.search(l) and not NOISE.match(l)][:limit]
