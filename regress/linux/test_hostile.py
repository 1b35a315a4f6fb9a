"""Hostile peers against the daemon: real sockets, real nftables.

The environment: ftp-proxy for IPv4 and for IPv6 (`-6`), both with `-t 5`,
and the scripted server of ftplab/evil_server.py on port 21. Every case
ends with ftplab.trial.common_checks: the daemons are alive, every element the kernel
received since the case began is an allowed pinhole (no third-party
address, no port below 1024, only the two shapes the daemon installs), and
the tables are empty once the case's sessions are over.

What each case asserts is the effect: the exact bytes the client received,
whether its connection closed, what the server was sent, where a data
connection really went, how many pinholes the kernel was given. The cases
are one table (CASES); the one that waits 30 s for a banner starts before
them and ends after them.

    pytest -v test_hostile.py -k "PORT and not v6"
"""

import time

import pytest

from ftplab import lab as labmod
from ftplab import pinwatch
from ftplab.evil_client import Client, accept_data
from ftplab.evil_server import DATA_TEXT, EvilServer, parse_active
from ftplab.plugin import group_env
from ftplab.replies import (BAD_PORT, CLIENT_IDLE, CLIENT_LINE, SERVER_IDLE, SERVER_LINE,
                            SERVER_TIMEOUT, V6_PASV_PORT)
from ftplab.trial import Trial, case

IDLE = 5                  # the daemons' -t
FIRST_BYTES = 30          # the daemon's fixed wait for the server's first bytes
THIRD_PARTY4 = "203.0.113.9"
THIRD_PARTY6 = "2001:db8:99::9"

# -- building blocks -----------------------------------------------------------

def open_session(t, script, family=4, login=True):
    """Queue script on the hostile server, connect a client through the
    proxy, wait until the daemon reached the server; optionally log in."""
    s = t.evil.expect(script, t.name)
    c = Client(t.lab, family)
    t.closers.append(c.close)
    s.wait_accepted()
    t.track(family)
    if login:
        assert c.login(), "login through the proxy failed: %r" % c.data
    return c, s


def plain(conn):
    """An ordinary server."""
    if conn.greet_and_login():
        conn.serve()


def tail(c, n=2):
    return b"".join(l + b"\n" for l in c.lines()[-n:])


def expect_refusal(t, c, text, timeout=10):
    """The client's last bytes are exactly text, then its connection closes."""
    assert c.wait_closed(timeout), (
        "connection still open %ss later; got %r"
        % (timeout, c.data[-200:]))
    assert c.data.endswith(text), (
        "expected %r before the close, got %r"
        % (text, c.data[-200:]))
    t.say("client got %r, then the close; session ended" % text)


def expect_no_pinhole(t, family=4):
    n = t.watches[family].count_added(t.since)
    assert n == 0, "%d pinhole(s) installed" % n
    t.say("kernel: no pinhole installed")


def survives(t, c):
    reply = c.command(b"NOOP")
    assert reply and reply.startswith(b"200"), (
        "session broken afterwards: NOOP got %r"
        % reply)
    reply = c.command(b"QUIT")
    assert reply and reply.startswith(b"221"), "QUIT got %r" % reply
    t.say("session survives (NOOP 200, QUIT 221)")


def sent_to_server(s, verb):
    """The lines starting with verb that reached the server."""
    return [l for l in s.received.split(b"\n") if l.upper().startswith(verb)]


def port_args(port):
    return b"%d,%d" % (port // 256, port % 256)


def in_pports(port):
    return 49152 <= port <= 65534


# -- the client lies -----------------------------------------------------------

def active_third_party(family, line_fmt, expect_verb):
    def fn(t):
        """The address in PORT/EPRT is ignored: the server is told the
        proxy's address, the pinhole redirects to the client's own address,
        and the data connection arrives at the client, from the server's
        address."""
        c, s = open_session(t, plain, family)
        listener, port = c.listen_data()
        line = line_fmt(port)
        reply = c.command(line)
        assert reply and reply.startswith(b"200"), "%r answered %r" % (line, reply)
        t.say("client sent %r, got %r" % (line, reply))
        told = sent_to_server(s, expect_verb)
        assert told, "the server was not sent any %s line: %r" % (expect_verb, s.received)
        where = parse_active(told[-1] + b"\n")
        proxies = pinwatch.gateway_wan(family)
        assert where and where[0] in proxies and in_pports(where[1]), (
            "server told %r, expected the proxy (%s) and a port in 49152..65534"
            % (told[-1], " or ".join(proxies)))
        t.say("server was told %r" % told[-1].strip())
        reply = c.command(b"LIST")
        peer, data = accept_data(listener, 10)
        assert peer is not None, "no data connection reached the client: %s" % data
        assert data == DATA_TEXT, "data connection delivered %r" % data[:80]
        assert peer[0] == labmod.addr(family, "server"), (
            "data connection came from %s, not from the server's address" % peer[0])
        c.wait_lines(c.line_count() + 1, 5)
        t.say("data connection reached the client's own address from %s" % peer[0])
        survives(t, c)
        n = t.watches[family].count_added(t.since)
        assert n == 1, "%d pinholes installed for one PORT/EPRT" % n
    return fn


def bad_active(family, line):
    def fn(t):
        """A PORT/EPRT the daemon must refuse: 421, close, nothing sent to
        the server, no pinhole."""
        c, s = open_session(t, plain, family)
        c.send(line + b"\r\n")
        expect_refusal(t, c, BAD_PORT)
        s.wait_done(10)
        assert not sent_to_server(s, line[:4]), "the server was sent %r" % s.received
        expect_no_pinhole(t, family)
    return fn


def port_1024_accepted(t):
    """Boundary: port 1024 is the lowest data port accepted."""
    c, s = open_session(t, plain)
    listener, _ = c.listen_data()
    listener.close()
    reply = c.command(b"PORT 192,0,2,2,4,0")
    assert reply and reply.startswith(b"200"), "PORT to port 1024 answered %r" % reply
    t.say("PORT ...,4,0 (port 1024) got %r" % reply)
    survives(t, c)
    assert t.watches[4].count_added(t.since) == 1, "no pinhole for port 1024"


def line_of(n, verb=b"NOOP "):
    """A line of exactly n bytes, CR LF included."""
    return verb + b"x" * (n - len(verb) - 2) + b"\r\n"


def client_line_500_passes(t):
    """A 500-byte line (LF included) is the longest the proxy forwards, byte
    for byte."""
    c, s = open_session(t, plain)
    line = line_of(500)
    c.send(line)
    assert c.wait_lines(4, 10), "no reply to a 500-byte line: %r" % c.data[-200:]
    assert line in s.received, "the server did not get the 500-byte line intact"
    t.say("500-byte line forwarded intact, reply %r" % c.lines()[-1])
    survives(t, c)


def client_overlong(t):
    """501 bytes without the LF in the first 500: 421 and close; the server
    gets none of it."""
    c, s = open_session(t, plain)
    c.send(line_of(501))
    expect_refusal(t, c, CLIENT_LINE)
    s.wait_done(10)
    assert b"xxxx" not in s.received, "part of the overlong line reached the server"


def client_nul(t):
    """A NUL byte in a command line: 421 and close; the server gets nothing
    of the line."""
    c, s = open_session(t, plain)
    c.send(b"NO\x00OP\r\n")
    expect_refusal(t, c, CLIENT_LINE)
    s.wait_done(10)
    assert b"NO" not in s.received.split(b"PASS", 1)[-1], (
        "part of the NUL line reached the server: %r" % s.received)


def client_no_lf_then_close(t):
    """A partial line then EOF: the partial line is dropped (the server never
    sees it), the server's connection is closed, the client gets nothing."""
    c, s = open_session(t, plain)
    before = len(c.data)
    c.send(b"DELE important-file")
    c.shutdown_write()
    assert c.wait_closed(10), "proxy kept the connection after the client's EOF"
    s.wait_done(10)
    assert s.conn.eof, "the server's connection was not closed"
    assert b"DELE" not in s.received, (
        "the partial line reached the server: %r"
        % s.received)
    assert len(c.data) == before, "client got %r after its EOF" % c.data[before:]
    t.say("partial line dropped, both connections closed, nothing sent to either side")


def port_burst(count):
    def fn(t):
        """Thousands of pipelined PORT commands: each answered, each one
        pinhole replacing the previous (never more than one per session in
        the kernel), none left after QUIT."""
        def script(conn):
            if conn.greet_and_login():
                conn.serve(timeout=60)
        c, s = open_session(t, script)
        start = time.monotonic()
        c.send(b"".join(b"PORT 192,0,2,2,%d,%d\r\n" % (4 + i // 256 % 200, i % 256)
                        for i in range(count)))
        base = 3   # banner, 331, 230
        assert c.wait_lines(base + count, 60), (
            "only %d of %d PORT replies in 60 s"
            % (c.line_count() - base, count))
        took = time.monotonic() - start
        replies = c.lines()[base:base + count]
        bad = [r for r in replies if not r.startswith(b"200")]
        assert not bad, "%d PORT replies not 200, e.g. %r" % (len(bad), bad[:2])
        told = sent_to_server(s, b"PORT")
        assert len(told) == count, "server got %d PORT lines, not %d" % (len(told), count)
        proxies = pinwatch.gateway_wan(4)
        wrong = [l for l in told if (parse_active(l + b"\n") or ("", 0))[0] not in proxies]
        assert not wrong, "PORT lines not naming the proxy: %r" % wrong[:2]
        survives(t, c)
        w = t.watches[4]
        w.settle()
        added = w.count_added(t.since, distinct=False)   # random ports may repeat
        most = w.max_sampled(t.since)
        assert added == count, "%d pinholes installed for %d PORT commands" % (added, count)
        assert most <= 3, "the table held %d elements at once (one pinhole is 3)" % most
        t.say("%d PORT commands answered in %.2f s; %d pinholes installed one after "
              "another, at most %d elements at once" % (count, took, added, most))
    return fn


def slowloris_assembles(t):
    """A command dribbled one byte at a time (gaps under -t) is assembled
    and forwarded once; meanwhile another session runs at full speed."""
    c, s = open_session(t, plain)
    other_c, other_s = None, None
    start = time.monotonic()
    slow_parts = b"NOOP\r\n"
    for i, b in enumerate(slow_parts):
        c.send(bytes([b]))
        if i == 1:
            t0 = time.monotonic()
            other_c, other_s = open_session(t, plain)
            survives(t, other_c)
            other = time.monotonic() - t0
        time.sleep(0.3)   # the attack itself is the delay, not a synchronisation
    assert c.wait_lines(4, 5), "dribbled NOOP not answered: %r" % c.data[-100:]
    assert c.lines()[3].startswith(b"200"), "dribbled NOOP answered %r" % c.lines()[3]
    assert s.received.count(b"NOOP\r\n") == 1, "server got %r" % s.received
    assert other < 2, "a normal session took %.2f s while the slowloris dribbled" % other
    t.say("dribbled over %.1f s, forwarded once as 'NOOP\\r\\n'; a parallel session "
          "took %.2f s" % (time.monotonic() - start, other))
    survives(t, c)


def slowloris_endless(t):
    """An endless line dribbled in small pieces: 421 once 500 bytes are
    buffered without an LF; nothing of it reaches the server."""
    c, s = open_session(t, plain)
    sent = 0
    deadline = time.monotonic() + 20
    while not c.closed and sent < 4000 and time.monotonic() < deadline:
        try:
            c.send(b"A" * 25)
        except OSError:
            break
        sent += 25
        time.sleep(0.01)   # the dribble rate is the attack
    expect_refusal(t, c, CLIENT_LINE)
    assert sent >= 500, "refused after %d bytes, before 500" % sent
    s.wait_done(10)
    assert b"AAAA" not in s.received, "part of the endless line reached the server"
    t.say("refused after %d bytes dribbled" % sent)


def client_idle(t):
    """Connect, log in, say nothing while the server keeps talking: 421 and
    close after -t seconds of client silence, not before."""
    def script(conn):
        if not conn.greet_and_login():
            return
        for _ in range(IDLE * 4):
            if conn.wait_eof(1):
                return
            conn.send(b"200-server still talking\r\n")
    c, s = open_session(t, script)
    quiet_from = time.monotonic() - c.started
    yield
    expect_refusal(t, c, CLIENT_IDLE, timeout=IDLE + 10)
    silent = c.closed_at - quiet_from
    assert silent >= IDLE - 0.5, (
        "closed after %.1f s of client silence, -t is %d"
        % (silent, IDLE))
    assert silent < IDLE + 3, "closed only after %.1f s of silence" % silent
    t.say("closed %.1f s after the client's last byte (-t %d)" % (silent, IDLE))


def server_idle(t):
    """The client keeps sending NOOP, the server stops answering: 421 and
    close after -t seconds of server silence."""
    def script(conn):
        if conn.greet_and_login():
            conn.wait_eof(IDLE + 10)
    c, s = open_session(t, script)
    quiet_from = time.monotonic() - c.started
    stop = time.monotonic() + IDLE + 8
    while not c.closed and time.monotonic() < stop:
        c.send(b"NOOP\r\n")
        c.wait_closed(1)
    expect_refusal(t, c, SERVER_IDLE, timeout=1)
    silent = c.closed_at - quiet_from
    assert IDLE - 0.5 <= silent < IDLE + 3, (
        "closed after %.1f s of server silence, -t %d"
        % (silent, IDLE))
    t.say("closed %.1f s after the server's last byte (-t %d)" % (silent, IDLE))


def v6_refuses(line):
    def fn(t):
        """With -6, PASV and PORT end the session with their own 421."""
        c, s = open_session(t, plain, family=6)
        c.send(line + b"\r\n")
        expect_refusal(t, c, V6_PASV_PORT)
        s.wait_done(10)
        assert line[:4] not in s.received, "the server was sent %r" % line
        expect_no_pinhole(t, 6)
    return fn


# -- the server lies -----------------------------------------------------------

def unsolicited(reply):
    def fn(t):
        """A 227/229 nobody asked for passes through unchanged and opens
        nothing: a connection to the port it names is dropped."""
        answered = []

        def lie_once(conn, line):
            if answered:
                return False
            answered.append(line)
            conn.send(reply)
            return True

        def script(conn):
            if conn.greet_and_login():
                conn.send(reply)                       # out of the blue
                conn.serve(on={"NOOP": lie_once})
        c, s = open_session(t, script)
        assert c.wait_lines(4, 5), "spontaneous reply not passed on: %r" % c.data
        assert c.lines()[3] + b"\n" == reply, (
            "client got %r, not %r unchanged"
            % (c.lines()[3], reply))
        answer = c.command(b"NOOP")
        assert answer == reply, "227/229 answering NOOP became %r" % answer
        t.say("passed through unchanged: %r (spontaneous and as a NOOP reply)" % reply)
        outcome = c.connect_data(51210, timeout=1.5)
        assert not isinstance(outcome, bytes), (
            "a data connection to the advertised port got through")
        t.say("connection to the advertised port: %s (dropped)" % outcome)
        expect_no_pinhole(t)
        survives(t, c)
    return fn


def passive_lie(reply_fmt, family=4):
    def fn(t):
        """A 227 naming another host: the client is told the original server,
        the pinhole redirects to the real server's address, and the data
        connection arrives there, from the proxy."""
        box = {}

        def script(conn):
            if not conn.greet_and_login():
                return
            if conn.line() is None:
                return
            lst, port = conn.listen_data(family)
            conn.send(reply_fmt(port))
            lst.settimeout(10)
            try:
                d, peer = lst.accept()
            except OSError:
                box["peer"] = None
            else:
                box["peer"] = peer
                d.sendall(DATA_TEXT)
                d.close()
            conn.serve()
        c, s = open_session(t, script, family)
        reply = c.command(b"PASV" if family == 4 else b"EPSV")
        assert reply is not None, "no reply to PASV"
        import re
        m = re.match(rb"227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)\r\n$",
                     reply)
        assert m, "client got %r, not a rewritten 227" % reply
        n = [int(x) for x in m.groups()]
        told = "%d.%d.%d.%d" % tuple(n[:4])
        pport = n[4] * 256 + n[5]
        assert told == labmod.addr(4, "server") and in_pports(pport), (
            "227 tells the client %s port %d" % (told, pport))
        t.say("client got %r" % reply)
        data = c.connect_data(pport, timeout=5)
        assert data == DATA_TEXT, "data connection: %r" % (data[:80],)
        s_peer = box.get("peer")
        assert s_peer and s_peer[0] in pinwatch.gateway_wan(4), (
            "the server saw the data connection from %s" % (s_peer,))
        t.say("data connection reached the real server (from the proxy %s)" % s_peer[0])
        survives(t, c)
    return fn


def pasv_reply(addr, tail_text=b""):
    a = addr.replace(".", ",").encode()

    def fmt(port):
        return b"227 Entering Passive Mode (%s,%s)%s\r\n" % (a, port_args(port), tail_text)
    return fmt


def multiline_227(port):
    return (b"227-Entering Passive Mode, over several lines\r\n"
            b" (203,0,113,9,%s)\r\n"
            b"227 That was the address.\r\n" % port_args(port))


def bad_passive(command, reply):
    def fn(t):
        """A 227/229 with a port that does not parse or is below 1024: 421,
        close, no pinhole, the reply never reaches the client."""
        def script(conn):
            if conn.greet_and_login() and conn.line() is not None:
                conn.send(reply)
                conn.wait_eof(10)
        c, s = open_session(t, script)
        c.send(command + b"\r\n")
        expect_refusal(t, c, BAD_PORT)
        assert reply not in c.data, "the bad reply reached the client"
        expect_no_pinhole(t)
    return fn


def multiline_over_cap(t):
    """A multi-line 227 that never ends: held up to 16 lines, then 421;
    none of its lines reach the client."""
    def script(conn):
        if conn.greet_and_login() and conn.line() is not None:
            conn.send(b"".join(b"227-line %d\r\n" % i for i in range(40)))
            conn.wait_eof(10)
    c, s = open_session(t, script)
    c.send(b"PASV\r\n")
    expect_refusal(t, c, SERVER_LINE)
    assert b"227-" not in c.data, "held lines reached the client"
    expect_no_pinhole(t)


def server_line(reply, refused):
    def fn(t):
        """A reply of 500 bytes passes intact; one longer, or with a NUL,
        ends the session with 421 and none of it reaches the client."""
        def script(conn):
            if conn.greet_and_login() and conn.line() is not None:
                conn.send(reply)
                conn.serve()
        c, s = open_session(t, script)
        c.send(b"NOOP\r\n")
        if refused:
            expect_refusal(t, c, SERVER_LINE)
            assert b"xxxx" not in c.data and b"\x00" not in c.data, (
                "part of the bad reply reached the client")
        else:
            assert c.wait_lines(4, 5) and c.lines()[3] + b"\n" == reply, (
                "the 500-byte reply did not arrive intact")
            t.say("500-byte reply passed intact")
            survives(t, c)
    return fn


def banner_never_comes(t):
    """The server accepts and says nothing: after the daemon's fixed 30 s
    first-bytes wait (not -t), 421 and close. The client sends a NOOP every
    2 s meanwhile, or its own -t 5 would end the session first."""
    import threading

    def script(conn):
        conn.wait_eof(FIRST_BYTES + 15)

    def keep_talking(c):
        deadline = time.monotonic() + FIRST_BYTES + 10
        while time.monotonic() < deadline and not c.wait_closed(2):
            try:
                c.send(b"NOOP\r\n")
            except OSError:
                return
    c, s = open_session(t, script, login=False)
    threading.Thread(target=keep_talking, args=(c,), daemon=True).start()
    yield
    expect_refusal(t, c, SERVER_TIMEOUT, timeout=FIRST_BYTES + 10)
    assert c.data == SERVER_TIMEOUT, "client got more than the 421: %r" % c.data
    assert FIRST_BYTES - 0.5 <= c.closed_at < FIRST_BYTES + 5, "closed after %.1f s" % c.closed_at
    s.wait_done(10)
    assert s.conn.eof, "the server's connection was not closed"
    t.say("421 after %.1f s; the server's connection closed too" % c.closed_at)


def close_mid_reply(script_tail, command=None):
    def fn(t):
        """The server closes in the middle of a reply: the partial reply is
        dropped, the client's connection is closed, nothing is opened."""
        def script(conn):
            if command is None:
                conn.send(script_tail)
                return
            if conn.greet_and_login() and conn.line() is not None:
                conn.send(script_tail)
        c, s = open_session(t, script, login=command is not None)
        before = len(c.data)
        if command is not None:
            c.send(command + b"\r\n")
        assert c.wait_closed(10), "client connection still open after the server closed"
        got = c.data[before:]
        partial = script_tail.rstrip(b"\r\n").split(b"\r\n")[-1]
        assert partial not in got, "the partial reply reached the client: %r" % got
        t.say("client got %r, then the close" % got)
        expect_no_pinhole(t)
    return fn


def flood_227(t):
    """One PASV answered by a thousand 227 lines: only the one that answers
    the PASV opens a pinhole; the rest pass through."""
    count = 1000

    def script(conn):
        if conn.greet_and_login() and conn.line() is not None:
            lst, port = conn.listen_data()
            conn.send(pasv_reply(labmod.addr(4, "server"))(port) * count)
            conn.serve()
    c, s = open_session(t, script)
    c.send(b"PASV\r\n")
    assert c.wait_lines(3 + count, 20), "only %d lines" % (c.line_count() - 3)
    got = c.lines()[3:3 + count]
    rewritten = [l for l in got if l != got[-1]]
    assert len(set(got)) == 2, "expected one rewritten and %d identical lines" % (count - 1)
    assert len(rewritten) == 1, "%d lines rewritten" % len(rewritten)
    n = t.watches[4].count_added(t.since)
    assert n == 1, "%d pinholes installed" % n
    t.say("1 pinhole, %d unsolicited 227 lines passed through" % (count - 1))
    survives(t, c)


# -- the table ----------------------------------------------------------------

def start_group(env):
    """ftp-proxy and ftp-proxy -6 with -t 5, the scripted server on port 21."""
    env.start_daemon(4, ["-t", str(IDLE)])
    env.start_daemon(6, ["-t", str(IDLE)])
    env.evil = EvilServer(env.lab)


def port_burst_sized(t):
    """port_burst: 1000 commands with --quick, 5000 without."""
    port_burst(1000 if t.quick else 5000)(t)


TP4 = THIRD_PARTY4.replace(".", ",").encode()
CASES = [
    case("client/idle-421", client_idle),
    case("client/PORT-third-party",
         active_third_party(4, lambda p: b"PORT %s,%s" % (TP4, port_args(p)), b"PORT")),
    case("client/EPRT-third-party",
         active_third_party(4, lambda p: b"EPRT |1|%s|%d|" % (THIRD_PARTY4.encode(), p),
                            b"EPRT")),
    case("client/EPRT-v6-address-to-v4-proxy",
         active_third_party(4, lambda p: b"EPRT |2|%s|%d|" % (THIRD_PARTY6.encode(), p),
                            b"EPRT")),
    case("client/v6/EPRT-v4-address-to-v6-proxy",
         active_third_party(6, lambda p: b"EPRT |1|%s|%d|" % (THIRD_PARTY4.encode(), p),
                            b"EPRT")),
    case("client/v6/EPRT-third-party",
         active_third_party(6, lambda p: b"EPRT |2|%s|%d|" % (THIRD_PARTY6.encode(), p),
                            b"EPRT")),
    case("client/PORT-port-25", bad_active(4, b"PORT 192,0,2,2,0,25")),
    case("client/PORT-port-1023", bad_active(4, b"PORT 192,0,2,2,3,255")),
    case("client/PORT-port-1024-accepted", port_1024_accepted),
    case("client/PORT-byte-over-255", bad_active(4, b"PORT 192,0,2,2,300,1")),
    case("client/PORT-unparsable", bad_active(4, b"PORT 192, 0, 2, 2, 200, 1")),
    case("client/EPRT-port-1023", bad_active(4, b"EPRT |1|192.0.2.2|1023|")),
    case("client/EPRT-family-3", bad_active(4, b"EPRT |3|192.0.2.2|5000|")),
    case("client/EPRT-port-over-65535", bad_active(4, b"EPRT |1|192.0.2.2|70000|")),
    case("client/EPRT-bad-delimiter", bad_active(4, b"EPRT !1!192.0.2.2!5000!")),
    case("client/v6/EPRT-port-22", bad_active(6, b"EPRT |2|2001:db8:1::2|22|")),
    case("client/line-500-bytes-passes", client_line_500_passes),
    case("client/line-501-bytes", client_overlong),
    case("client/NUL-byte", client_nul),
    case("client/no-LF-then-close", client_no_lf_then_close),
    case("client/PORT-burst", port_burst_sized),
    case("client/slowloris-assembles", slowloris_assembles),
    case("client/slowloris-endless-line", slowloris_endless),
    case("client/server-idle-421", server_idle),
    case("client/v6/PASV-refused", v6_refuses(b"PASV")),
    case("client/v6/PORT-refused", v6_refuses(b"PORT 192,0,2,2,200,1")),
    case("server/unsolicited-227",
         unsolicited(b"227 Entering Passive Mode (203,0,113,9,200,10)\r\n")),
    case("server/unsolicited-229",
         unsolicited(b"229 Entering Extended Passive Mode (|||51210|)\r\n")),
    case("server/227-names-third-party", passive_lie(pasv_reply(THIRD_PARTY4))),
    case("server/227-blank-after-parenthesis", bad_passive(
        b"PASV", b"227 Entering Passive Mode (198,51,100,2,200,1). OK\r\n")),
    case("server/multi-line-227", passive_lie(multiline_227)),
    case("server/multi-line-227-never-ends", multiline_over_cap),
    case("server/227-port-21", bad_passive(
        b"PASV", b"227 Entering Passive Mode (198,51,100,2,0,21)\r\n")),
    case("server/227-no-numbers", bad_passive(
        b"PASV", b"227 Entering Passive Mode, no address today\r\n")),
    case("server/229-letters", bad_passive(
        b"EPSV", b"229 Entering Extended Passive Mode (|||abc|)\r\n")),
    case("server/229-wrong-delimiter", bad_passive(
        b"EPSV", b"229 Entering Extended Passive Mode (!!!51210!)\r\n")),
    case("server/229-port-over-65535", bad_passive(
        b"EPSV", b"229 Entering Extended Passive Mode (|||70000|)\r\n")),
    case("server/229-port-80", bad_passive(
        b"EPSV", b"229 Entering Extended Passive Mode (|||80|)\r\n")),
    case("server/reply-500-bytes-passes", server_line(line_of(500, b"200 "), False)),
    case("server/reply-501-bytes", server_line(line_of(501, b"200 "), True)),
    case("server/reply-4KiB", server_line(line_of(4096, b"200 "), True)),
    case("server/reply-NUL", server_line(b"200 o\x00k\r\n", True)),
    case("server/close-mid-banner", close_mid_reply(b"220 hel")),
    case("server/close-mid-multi-line-227",
         close_mid_reply(b"227-Entering Passive Mode\r\n (198,51,100,2,200,1)\r\n", b"PASV")),
    case("server/close-mid-line", close_mid_reply(b"200 NOOP o", b"NOOP")),
    case("server/227-flood", flood_227),
]


# -- the suite --------------------------------------------------------------------

WAITING = [case("server/banner-never-comes", banner_never_comes)]


@pytest.fixture(scope="module")
def env(request, lab, binary, logdir, workdir, quick):
    """The daemons and the scripted server for the module; the cases that
    wait long are started as soon as they run, so that their wait overlaps
    the other cases."""
    def start(env):
        start_group(env)
        env.waiting = {}
        selected = {item.nodeid for item in request.session.items}
        for p in WAITING:
            nodeid = "%s::test_waiting[%s]" % (request.node.nodeid, p.id)
            if nodeid in selected:
                t = Trial(env, "test_waiting[%s]" % p.id)
                env.waiting[t.name] = t
                t.start(p.values[0])
    yield from group_env("hostile", lab, binary, logdir, workdir, quick, start)


@pytest.mark.parametrize("case", CASES)
def test_hostile(trial, case):
    trial.run(case)


@pytest.mark.parametrize("case", WAITING)
def test_waiting(trial, case):
    trial.finish()


def test_sigterm_exit_0_table_gone(env):
    """SIGTERM: each daemon exits 0, its table gone."""
    problems = env.stop_daemons()
    assert not problems, "; ".join(problems)
