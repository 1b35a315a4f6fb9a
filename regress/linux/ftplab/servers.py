"""Real FTP servers in the server namespace, each with its own configuration.

Each server serves one directory to anonymous users: the download files at
its top, and a world-writable "upload" directory. It listens on port 21 on
every address of the server namespace, IPv4 and IPv6.

Debian's FTP servers conflict as packages: vsftpd is installed normally,
proftpd-core and pure-ftpd are unpacked with dpkg -x into PKG_ROOT by
install-deps.sh and run from there.
"""

import hashlib
import os
import pwd
import shutil

from . import lab
from . import procs

PKG_DIR = os.environ.get("FTP_PROXY_REGRESS_PKGS", "/var/tmp/ftp-proxy-regress/pkgs")
PKG_ROOT = os.path.join(PKG_DIR, "root")
ALL = ("vsftpd", "proftpd", "pure-ftpd")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Server:
    name = None

    def __init__(self, lab, workdir, files):
        """files: {name: bytes} placed in the top directory for download."""
        self.lab = lab
        self.dir = os.path.join(workdir, self.name)
        self.root = os.path.join(self.dir, "root")
        self.upload_dir = os.path.join(self.root, "upload")
        os.makedirs(self.upload_dir)
        os.chmod(workdir, 0o755)   # the servers' unprivileged users must get in
        os.chmod(self.dir, 0o755)
        os.chmod(self.root, 0o755)
        os.chmod(self.upload_dir, 0o777)
        for fname, data in files.items():
            path = os.path.join(self.root, fname)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)
        self.proc = None

    @classmethod
    def available(cls):
        return os.path.exists(cls.binary())

    @classmethod
    def binary(cls):
        raise NotImplementedError

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.proc = procs.Background(self.name, self.argv(), ns=self.lab.server,
                                     log_path=os.path.join(self.dir, "stderr.log"))
        wait_listening(self.name, self.proc, 21, 10)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def uploaded(self, name):
        return os.path.join(self.upload_dir, name)


def wait_listening(name, proc, port, timeout, log_tail=lambda: ""):
    """Waits (at most timeout seconds) until proc listens on port, or has
    died; raises RuntimeError with its log when it does not listen."""
    try:
        procs.wait_for(lambda: listening(proc.pid, port) or not proc.alive(), timeout,
                       what="%s listening on port %d" % (name, port))
    except TimeoutError:
        pass
    if not (proc.alive() and listening(proc.pid, port)):
        raise RuntimeError("%s did not start: %s %s" % (name, proc.log_tail(), log_tail()))


def listening(pid, port):
    """True when the network namespace of pid has a TCP socket listening on port."""
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except (FileNotFoundError, ProcessLookupError):
            return False
    return False


class Vsftpd(Server):
    name = "vsftpd"

    @classmethod
    def binary(cls):
        return shutil.which("vsftpd") or "/usr/sbin/vsftpd"

    def argv(self):
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty, exist_ok=True)
        os.chmod(empty, 0o755)
        conf = os.path.join(self.dir, "vsftpd.conf")
        with open(conf, "w") as f:
            f.write("""\
listen=NO
listen_ipv6=YES
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=%(root)s
write_enable=YES
anon_upload_enable=YES
anon_umask=022
connect_from_port_20=NO
pasv_enable=YES
port_enable=YES
isolate=NO
isolate_network=NO
seccomp_sandbox=NO
secure_chroot_dir=%(empty)s
ftp_username=ftp
xferlog_enable=NO
log_ftp_protocol=YES
vsftpd_log_file=%(dir)s/vsftpd.log
dual_log_enable=NO
syslog_enable=NO
idle_session_timeout=120
data_connection_timeout=60
""" % {"root": self.root, "empty": empty, "dir": self.dir})
        return [self.binary(), conf]


class Proftpd(Server):
    name = "proftpd"

    @classmethod
    def binary(cls):
        return os.path.join(PKG_ROOT, "usr/sbin/proftpd")

    def argv(self):
        conf = os.path.join(self.dir, "proftpd.conf")
        with open(conf, "w") as f:
            f.write("""\
ServerName "regress"
ServerType standalone
DefaultServer on
Port 21
UseIPv6 on
DefaultAddress %(server4)s
SocketBindTight off
UseReverseDNS off
User nobody
Group nogroup
Umask 022
MaxInstances 30
PidFile %(dir)s/proftpd.pid
ScoreboardFile %(dir)s/proftpd.scoreboard
DelayTable none
WtmpLog off
TransferLog none
SystemLog %(dir)s/proftpd.log
AuthPAM off
AuthOrder mod_auth_unix.c
AllowOverwrite on
TimeoutIdle 120
<IfModule mod_ctrls.c>
  ControlsEngine off
</IfModule>
<Anonymous %(root)s>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  RequireValidShell off
  MaxClients 30
</Anonymous>
""" % {"dir": self.dir, "root": self.root, "server4": lab.SERVER4})
        return [self.binary(), "-n", "-q", "-c", conf]


class PureFtpd(Server):
    """pure-ftpd serves the home directory of the system account "ftp" to
    anonymous users; it runs in a private mount namespace in which its own
    directory is bind-mounted over that home."""
    name = "pure-ftpd"

    @classmethod
    def binary(cls):
        return os.path.join(PKG_ROOT, "usr/sbin/pure-ftpd")

    @classmethod
    def available(cls):
        try:
            home = pwd.getpwnam("ftp").pw_dir
        except KeyError:
            return False
        return os.path.exists(cls.binary()) and os.path.isdir(home)

    def argv(self):
        home = pwd.getpwnam("ftp").pw_dir
        # unshare without --fork execs sh, which execs pure-ftpd: one PID.
        script = 'mount --make-rprivate / && mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "-m", "sh", "-c", script, "sh", self.root, home,
                self.binary(), "-S", ",21", "-e", "-H", "-M", "-U", "133:022",
                "-O", "clf:%s/transfer.log" % self.dir, "-c", "30", "-C", "30"]


CLASSES = {"vsftpd": Vsftpd, "proftpd": Proftpd, "pure-ftpd": PureFtpd}


def available(name):
    return CLASSES[name].available()


def make(name, lab, workdir, files):
    return CLASSES[name](lab, workdir, files)
