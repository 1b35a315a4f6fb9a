#!/usr/bin/env python3
"""A small FTP client, run inside the client namespace by the harness.

Subcommands (each prints one JSON object on stdout, last line):

  transfer   log in anonymously, download or upload one file with a chosen
             data command, report the bytes' sha256, the commands sent and, in
             active mode, the address the data connection came from.
             --flavour ftplib   Python's ftplib as it is (PASV/PORT on IPv4,
                                EPSV/EPRT on IPv6; ignores the 227 address)
             --flavour explicit exactly the data command given with --cmd
             --pause            after the data command's reply, print a line
                                "READY" and wait for a line on stdin
  login      connect, send USER/PASS with --user, report the replies
  hold       connect, log in, print "READY", keep the session open until
             stdin closes, then QUIT
  idle       connect, log in, print "READY", then say nothing; report what
             the server side sends and when the connection closes (bounded
             by --wait)
  greet      connect and report the first reply and whether the connection
             then closes (bounded by --wait)
  raw        connect, log in, send the line --line as it is (CRLF added),
             report what comes back until the close (bounded by --wait)
  reuse      log in, send --cmd (PASV or EPSV), open a data connection to the
             port told and close it, then try a second connection to the
             same port: report how each ended (connected, refused, timeout)

Every socket operation has a timeout; the harness also runs this under
timeout(1).
"""

import argparse
import ftplib
import hashlib
import io
import json
import re
import socket
import sys
import time


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Recorder(ftplib.FTP):
    """ftplib.FTP that records every command line it sends."""

    def __init__(self, *a, **kw):
        self.sent = []
        super().__init__(*a, **kw)

    def putcmd(self, line):
        self.sent.append(line.split(" ", 1)[0].upper())
        super().putcmd(line)


def parse_227(resp):
    m = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", resp)
    if not m:
        raise ftplib.error_proto(resp)
    n = [int(x) for x in m.groups()]
    return "%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]


class Explicit(Recorder):
    """Uses exactly one data command for every transfer, and, for active
    mode, records the peer address of the incoming data connection."""

    def __init__(self, cmd, pause, *a, **kw):
        self.cmd = cmd
        self.pause = pause
        self.data_peer = None
        self.negotiated = None
        super().__init__(*a, **kw)

    def _wait_for_go(self):
        if self.pause:
            emit({"state": "READY", "negotiated": self.negotiated})
            if not sys.stdin.readline():
                raise SystemExit("stdin closed while paused")

    def ntransfercmd(self, cmd, rest=None):
        peer = self.sock.getpeername()[0]
        if self.cmd in ("PASV", "EPSV"):
            if self.cmd == "PASV":
                resp = self.sendcmd("PASV")
                told_host, port = parse_227(resp)
                host = peer  # as ftplib and curl do: ignore the 227 address
            else:
                resp = self.sendcmd("EPSV")
                told_host, port = None, ftplib.parse229(resp, self.sock.getpeername())[1]
                host = peer
            self.negotiated = {"reply": resp, "told_host": told_host, "port": port}
            self._wait_for_go()
            conn = socket.create_connection((host, port), self.timeout,
                                            source_address=self.source_address)
            try:
                resp = self.sendcmd(cmd)
                if resp[0] == "2":
                    resp = self.getresp()
                if resp[0] != "1":
                    raise ftplib.error_reply(resp)
            except BaseException:
                conn.close()
                raise
            return conn, None
        # Active mode: listen on the control connection's local address.
        local = self.sock.getsockname()[0]
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((local, 0))
        listener.listen(1)
        listener.settimeout(self.timeout)
        port = listener.getsockname()[1]
        try:
            if self.cmd == "PORT":
                resp = self.sendport(local, port)
            else:
                resp = self.sendeprt(local, port)
            self.negotiated = {"reply": resp, "port": port}
            self._wait_for_go()
            resp = self.sendcmd(cmd)
            if resp[0] == "2":
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
            conn, sockaddr = listener.accept()
            conn.settimeout(self.timeout)
            self.data_peer = [sockaddr[0], sockaddr[1]]
        finally:
            listener.close()
        return conn, None


def do_transfer(args):
    family_host = args.host
    if args.flavour == "explicit":
        ftp = Explicit(args.cmd, args.pause, timeout=args.timeout)
    else:
        ftp = Recorder(timeout=args.timeout)
    ftp.connect(family_host, args.port)
    ftp.login(args.user, "regress@example.org")
    if args.flavour == "ftplib":
        ftp.set_pasv(args.passive)
    h = hashlib.sha256()
    nbytes = 0
    if args.direction == "get":
        with open(args.local, "wb") as out:
            def sink(block):
                nonlocal nbytes
                h.update(block)
                nbytes += len(block)
                out.write(block)
            ftp.retrbinary("RETR " + args.remote, sink, blocksize=1 << 16)
    else:
        with open(args.local, "rb") as src:
            data = src.read()
        h.update(data)
        nbytes = len(data)
        ftp.storbinary("STOR " + args.remote, io.BytesIO(data), blocksize=1 << 16)
    ftp.quit()
    emit({"sha256": h.hexdigest(), "bytes": nbytes, "sent": ftp.sent,
          "data_peer": getattr(ftp, "data_peer", None),
          "negotiated": getattr(ftp, "negotiated", None)})


def read_lines_until_close(sock, wait):
    """Collect what the peer sends until it closes or wait seconds pass."""
    start = time.monotonic()
    data = b""
    closed = False
    while time.monotonic() - start < wait:
        sock.settimeout(max(0.05, wait - (time.monotonic() - start)))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    return data.decode("utf-8", "replace").splitlines(), closed, time.monotonic() - start


def do_login(args):
    ftp = Recorder(timeout=args.timeout)
    greeting = ftp.connect(args.host, args.port)
    replies = [greeting]
    try:
        replies.append(ftp.sendcmd("USER " + args.user))
        if replies[-1].startswith("3"):
            replies.append(ftp.sendcmd("PASS regress@example.org"))
    except ftplib.Error as e:
        replies.append(str(e))
    try:
        ftp.quit()
    except (ftplib.Error, OSError):
        pass
    emit({"replies": replies})


def do_hold(args):
    ftp = Recorder(timeout=args.timeout)
    ftp.connect(args.host, args.port)
    ftp.login(args.user, "regress@example.org")
    emit({"state": "READY"})
    sys.stdin.readline()
    resp = ftp.sendcmd("NOOP")
    ftp.quit()
    emit({"noop": resp})


def do_idle(args):
    ftp = Recorder(timeout=args.timeout)
    ftp.connect(args.host, args.port)
    ftp.login(args.user, "regress@example.org")
    emit({"state": "READY"})
    lines, closed, elapsed = read_lines_until_close(ftp.sock, args.wait)
    emit({"lines": lines, "closed": closed, "elapsed": elapsed})


def do_greet(args):
    sock = socket.create_connection((args.host, args.port), args.timeout)
    lines, closed, elapsed = read_lines_until_close(sock, args.wait)
    emit({"lines": lines, "closed": closed, "elapsed": elapsed})


def do_raw(args):
    ftp = Recorder(timeout=args.timeout)
    ftp.connect(args.host, args.port)
    ftp.login(args.user, "regress@example.org")
    ftp.sock.sendall(args.line.encode() + b"\r\n")
    lines, closed, elapsed = read_lines_until_close(ftp.sock, args.wait)
    emit({"lines": lines, "closed": closed, "elapsed": elapsed})


def try_connect(host, port, timeout):
    try:
        socket.create_connection((host, port), timeout).close()
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error: %s" % e


def do_reuse(args):
    ftp = Recorder(timeout=args.timeout)
    ftp.connect(args.host, args.port)
    ftp.login(args.user, "regress@example.org")
    peer = ftp.sock.getpeername()
    resp = ftp.sendcmd(args.cmd)
    if args.cmd == "PASV":
        port = parse_227(resp)[1]
    else:
        port = ftplib.parse229(resp, peer)[1]
    first = try_connect(peer[0], port, args.timeout)
    second = try_connect(peer[0], port, args.wait)
    try:
        ftp.quit()
    except (ftplib.Error, OSError):
        pass
    emit({"reply": resp, "first": first, "second": second})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["transfer", "login", "hold", "idle", "greet", "raw", "reuse"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=21)
    p.add_argument("--user", default="anonymous")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--wait", type=float, default=20)
    p.add_argument("--flavour", choices=["ftplib", "explicit"], default="explicit")
    p.add_argument("--cmd", choices=["PORT", "EPRT", "PASV", "EPSV"])
    p.add_argument("--passive", action="store_true")
    p.add_argument("--pause", action="store_true")
    p.add_argument("--direction", choices=["get", "put"])
    p.add_argument("--remote")
    p.add_argument("--local")
    p.add_argument("--line")
    args = p.parse_args()
    try:
        {"transfer": do_transfer, "login": do_login, "hold": do_hold,
         "idle": do_idle, "greet": do_greet, "raw": do_raw, "reuse": do_reuse}[args.action](args)
    except (ftplib.Error, OSError, EOFError) as e:
        emit({"error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(1)


if __name__ == "__main__":
    main()
