"""A scripted, lying FTP server in the server namespace, on port 21.

The daemon connects to the original destination (the server's address,
port 21) right after it accepts a client, so connections arrive here in the
order the harness opens its clients. Each case queues the script its
session should get (expect()), opens its client and waits until the server
has accepted; the next connection then gets the next script.

A script is a function of one ServerConn. It may say anything: lies, half
lines, silence. Everything the daemon sent to the server is recorded, so a
case can check what the proxy forwarded (or did not).
"""

import collections
import re
import socket
import threading
import time

from . import lab as labmod
from . import nsnet

BANNER = b"220 hostile regress server\r\n"


class ServerConn:
    """One control connection from the daemon, as the script sees it."""

    def __init__(self, sock, peer, ns):
        self.sock = sock
        self.peer = peer
        self.ns = ns
        self.received = b""
        self._buf = b""
        self.eof = False
        self.data_listeners = []

    # -- raw ------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def line(self, timeout=10):
        """The next line from the daemon (bytes, LF included), or None on
        EOF, reset or timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError):
                return None
            if not chunk:
                self.eof = True
                return None
            self.received += chunk
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def wait_eof(self, timeout=10):
        """Read until the daemon closes; True if it did within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
            self.received += chunk
            self._buf += chunk
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for s in self.data_listeners:
            s.close()

    def reset(self):
        """Close with a RST (SO_LINGER 0)."""
        import struct
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    # -- an ordinary server, for the parts of a script that are not lies --
    def greet_and_login(self, banner=BANNER):
        """Banner, then USER -> 331, PASS -> 230. False if the daemon
        closed first."""
        self.send(banner)
        for reply in (b"331 Password please.\r\n", b"230 Logged in.\r\n"):
            if self.line() is None:
                return False
            self.send(reply)
        return True

    def listen_data(self, family=4):
        """A passive-mode listener on the server's own address; its port."""
        s = nsnet.listen(self.ns, labmod.addr(family, "server"), 0)
        self.data_listeners.append(s)
        return s, s.getsockname()[1]

    def serve(self, timeout=20, on=None):
        """Answer like a plain server until QUIT or EOF: NOOP 200, PORT/EPRT
        200 (remembered), LIST/RETR send DATA_TEXT over the last PORT/EPRT
        or passive listener, QUIT 221 and close. `on` maps an upper-case
        verb to a function (conn, line) -> True if it handled the line."""
        deadline = time.monotonic() + timeout
        active = None
        while time.monotonic() < deadline:
            line = self.line(max(0.1, deadline - time.monotonic()))
            if line is None:
                return
            verb = line.split(b" ", 1)[0].strip().upper().decode("latin-1")
            if on and verb in on and on[verb](self, line):
                continue
            if verb == "QUIT":
                self.send(b"221 Goodbye.\r\n")
                return
            if verb in ("PORT", "EPRT"):
                active = parse_active(line)
                self.send(b"200 %s command successful.\r\n" % verb.encode())
            elif verb in ("LIST", "RETR") and (active or self.data_listeners):
                self.send(b"150 Here it comes.\r\n")
                if active:
                    send_data_to(self.ns, active, DATA_TEXT)
                else:
                    lst = self.data_listeners[-1]
                    lst.settimeout(10)
                    try:
                        c, _ = lst.accept()
                        c.sendall(DATA_TEXT)
                        c.close()
                    except socket.timeout:
                        self.send(b"425 No data connection.\r\n")
                        continue
                self.send(b"226 Done.\r\n")
            elif verb == "NOOP":
                self.send(b"200 NOOP ok.\r\n")
            elif verb:
                self.send(b"500 Unknown command.\r\n")


DATA_TEXT = b"hostile-regress data connection payload\n" * 8


def parse_active(line):
    """(host, port) from a PORT a,b,c,d,h,l or EPRT |f|addr|port| line."""
    text = line.decode("latin-1").strip()
    m = re.match(r"PORT (\d+),(\d+),(\d+),(\d+),(\d+),(\d+)$", text, re.I)
    if m:
        n = [int(x) for x in m.groups()]
        return "%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5]
    m = re.match(r"EPRT \|([12])\|([^|]+)\|(\d+)\|$", text, re.I)
    if m:
        return m.group(2), int(m.group(3))
    return None


def send_data_to(ns, where, data, timeout=10):
    """An active-mode data connection from the server namespace."""
    c = nsnet.connect(ns, where[0], where[1], timeout)
    try:
        c.sendall(data)
    finally:
        c.close()


class Session:
    """What the harness holds for one queued script."""

    def __init__(self, script, name):
        self.script = script
        self.name = name
        self.accepted = threading.Event()
        self.done = threading.Event()
        self.conn = None
        self.error = None

    def wait_accepted(self, timeout=10):
        if not self.accepted.wait(timeout):
            raise TimeoutError("the daemon did not connect to the server within %ss" % timeout)
        return self.conn

    def wait_done(self, timeout=20):
        if not self.done.wait(timeout):
            raise TimeoutError("server script %s still running after %ss" % (self.name, timeout))
        if self.error:
            raise self.error
        return self.conn

    @property
    def received(self):
        return self.conn.received if self.conn else b""


class EvilServer:
    """Listens on port 21 (IPv4 and IPv6) in the server namespace."""

    def __init__(self, lab):
        self.lab = lab
        self.ns = lab.server
        self.queue = collections.deque()
        self.unexpected = []
        self._lock = threading.Lock()
        self._stopped = False
        self.sock = nsnet.call_in(self.ns, self._listener)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="evil-accept")
        self._thread.start()

    @staticmethod
    def _listener():
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 21))
        s.listen(64)
        return s

    def expect(self, script, name=""):
        """Queue script for the next connection; returns its Session."""
        session = Session(script, name or getattr(script, "__name__", "script"))
        with self._lock:
            self.queue.append(session)
        return session

    def _accept_loop(self):
        self.sock.settimeout(0.2)
        while not self._stopped:
            try:
                sock, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                session = self.queue.popleft() if self.queue else None
            if session is None:
                self.unexpected.append(peer)
                sock.close()
                continue
            session.conn = ServerConn(sock, peer, self.ns)
            session.accepted.set()
            nsnet.spawn(self.ns, self._run, session, name="evil-" + session.name)

    @staticmethod
    def _run(session):
        try:
            session.script(session.conn)
        except Exception as e:
            session.error = e
        finally:
            session.conn.close()
            session.done.set()

    def stop(self):
        self._stopped = True
        self._thread.join(2)
        self.sock.close()
