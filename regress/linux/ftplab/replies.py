"""The 421 replies the daemon sends before it closes a session, byte for
byte, as the cases expect them (the daemon's own list is `refusal` in
src/ftp/rewrite.rs). One place, so that a changed text is changed once."""

SESSION_LIMIT = b"421 Too many sessions through this proxy, try again later.\r\n"
CLIENT_LINE = b"421 Command line too long or not clean.\r\n"
SERVER_LINE = b"421 Server reply too long or not clean.\r\n"
BAD_PORT = b"421 Data port below 1024 refused.\r\n"
V6_PASV_PORT = b"421 PASV and PORT not allowed with IPv6, use EPSV or EPRT.\r\n"
SERVER_TIMEOUT = b"421 The FTP server did not answer in time.\r\n"
CLIENT_IDLE = b"421 Idle timeout, closing the control connection.\r\n"
SERVER_IDLE = b"421 The FTP server went idle, closing the control connection.\r\n"
SHUTDOWN = b"421 Proxy shutting down.\r\n"
FD_EXHAUSTED = b"421 Proxy out of file descriptors, try again later.\r\n"
