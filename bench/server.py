"""The FTP server side of the benchmark: the lab's vsftpd and the files.

vsftpd, because the lab notes' reference figures are for it and it sends
files with sendfile(2), so the server is no bottleneck for the data path.
The lab's configuration already has isolate=NO and isolate_network=NO (a
namespace clone per session would dominate the small-session figures);
here only the per-address and total client limits are raised, since every
session of a proxied or masqueraded set-up comes from the gateway's one
address and the 500-session figures need 500 of them at once.

The large file is random bytes, made once and kept in a cache directory
between runs (with its sha256 beside it), and hard-linked into each
server's directory, so making it costs nothing after the first run and the
sha check of what arrived means something.
"""

import hashlib
import os

from ftplab import servers

CACHE = os.environ.get("FTP_PROXY_BENCH_CACHE", "/var/tmp/ftp-proxy-bench")
SMALL = bytes(range(256)) * 4


class BenchVsftpd(servers.Vsftpd):
    def argv(self):
        argv = super().argv()
        with open(argv[-1], "a") as f:
            f.write("max_clients=2000\nmax_per_ip=0\n")
        return argv


def big_file(size):
    """(path, sha256) of a random file of size bytes in the cache, made if
    missing or wrong. Written in 4 MiB blocks: never held in memory whole."""
    os.makedirs(CACHE, exist_ok=True)
    os.chmod(CACHE, 0o755)
    path = os.path.join(CACHE, "random-%d.bin" % size)
    sha_path = path + ".sha256"
    if os.path.exists(path) and os.path.getsize(path) == size and os.path.exists(sha_path):
        with open(sha_path) as f:
            return path, f.read().strip()
    h = hashlib.sha256()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 << 20))
            h.update(block)
            f.write(block)
            left -= len(block)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    with open(sha_path, "w") as f:
        f.write(h.hexdigest() + "\n")
    return path, h.hexdigest()


def start(lab, workdir, big_path, big_name, small_name):
    """A vsftpd in the lab's server namespace serving small_name (1 KiB)
    and big_name (a hard link to big_path, or a copy across file systems)."""
    srv = BenchVsftpd(lab, workdir, {small_name: SMALL})
    target = os.path.join(srv.root, big_name)
    try:
        os.link(big_path, target)
    except OSError:
        import shutil
        shutil.copyfile(big_path, target)
        os.chmod(target, 0o644)
    return srv.start()
