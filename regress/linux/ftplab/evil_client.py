"""A hostile FTP client in the client namespace: raw bytes, any timing.

A Client connects to the server's address, port 21 (the gateway redirects it
to the daemon) and keeps a reader thread that records every byte the proxy
sends, with its arrival time, and the moment the connection closed. Cases
then write whatever they like and wait, bounded, for a state: a reply
line, a number of lines, the close.
"""

import socket
import struct
import threading
import time

from . import lab as labmod
from . import nsnet


class Client:
    def __init__(self, lab, family=4, target=None, timeout=10):
        self.lab = lab
        self.family = family
        host, port = target or lab.ftp_target(family)
        self.started = time.monotonic()
        self.sock = nsnet.connect(lab.client, host, port, timeout)
        self.sock.settimeout(None)     # the reader blocks; close() wakes it
        self.data = b""
        self.chunks = []           # [(seconds since connect, bytes)]
        self.closed_at = None      # seconds since connect, when EOF/RST came
        self.reset = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True, name="evil-client")
        self._reader.start()

    def _read(self):
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk, self.reset = b"", True
            except OSError:
                chunk = b""
            with self._cond:
                if chunk:
                    self.data += chunk
                    self.chunks.append((time.monotonic() - self.started, chunk))
                else:
                    self.closed_at = time.monotonic() - self.started
                self._cond.notify_all()
            if not chunk:
                return

    # -- waiting ----------------------------------------------------------
    def wait(self, predicate, timeout, what="condition"):
        """Wait until predicate(self) holds; False after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def lines(self):
        return self.data.split(b"\n")[:-1] if self.data else []

    def line_count(self):
        return self.data.count(b"\n")

    def wait_lines(self, n, timeout=10):
        """Wait for n complete lines in total; True if they came."""
        return self.wait(lambda c: c.line_count() >= n or c.closed_at is not None, timeout) \
            and self.line_count() >= n

    def wait_closed(self, timeout=10):
        return self.wait(lambda c: c.closed_at is not None, timeout)

    @property
    def closed(self):
        return self.closed_at is not None

    # -- sending ----------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def command(self, line, timeout=10):
        """Send line (CRLF added) and return the next complete line that
        arrives after it, or None."""
        n = self.line_count()
        self.send(line + b"\r\n")
        if not self.wait_lines(n + 1, timeout):
            return None
        return self.lines()[n] + b"\n"

    def login(self, timeout=10):
        """Wait for the banner, send USER/PASS; True when 230 came."""
        if not self.wait_lines(1, timeout):
            return False
        self.command(b"USER anonymous", timeout)
        reply = self.command(b"PASS regress@example.org", timeout)
        return bool(reply and reply.startswith(b"230"))

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def rst(self):
        """Close with a RST (SO_LINGER 0). The reader is woken first
        (SHUT_RD sends nothing): a socket closed under a blocked recv is
        only really closed when that recv returns."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self._reader.join(2)
        self.sock.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self._reader.join(2)

    # -- data connections --------------------------------------------------
    def listen_data(self):
        """A listener on the client's own address for active mode: (sock, port)."""
        s = nsnet.listen(self.lab.client, labmod.addr(self.family, "client"), 0)
        s.settimeout(10)
        return s, s.getsockname()[1]

    def connect_data(self, port, timeout=5):
        """A passive-mode data connection to the server's address, port:
        the bytes it delivers (until EOF), or the error's name."""
        host = labmod.addr(self.family, "server")
        try:
            c = nsnet.connect(self.lab.client, host, port, timeout)
        except OSError as e:
            return type(e).__name__
        return read_all(c, timeout)


def read_all(sock, timeout=10):
    """Everything until EOF, bounded by timeout seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return data


def accept_data(listener, timeout=10):
    """(peer address, bytes) of one active-mode data connection, or (None, error)."""
    listener.settimeout(timeout)
    try:
        c, peer = listener.accept()
    except OSError as e:
        return None, type(e).__name__
    finally:
        listener.close()
    return peer, read_all(c, timeout)
