#!/usr/bin/env python3
"""ftp-proxy at work, in a few seconds, on one machine (as root).

Builds three network namespaces: a client on a LAN, a firewall (the
gateway), and an FTP server on the other side that has no route back to the
client. The firewall redirects the client's FTP control connections to
ftp-proxy and drops every forwarded packet except those of connections that
ftp-proxy opened a pinhole for. Then, for each data mode, one file goes
through: the client pauses right after the data command so you can see the
pinhole ftp-proxy put into the kernel, then the bytes flow through the
kernel's NAT (not through the daemon) and their sha256 is compared.
Everything is torn down at the end.

    make demo                      (or: python3 regress/linux/demo.py)
"""

import hashlib
import os
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True

from ftplab import checks  # noqa: E402
from ftplab import clients  # noqa: E402
from ftplab import daemon as daemonmod  # noqa: E402
from ftplab import lab as labmod  # noqa: E402
from ftplab import procs  # noqa: E402
from ftplab import servers  # noqa: E402

SIZE = 8 * 1024 * 1024
BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def title(text):
    print("\n%s== %s%s" % (BOLD, text, OFF), flush=True)


def show(text, indent="    "):
    for line in text.rstrip().splitlines():
        print(indent + line)
    sys.stdout.flush()


def nft_text(lab, table):
    return procs.run(["nft", "list", "table"] + list(table), ns=lab.gateway, timeout=10).stdout


def pinhole_lines(text):
    """One line per set or map of a listed table, with its elements: the pinholes."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(("set ", "map ")):
            out.append([s.rstrip("{").strip(), "(empty)"])
        elif s.startswith("elements =") and out:
            out[-1][1] = s[len("elements ="):].strip()
        elif out and out[-1][1] != "(empty)" and not out[-1][1].endswith("}"):
            out[-1][1] += " " + s
    return "\n".join("%-18s %s" % (name + ":", elems) for name, elems in out)


def one_transfer(lab, d, family, cmd, workdir, data_sha):
    host, port = lab.ftp_target(family)
    where = "client %s -> server %s" % (labmod.addr(family, "client"), host)
    kind = "passive" if cmd in ("PASV", "EPSV") else "active"
    title("%s (%s mode, IPv%d): %s, download of %d MiB" % (cmd, kind, family, where, SIZE >> 20))
    local = os.path.join(workdir, "got-%s-%d" % (cmd, family))
    c = clients.Interactive(lab, "transfer", host, port, flavour="explicit", cmd=cmd, pause=True,
                            direction="get", remote="data.bin", local=local, timeout=20)
    try:
        state = c.read_json(30)
        if state.get("state") != "READY":
            print("client failed: %s" % state)
            return False
        neg = state["negotiated"]
        print("  the client sent %s; the reply it got: %s" % (cmd, neg["reply"]))
        print("  pinholes in the kernel now (nft list table %s %s):" % d.table)
        show(pinhole_lines(nft_text(lab, d.table)))
        io_before = d.io()
        c.say()
        result = c.finish(60)
    finally:
        c.kill()
    if "error" in result:
        print("  transfer failed: %s" % result["error"])
        return False
    io_after = d.io()
    got = servers.sha256_file(local)
    os.unlink(local)
    ok = got == data_sha
    print("  sha256 sent    %s" % data_sha)
    print("  sha256 arrived %s  %s" % (got, "identical" if ok else "DIFFERENT"))
    if result.get("data_peer"):
        print("  the data connection reached the client from %s port %d (the server, as the "
              "client expects)" % tuple(result["data_peer"]))
    moved = (io_after[0] - io_before[0]) + (io_after[1] - io_before[1])
    print("  bytes the daemon itself read and wrote meanwhile: %d (the data went through the "
          "kernel)" % moved)
    reason = checks.wait_no_pinholes(lab, *d.table)
    print("  after the session: %s" % (reason or "no pinhole left"))
    return ok and reason is None


def real_client(lab, client, family, cmd, direction, server, workdir, src, data_sha):
    if direction == "get":
        remote, local = "data.bin", os.path.join(workdir, "real-" + client)
    else:
        remote, local = "upload/from-" + client, src
    r = clients.transfer(lab, client, family, cmd, direction, remote, local)
    arrived = local if direction == "get" else server.uploaded("from-" + client)
    ok = r.ok and os.path.exists(arrived) and servers.sha256_file(arrived) == data_sha
    print("  %-5s %-4s IPv%d %-8s %s" % (client, cmd, family, direction == "get" and "download"
                                         or "upload", "sha256 identical" if ok else
                                         "FAILED: %s" % r.error))
    return ok


def main():
    if os.geteuid() != 0:
        print("demo.py: run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    procs.install_signal_handlers()
    binary = daemonmod.default_binary()
    if not os.access(binary, os.X_OK):
        print("demo.py: build the daemon first: cargo build --release", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="ftp-proxy-demo-")
    os.chmod(workdir, 0o755)
    data = os.urandom(SIZE)
    data_sha = hashlib.sha256(data).hexdigest()
    src = os.path.join(workdir, "src.bin")
    with open(src, "wb") as f:
        f.write(data)
    lab = labmod.Lab("proxy")
    server = None
    daemons = []
    all_ok = True
    try:
        title("the network: three namespaces")
        lab.up()
        show(labmod.__doc__.split("\n\n")[1])
        print("  namespaces: %s %s %s" % (lab.client, lab.gateway, lab.server))
        title("the firewall's own rules (the admin writes these once)")
        show(procs.run(["nft", "list", "table", "inet", labmod.ADMIN_TABLE], ns=lab.gateway).stdout)

        server = servers.make("vsftpd", lab, workdir, {"data.bin": data}).start()
        print("\n  vsftpd listens on port 21 in the server namespace (IPv4 and IPv6)")

        title("ftp-proxy on the gateway, one instance per address family")
        for family in (4, 6):
            d = daemonmod.Daemon(lab, family, logdir=workdir)
            print("  " + " ".join(d.argv()))
            d.start()
            daemons.append(d)
        print("  its own (empty) table while no data connection is pending:")
        show(nft_text(lab, daemons[0].table), indent="      ")

        print("  A pinhole is one element in each set/map, keyed by the data connection the\n"
              "  peer was told to open (source . destination . port): its first SYN consumes\n"
              "  the 'once' element and gets the conntrack mark, 'rdr_to' says where it really\n"
              "  goes, 'nat_to' the source address it gets there (nat_to_20: from port 20, -r).")

        d4, d6 = daemons
        for family, cmd, d in ((4, "PASV", d4), (4, "EPSV", d4), (4, "PORT", d4), (4, "EPRT", d4),
                               (6, "EPSV", d6), (6, "EPRT", d6)):
            all_ok &= one_transfer(lab, d, family, cmd, workdir, data_sha)

        title("the same through real clients")
        for client, family, cmd, direction in (("curl", 4, "PASV", "get"), ("lftp", 4, "PORT", "put"),
                                               ("lftp", 6, "EPSV", "get"), ("curl", 6, "EPRT", "put")):
            all_ok &= real_client(lab, client, family, cmd, direction, server, workdir, src, data_sha)

        title("conntrack entries of data connections, marked for the firewall's accept line")
        show("\n".join(checks.conntrack_marked(lab, labmod.DEFAULT_MARK)[:6]) or "(none)")

        title("stopping ftp-proxy (SIGTERM)")
        for d in daemons:
            status = d.stop()
            gone = checks.nft_table(lab, *d.table) is None
            print("  %s: exit %s, table %s %s %s" % (" ".join(d.argv()[:1] + ["-%d" % d.family]),
                                                   status, d.table[0], d.table[1],
                                                   "removed" if gone else "STILL THERE"))
            all_ok &= status == 0 and gone
        daemons = []
    finally:
        for d in daemons:
            d.stop()
        if server:
            server.stop()
        procs.stop_all()
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    title("namespaces deleted; %s" % ("every transfer arrived intact" if all_ok
                                       else "SOMETHING FAILED (see above)"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
