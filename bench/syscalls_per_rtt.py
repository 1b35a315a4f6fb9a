#!/usr/bin/env python3
"""System calls the daemon makes per control round trip.

    python3 bench/syscalls_per_rtt.py [--binary PATH] [--count N] [--sessions N]

Runs in a private network namespace (it re-runs itself under
`unshare --net`, so it needs root, strace and nftables): a one-thread
scripted FTP server on 127.0.0.1, the daemon in reverse mode in front of it
(-R), and ftplib as the client. After the login, `strace -c` is attached to
the daemon, the client sends N NOOPs one after the other (each waits for
its reply), and strace is detached. The count is the daemon's system calls
during those N round trips, divided by N; it depends on the code, not on
the machine's speed or load. Prints one line per system call and the total:

    syscalls per round trip: 6.00

With --sessions N it counts instead N whole sessions one after the other
(connect, greeting, USER, PASS, QUIT, close), per session.
"""

import argparse
import ftplib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_PORT = 2100
PROXY_PORT = 8021
WAIT = 10


def scripted_server(listener):
    """Greets, answers USER/PASS/NOOP/QUIT; one session at a time."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(60)
            conn.sendall(b"220 ready\r\n")
            buf = b""
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    verb = line.split(b" ", 1)[0].strip().upper()
                    reply = {b"USER": b"331 pass\r\n", b"PASS": b"230 in\r\n",
                             b"QUIT": b"221 bye\r\n"}.get(verb, b"200 ok\r\n")
                    conn.sendall(reply)


def wait_until(predicate, what):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(what)


def connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def parse_summary(text):
    """strace -c's table: {syscall: (calls, errors)}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not re.match(r"^[0-9.]+$", fields[0]):
            continue
        name = fields[-1]
        if name == "total":
            continue
        calls = int(fields[3])
        errors = int(fields[4]) if len(fields) == 6 else 0
        counts[name] = (calls, errors)
    return counts


def traced(pid, work):
    """Runs work() with strace -c attached to pid; returns its table."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        strace = subprocess.Popen(["strace", "-c", "-f", "-o", out.name, "-p", str(pid)],
                                  stderr=subprocess.PIPE)
        try:
            # strace says "Process N attached" once it traces.
            line = strace.stderr.readline().decode()
            if "attached" not in line:
                raise RuntimeError("strace: %s" % line.strip())
            work()
            strace.send_signal(signal.SIGINT)
            strace.wait(WAIT)
        finally:
            if strace.poll() is None:
                strace.kill()
        return parse_summary(out.read())


def session():
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", PROXY_PORT, timeout=WAIT)
    ftp.login("anonymous", "bench@example.org")
    ftp.quit()


def measure(binary, count, sessions):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    listener = socket.create_server(("127.0.0.1", SERVER_PORT))
    threading.Thread(target=scripted_server, args=(listener,), daemon=True).start()
    daemon = subprocess.Popen(
        [binary, "-d", "-b", "127.0.0.1", "-p", str(PROXY_PORT),
         "-R", "127.0.0.1", "-P", str(SERVER_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: connectable(PROXY_PORT) or daemon.poll() is not None,
                   "daemon listening")
        if daemon.poll() is not None:
            raise RuntimeError("daemon exited with %s" % daemon.returncode)
        if sessions:
            session()

            def work():
                for _ in range(sessions):
                    session()
            counts = traced(daemon.pid, work)
        else:
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", PROXY_PORT, timeout=WAIT)
            ftp.login("anonymous", "bench@example.org")
            ftp.voidcmd("NOOP")
            counts = traced(daemon.pid, lambda: [ftp.voidcmd("NOOP") for _ in range(count)])
            ftp.quit()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(WAIT)
        except subprocess.TimeoutExpired:
            daemon.kill()
        listener.close()
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(REPO, "target", "release", "ftp-proxy"))
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--sessions", type=int, default=0)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not args.inside:
        argv = ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__),
                "--inside", "--binary", os.path.abspath(args.binary),
                "--count", str(args.count), "--sessions", str(args.sessions)]
        sys.exit(subprocess.run(argv).returncode)
    counts = measure(args.binary, args.count, args.sessions)
    total = sum(calls for calls, _ in counts.values())
    if args.sessions:
        n, what = args.sessions, "session"
        print("%d sessions (USER, PASS, QUIT; ftplib), daemon %s" % (n, args.binary))
    else:
        n, what = args.count, "round trip"
        print("%d round trips (NOOP, ftplib), daemon %s" % (n, args.binary))
    for name, (calls, errors) in sorted(counts.items(), key=lambda kv: -kv[1][0]):
        print("  %-14s %6.2f%s" % (name, calls / n,
                                   "  (%.2f failed)" % (errors / n) if errors else ""))
    print("syscalls per %s: %.2f" % (what, total / n))


if __name__ == "__main__":
    main()
