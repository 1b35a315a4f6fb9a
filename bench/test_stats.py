"""Checks of the benchmark's own arithmetic and parsers on fixed inputs: the
ratios paired per pass, strace -c's summary, strace's timestamped lines,
pcap files of Linux's "any" device, the timelines' steps, round trips and
findings, and the report's whiskers. No network, no root.

    python3 bench/test_stats.py        (or: python3 -m pytest bench/test_stats.py)
"""

import struct
import sys

sys.dont_write_bytecode = True

# Run as a script or by pytest, this file's directory is on sys.path.
import report  # noqa: E402
import syscalls  # noqa: E402
import timeline  # noqa: E402
from results import Results, Spread, paired_differences, paired_ratios  # noqa: E402

THIS, HELPER, DIRECT = "ftp-proxy (this)", "conntrack helper", "direct routing"


# -- paired ratios -------------------------------------------------------------

def test_paired_ratios_are_taken_within_each_pass():
    a = {0: [80.0], 1: [120.0], 2: [90.0]}
    b = {0: [100.0], 1: [100.0], 2: [100.0]}
    assert paired_ratios(a, b) == [0.8, 1.2, 0.9]


def test_paired_ratios_skip_passes_one_side_lacks_and_zero_denominators():
    a = {0: [10.0], 1: [20.0], 3: [5.0]}
    b = {0: [5.0], 2: [7.0], 3: [0.0]}
    assert paired_ratios(a, b) == [2.0]


def test_paired_ratio_differs_from_ratio_of_medians():
    # Two passes of three say 0.8; in the other the helper ran slow. The
    # medians of the two sides come from different passes (the daemon's
    # 100, the helper's 62.5), so their ratio says 1.6, the paired one 0.8.
    r = Results()
    for p, (this, helper) in enumerate([(100, 125), (100, 60), (50, 62.5)]):
        r.add(THIS, "small sessions/s PASV", [this], pass_no=p)
        r.add(HELPER, "small sessions/s PASV", [helper], pass_no=p)
    sp = r.paired(THIS, HELPER, "small sessions/s PASV")
    assert [round(v, 6) for v in sp.values] == [0.8, 1.666667, 0.8]
    assert str(sp) == "0.80 (0.80–1.67)"
    of_medians = r.get(THIS, "small sessions/s PASV").median / \
        r.get(HELPER, "small sessions/s PASV").median
    assert of_medians == 1.6
    assert round(sp.median, 6) != round(of_medians, 6)


def test_ratio_to_direct_has_median_and_range():
    r = Results()
    for p, (this, direct) in enumerate([(90, 100), (110, 100), (95, 100)]):
        r.add(THIS, "m", [this], pass_no=p)
        r.add(DIRECT, "m", [direct], pass_no=p)
    sp = r.ratio(r.get(THIS, "m"))
    assert (sp.median, sp.min, sp.max) == (0.95, 0.9, 1.1)
    assert str(sp) == "0.95 (0.90–1.10)"
    r.add(THIS, "n", [1], ratio=False)
    assert r.ratio(r.get(THIS, "n")) is None
    assert Spread([2.0]).__str__() == "2.00"


def test_added_latency_is_paired_per_pass():
    # Each side's median comes from a different pass (the daemon's from
    # pass 1, direct routing's from pass 2): their difference says +20 us,
    # the per-pass differences +40, +10, +30, median +30.
    r = Results()
    for p, (this, direct) in enumerate([(100, 60), (110, 100), (120, 90)]):
        r.add(THIS, "NOOP round trip, median (us)", [this], pass_no=p)
        r.add(DIRECT, "NOOP round trip, median (us)", [direct], pass_no=p)
    assert paired_differences(r.get(THIS, "NOOP round trip, median (us)").by_pass(),
                              r.get(DIRECT, "NOOP round trip, median (us)").by_pass()) == \
        [40, 10, 30]
    [(setup, q, sp)] = report.added_latency(r)
    assert (setup, q) == (THIS, "median")
    assert sp.format("%+.1f") == "+30.0 (+10.0–+40.0)"
    assert r.get(THIS, "NOOP round trip, median (us)").median - \
        r.get(DIRECT, "NOOP round trip, median (us)").median == 20 != sp.median
    assert Spread([5.0, 5.0]).format("%+.1f") == "+5.0"


def test_json_keeps_the_pass_of_every_value():
    r = Results()
    r.add(THIS, "m", [1.0, 2.0], pass_no=3)
    assert r.to_json() == [{"setup": THIS, "metric": "m", "values": [1.0, 2.0],
                            "passes": [3, 3]}]


# -- strace -c ---------------------------------------------------------------------

STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.012000           3      4000      2000 recvfrom
 30.00    0.008000           4      2000           sendto
 24.90    0.006600           3      2000           epoll_wait
  0.00    0.000000           0         1           clock_gettime
------ ----------- ----------- --------- --------- ----------------
100.00    0.026600           3      8001      2000 total
"""


def test_strace_summary_is_parsed_with_and_without_errors():
    counts = syscalls.parse_summary(STRACE_C)
    assert counts == {"recvfrom": (4000, 2000), "sendto": (2000, 0),
                      "epoll_wait": (2000, 0), "clock_gettime": (1, 0)}


def test_system_calls_per_round_trip():
    total, rows = syscalls.per_unit(syscalls.parse_summary(STRACE_C), 2000)
    assert total == 4.0005
    assert rows[0] == ("recvfrom", 2.0, 1.0)
    assert syscalls.describe(rows[:3]) == \
        "recvfrom 2.00 (1.00 failed), epoll_wait 1.00, sendto 1.00"


def test_empty_summary_counts_nothing():
    assert syscalls.parse_summary("") == {}
    assert syscalls.per_unit({}, 10) == (0.0, [])


# -- strace -ttt -T -yy ----------------------------------------------------------------

STRACE_T = """\
9 1796189176.000100 accept4(3<TCP:[192.0.2.1:8021]>, {sa_family=AF_INET}, [16], SOCK_NONBLOCK) \
= 8<TCP:[192.0.2.1:8021->192.0.2.2:40000]> <0.000010>
9 1796189176.000200 connect(9<TCP:[1234]>, {sa_family=AF_INET, sin_port=htons(21)}, 16) \
= -1 EINPROGRESS (Operation now in progress) <0.000020>
9 1796189176.000300 recvfrom(9<TCP:[198.51.100.1:5000->198.51.100.2:21]>, "227 Entering Passive \
Mode (198,51,100,2,1,2).\\r\\n", 4096, 0, NULL, NULL) = 50 <0.000005>
9 1796189176.000400 sendto(4<NETLINK:[NETFILTER:9]>, [[{nlmsg_type=NFNL_SUBSYS_NFTABLES<<8|\
NFT_MSG_NEWSETELEM}], [{nlmsg_type=NFNL_SUBSYS_NFTABLES<<8|NFT_MSG_NEWSETELEM}]], 200, 0, \
NULL, 0) = 200 <0.000030>
9 1796189176.000450 recvfrom(4<NETLINK:[NETFILTER:9]>, [{nlmsg_type=NLMSG_ERROR}], 65536, 0, NULL, \
NULL) = 36 <0.000004>
9 1796189176.000460 recvfrom(4<NETLINK:[NETFILTER:9]>, [{nlmsg_type=NLMSG_ERROR}], 65536, 0, NULL, \
NULL) = 36 <0.000004>
9 1796189176.000500 sendto(8<TCP:[192.0.2.1:8021->192.0.2.2:40000]>, "227 Entering Passive Mode \
(192,0,2,1,3,4)\\r\\n", 49, MSG_NOSIGNAL, NULL, 0) = 49 <0.000010>
9 1796189176.000600 recvfrom(8<TCP:[192.0.2.1:8021->192.0.2.2:40000]>, 0x7ff, 4096, 0, NULL, NULL) \
= -1 EAGAIN (Resource temporarily unavailable) <0.000003>
"""


def test_strace_lines_become_daemon_events():
    ev = timeline.parse_strace(STRACE_T)
    assert [e for _, e in ev] == ["daemon accept", "daemon connect", "daemon read s 227",
                                  "daemon nft batch +2 -0", "daemon nft answers (2)",
                                  "daemon write c 227"]
    times = [round((t - 1796189176) * 1e6) for t, _ in ev]
    assert times == [110, 200, 305, 400, 464, 500]


# -- pcap and timelines -----------------------------------------------------------------

C, GW_LAN, GW_WAN, S = "192.0.2.2", "192.0.2.1", "198.51.100.1", "198.51.100.2"


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def frame(src, sport, dst, dport, flags, seq=1, ack=0, payload=b"", v2=True, outgoing=False):
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 1000, 0, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, ip4(src),
                     ip4(dst)) + tcp
    pkttype = 4 if outgoing else 0
    if v2:
        head = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, pkttype, 6, b"\0" * 8)
    else:
        head = struct.pack(">HHH8sH", pkttype, 1, 6, b"\0" * 8, 0x0800)
    return head + ip


def pcap(frames, linktype=276):
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 256, linktype)
    for t, f in frames:
        out += struct.pack("<IIII", int(t), int(round((t - int(t)) * 1e6)), len(f), len(f)) + f
    return out


def test_pcap_of_the_any_device_v1_and_v2():
    for v2, lt in ((True, 276), (False, 113)):
        data = pcap([(10.5, frame(C, 40000, S, 21, timeline.SYN, v2=v2)),
                     (10.6, frame(GW_WAN, 50000, S, 21, timeline.ACK | 0x08, payload=b"PASV\r\n",
                                  v2=v2, outgoing=True))], lt)
        p = timeline.parse_pcap(data)
        assert [(x.side, x.sport, x.dport, x.flags, x.payload) for x in p] == [
            ("c>gw", 40000, 21, timeline.SYN, b""),
            ("gw>s", 50000, 21, timeline.ACK | 0x08, b"PASV\r\n")]
        assert abs(p[0].t - 10.5) < 1e-6


def P(t, side, sport, dport, flags, payload=b"", seq=1, ack=0, data=False):
    """A packet seen on side; addresses from the side, the proxy set-up's."""
    src, dst = {"c>gw": (C, S), "gw>c": (S, C), "gw>s": (GW_WAN, S), "s>gw": (S, GW_WAN)}[side]
    return timeline.Packet(t, side.startswith("gw"), src, sport, dst, dport, flags, seq, ack,
                           len(payload), payload)


PA = timeline.ACK | 0x08


def session(t0, cport, sport):
    """One short proxied session: connect, PASV with its pinhole, a data SYN."""
    return [P(t0, "c>gw", cport, 21, timeline.SYN),
            P(t0 + 20e-6, "gw>s", sport, 21, timeline.SYN),
            P(t0 + 1000e-6, "s>gw", 21, sport, PA, b"220 hi\r\n"),
            P(t0 + 1030e-6, "gw>c", 21, cport, PA, b"220 hi\r\n"),
            P(t0 + 1100e-6, "c>gw", cport, 21, PA, b"PASV\r\n", seq=10),
            P(t0 + 1125e-6, "gw>s", sport, 21, PA, b"PASV\r\n", seq=10),
            P(t0 + 1200e-6, "s>gw", 21, sport, PA, b"227 (198,51,100,2,1,2)\r\n"),
            P(t0 + 1280e-6, "gw>c", 21, cport, PA, b"227 (192,0,2,1,3,4)\r\n"),
            P(t0 + 1400e-6, "c>gw", cport + 1, 772, timeline.SYN),
            P(t0 + 1420e-6, "gw>s", cport + 1, 258, timeline.SYN)]


def test_sessions_steps_and_round_trips():
    pk = session(100.0, 40000, 50000) + session(100.01, 40010, 50010)
    # The first session's server connection ends late, inside the second.
    pk.append(P(100.0101, "gw>s", 50000, 21, timeline.FIN | timeline.ACK))
    pk.sort(key=lambda p: p.t)
    sess = timeline.sessions(pk, [(100.0012, "daemon nft batch +3 -0")])
    assert len(sess) == 2
    assert [e for _, e in sess[0]][-1] == "gw>s FIN"
    assert "daemon nft batch +3 -0" in [e for _, e in sess[0]]
    st = timeline.steps(sess)
    names = [e for e, _, _, _ in st]
    assert names[:4] == ["c>gw SYN", "gw>s SYN", "s>gw 220", "gw>c 220"]
    gaps = dict((e, round(g)) for e, _, g, _ in st)
    assert gaps["gw>c 227"] == 80 and gaps["gw>s SYN"] == 20
    rt = timeline.round_trips(sess)
    assert round(rt["PASV"]["client wait"][0]) == 180
    assert round(rt["PASV"]["gateway, command"][0]) == 25
    assert round(rt["PASV"]["gateway, reply"][0]) == 80
    assert round(rt["data SYN"]["gateway"][0]) == 20
    assert round(rt["whole session"]["client SYN to the last reply out"][1]) == 1280
    table = timeline.round_trip_table([("ftp-proxy (this)", rt)])
    assert "| PASV | gateway, reply | 80 |" in table


def test_findings_retransmitted_syn_and_delayed_ack():
    pk = [P(1.0, "c>gw", 40000, 21, timeline.SYN, seq=5),
          P(2.0, "c>gw", 40000, 21, timeline.SYN, seq=5),
          # The server's 150, the client's ACK 40 ms later, the 226 right after it.
          P(3.0, "s>gw", 21, 50000, PA, b"150 ok\r\n", seq=100),
          P(3.040, "gw>s", 50000, 21, timeline.ACK, seq=7, ack=108),
          P(3.0402, "s>gw", 21, 50000, PA, b"226 ok\r\n", seq=108)]
    kinds = sorted(k for k, _, _ in timeline.findings(pk))
    assert kinds == ["delayed ACK held the next segment", "retransmitted SYN"]
    # A prompt ACK is no finding.
    pk[3] = P(3.0001, "gw>s", 50000, 21, timeline.ACK, seq=7, ack=108)
    assert [k for k, _, _ in timeline.findings(pk)] == ["retransmitted SYN"]


# -- the report ---------------------------------------------------------------------------

def test_svg_has_whiskers_and_ratio_chart_when_passes_differ():
    r = Results()
    for p, (d, h, t) in enumerate([(100, 110, 90), (120, 100, 95), (80, 90, 85)]):
        r.add(DIRECT, "small sessions/s PASV", [d], pass_no=p)
        r.add(HELPER, "small sessions/s PASV", [h], pass_no=p)
        r.add(THIS, "small sessions/s PASV", [t], pass_no=p)
    svg = report.svg(r, "1 GiB", "machine")
    assert svg.count("<path") >= 4          # 3 bars with a range + the ratio chart's
    assert "ratios paired per pass" in svg and "target 0.95" in svg
    lines = report.paired_lines(r, "1 GiB")
    assert lines[0].startswith("ftp-proxy (this) / conntrack helper, small sessions/s PASV: "
                               "0.94 (0.82–0.95), 3 passes")


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    print("bench statistics: %d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
