"""Sockets in a lab namespace, made by this process.

A socket belongs to the network namespace it was created in, whatever thread
later uses it. setns(2) with CLONE_NEWNET changes only the calling thread, so
a socket is made on a short-lived thread that first joins the namespace, and
is handed back: the hostile peers and the load generators then drive real
sockets in the client and server namespaces without a process per
connection. Threads that open many sockets (a load worker, an active-mode
data connection) can join a namespace for their whole life with enter().
"""

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)


def enter(ns):
    """Move the calling thread into network namespace ns (a name under
    /run/netns). Never call it on the main thread."""
    if threading.current_thread() is threading.main_thread():
        raise RuntimeError("enter() on the main thread would move the harness itself")
    fd = os.open("/run/netns/" + ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (ns, os.strerror(err)))
    finally:
        os.close(fd)


def call_in(ns, fn, *args, timeout=30):
    """fn(*args) run on a fresh thread inside namespace ns; its result or
    its exception. Bounded by timeout seconds."""
    box = {}

    def body():
        try:
            enter(ns)
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller
            box["error"] = e
    t = threading.Thread(target=body, name="in-" + ns, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError("call in namespace %s took more than %ss" % (ns, timeout))
    if "error" in box:
        raise box["error"]
    return box["value"]


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(ns, host, port, timeout=10):
    """A TCP connection from namespace ns to (host, port), with a timeout."""
    def body():
        return socket.create_connection((host, port), timeout)
    return call_in(ns, body, timeout=timeout + 5)


def listen(ns, host, port=0, backlog=64, reuse=True):
    """A listening TCP socket in namespace ns on (host, port)."""
    def body():
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        return s
    return call_in(ns, body)


def spawn(ns, fn, *args, name=None):
    """Start fn(*args) on a daemon thread living in namespace ns; returns the
    thread. fn's exception, if any, is kept on the thread as .error."""
    def body():
        t = threading.current_thread()
        t.error = None
        try:
            enter(ns)
            t.result = fn(*args)
        except BaseException as e:
            t.error = e
    t = threading.Thread(target=body, name=name or ("in-" + ns), daemon=True)
    t.error = None
    t.result = None
    t.start()
    return t
