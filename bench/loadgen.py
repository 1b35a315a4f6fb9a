#!/usr/bin/env python3
"""The client side of the benchmark, run inside the client namespace.

One process per measurement, so the client's own start-up (Python, nsenter)
is never inside a timed interval: each subcommand times only the FTP work
and prints one JSON object on stdout.

  sessions    N small sessions one after another, bounded by --max-seconds
  concurrent  N small sessions started together (threads behind a barrier)
  noop        one session, then NOOP round trips in phases the harness starts
  hold        N logged-in sessions kept idle until stdin closes

A small session is what an interactive or scripted FTP user does most:
connect, anonymous login, LIST, RETR of a 1 KiB file, QUIT, with Python's
ftplib as it is (PASV/PORT on IPv4). Every socket operation has a timeout
and every loop a bound; the harness also runs this under timeout(1).
"""

import argparse
import ftplib
import json
import sys
import threading
import time

SOCKET_TIMEOUT = 30


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def login(host, port, passive, timeout=SOCKET_TIMEOUT):
    ftp = ftplib.FTP(timeout=timeout)
    ftp.connect(host, port)
    ftp.login("anonymous", "bench@example.org")
    ftp.set_pasv(passive)
    return ftp


def small_session(host, port, passive, small_file, timeout=SOCKET_TIMEOUT):
    """One small session; returns its duration in seconds. Raises on any
    FTP or socket error, and when the file did not arrive whole."""
    t0 = time.perf_counter()
    ftp = login(host, port, passive, timeout)
    try:
        listing = []
        ftp.retrlines("LIST", listing.append)
        got = bytearray()
        ftp.retrbinary("RETR " + small_file, got.extend)
        if len(got) != 1024:
            raise ftplib.Error("RETR %s: %d bytes instead of 1024" % (small_file, len(got)))
        ftp.quit()
    finally:
        ftp.close()
    return time.perf_counter() - t0


def cmd_sessions(a):
    """Sequential sessions: the rate an admin's scripts would see. Stops at
    --count sessions or --max-seconds, whichever comes first, so a slow relay
    is measured over the same time budget instead of holding the run."""
    durations, errors = [], []
    t0 = time.perf_counter()
    deadline = t0 + a.max_seconds
    while len(durations) + len(errors) < a.count and time.perf_counter() < deadline:
        try:
            durations.append(small_session(a.host, a.port, a.passive, a.file))
        except (OSError, ftplib.Error, EOFError) as e:
            errors.append(("%s: %s" % (type(e).__name__, e))[:200])
            if len(errors) >= 5:
                break
    elapsed = time.perf_counter() - t0
    emit({"done": len(durations), "errors": len(errors), "first_error": errors[:1],
          "elapsed": elapsed, "durations": durations})


def cmd_concurrent(a):
    """--count sessions started at once behind a barrier: wall time from the
    barrier to the last session's end, plus each session's own duration, so
    the harness can see the spread (a 1 s SYN retransmit after a full listen
    backlog shows up as a maximum near 1 s)."""
    n = a.count
    barrier = threading.Barrier(n + 1, timeout=60)
    durations = [None] * n
    errors = []
    lock = threading.Lock()

    def worker(i):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        try:
            durations[i] = small_session(a.host, a.port, a.passive, a.file, a.timeout)
        except (OSError, ftplib.Error, EOFError) as e:
            with lock:
                errors.append(("%s: %s" % (type(e).__name__, e))[:200])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    limit = t0 + a.max_seconds
    for t in threads:
        t.join(max(0.0, limit - time.perf_counter()))
    wall = time.perf_counter() - t0
    done = [d for d in durations if d is not None]
    unfinished = sum(1 for t in threads if t.is_alive())
    emit({"done": len(done), "errors": len(errors), "unfinished": unfinished,
          "first_error": errors[:1], "wall": wall,
          "min": min(done) if done else None, "max": max(done) if done else None,
          "over_1s": sum(1 for d in done if d >= 1.0)})


def cmd_noop(a):
    """One control-command round trip, repeated: the latency a proxy adds
    to every command a user waits for. Driven through stdin so that the
    harness can read the proxy's CPU time or count its system calls around
    the round trips alone: log in, a few warm-up round trips, print READY;
    then for each line "N" on stdin run N NOOPs and print their times; QUIT
    at end of input. Every phase is bounded by --max-seconds."""
    import select
    ftp = login(a.host, a.port, True)
    try:
        try:
            ftp.voidcmd("NOOP")
        except ftplib.error_perm as e:
            # proftpd's mod_proxy answers NOOP itself (530 after a proxied
            # login): no round trip to the server to measure.
            emit({"state": "READY", "refused": str(e)[:200]})
            return
        for _ in range(20):
            ftp.voidcmd("NOOP")
        emit({"state": "READY"})
        for _ in range(100):
            ready, _, _ = select.select([sys.stdin], [], [], a.max_seconds)
            line = sys.stdin.readline() if ready else ""
            if not line.strip():
                break
            count = min(int(line), 1000000)
            samples = []
            deadline = time.perf_counter() + a.max_seconds
            while len(samples) < count and time.perf_counter() < deadline:
                t0 = time.perf_counter_ns()
                ftp.voidcmd("NOOP")
                samples.append((time.perf_counter_ns() - t0) / 1000.0)
            emit({"samples_us": samples})
        ftp.quit()
    finally:
        ftp.close()


def cmd_hold(a):
    """Open --count logged-in sessions and keep them idle until stdin
    closes (or --max-seconds), so the harness can read the proxy's memory."""
    held, errors = [], []
    for _ in range(a.count):
        try:
            held.append(login(a.host, a.port, True))
        except (OSError, ftplib.Error, EOFError) as e:
            errors.append(("%s: %s" % (type(e).__name__, e))[:200])
            if len(errors) >= 5:
                break
    emit({"state": "READY", "held": len(held), "errors": len(errors), "first_error": errors[:1]})
    import select
    select.select([sys.stdin], [], [], a.max_seconds)
    for ftp in held:
        try:
            ftp.close()
        except OSError:
            pass
    emit({"state": "DONE"})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("sessions", "concurrent", "noop", "hold"))
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=21)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--active", dest="passive", action="store_false",
                   help="PORT instead of PASV for data connections")
    p.add_argument("--file", default="1k.bin")
    p.add_argument("--timeout", type=float, default=SOCKET_TIMEOUT,
                   help="socket timeout of the concurrent sessions: with a full "
                        "listen queue a connect waits out SYN retransmits "
                        "(1, 2, 4, 8, 16 s...), which is what is being measured")
    a = p.parse_args()
    {"sessions": cmd_sessions, "concurrent": cmd_concurrent, "noop": cmd_noop,
     "hold": cmd_hold}[a.action](a)


if __name__ == "__main__":
    main()
