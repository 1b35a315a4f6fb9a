//! The byte-exact lines the proxy sends in place of the peers' lines (the
//! templates of OpenBSD ftp-proxy.c's `allow_data_connection`), its own
//! `-A` answer, and the 421 lines of its refusals (listed in ftp-proxy(8)).
//!
//! The templates are the original's: the peer's wording is dropped, the
//! keyword is uppercase, and in PORT and 227 every `.` of the whole line
//! becomes `,` (harmless: the templates have no other dots). The port is
//! split into `port / 256` and `port % 256`.

use std::net::IpAddr;

use super::Refusal;

/// What the proxy answers under `-A` to a `U` line other than
/// `USER ftp` / `USER anonymous` (ftp-proxy.c's `client_parse_anon`).
pub const ANONYMOUS_ONLY: &[u8] = b"500 Only anonymous FTP allowed\r\n";

/// `PORT a,b,c,d,hi,lo\r\n`, sent to the server: `address` is the proxy's
/// own address toward the server.
pub fn port_command(address: IpAddr, port: u16) -> Vec<u8> {
    dots_to_commas(format!("PORT {address},{},{}\r\n", port / 256, port % 256))
}

/// `EPRT |1|a.b.c.d|port|\r\n` or `EPRT |2|v6|port|\r\n`, sent to the
/// server: the family is the proxy's, whatever the client sent.
pub fn eprt_command(address: IpAddr, port: u16) -> Vec<u8> {
    let family = match address {
        IpAddr::V4(_) => 1,
        IpAddr::V6(_) => 2,
    };
    format!("EPRT |{family}|{address}|{port}|\r\n").into_bytes()
}

/// `227 Entering Passive Mode (a,b,c,d,hi,lo)\r\n`, sent to the client:
/// `address` is the original destination the client believes it talks to,
/// never the proxy's or the `-R` server's: the client may only reach that
/// address, and its firewall may check that the data connection goes there.
pub fn passive_reply(address: IpAddr, port: u16) -> Vec<u8> {
    dots_to_commas(format!(
        "227 Entering Passive Mode ({address},{},{})\r\n",
        port / 256,
        port % 256
    ))
}

/// `229 Entering Extended Passive Mode (|||port|)\r\n`, sent to the client.
pub fn extended_passive_reply(port: u16) -> Vec<u8> {
    format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").into_bytes()
}

fn dots_to_commas(line: String) -> Vec<u8> {
    line.replace('.', ",").into_bytes()
}

/// The `421 …\r\n` line the client gets before the proxy closes a session,
/// where the original closed in silence. One line, so every FTP client shows
/// the reason.
pub fn refusal(why: Refusal) -> &'static [u8] {
    match why {
        Refusal::SessionLimit => b"421 Too many sessions through this proxy, try again later.\r\n",
        Refusal::NoDescriptors => b"421 Proxy out of file descriptors, try again later.\r\n",
        Refusal::ClientLine => b"421 Command line too long or not clean.\r\n",
        Refusal::ServerLine => b"421 Server reply too long or not clean.\r\n",
        Refusal::BadPort => b"421 Data port below 1024 refused.\r\n",
        Refusal::Ipv6PasvPort => b"421 PASV and PORT not allowed with IPv6, use EPSV or EPRT.\r\n",
        Refusal::Pinhole => b"421 Cannot open the data connection in the firewall.\r\n",
        Refusal::ServerUnreachable => b"421 Cannot connect to the FTP server.\r\n",
        Refusal::ServerTimeout => b"421 The FTP server did not answer in time.\r\n",
        Refusal::ClientTimeout => b"421 Idle timeout, closing the control connection.\r\n",
        Refusal::ServerIdle => b"421 The FTP server went idle, closing the control connection.\r\n",
        Refusal::NotRedirected => b"421 Connection was not redirected to an FTP server.\r\n",
        Refusal::Shutdown => b"421 Proxy shutting down.\r\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn port_line() {
        assert_eq!(
            port_command(ip("192.0.2.1"), 50000),
            b"PORT 192,0,2,1,195,80\r\n"
        );
        assert_eq!(port_command(ip("10.0.0.1"), 1024), b"PORT 10,0,0,1,4,0\r\n");
        assert_eq!(
            port_command(ip("10.0.0.1"), 65535),
            b"PORT 10,0,0,1,255,255\r\n"
        );
        assert_eq!(
            port_command(ip("10.0.0.1"), 255),
            b"PORT 10,0,0,1,0,255\r\n"
        );
        assert_eq!(port_command(ip("10.0.0.1"), 256), b"PORT 10,0,0,1,1,0\r\n");
    }

    #[test]
    fn passive_line() {
        assert_eq!(
            passive_reply(ip("192.0.2.10"), 49152),
            b"227 Entering Passive Mode (192,0,2,10,192,0)\r\n"
        );
        assert_eq!(
            passive_reply(ip("198.51.100.7"), 65534),
            b"227 Entering Passive Mode (198,51,100,7,255,254)\r\n"
        );
    }

    #[test]
    fn eprt_lines_follow_the_address_family() {
        assert_eq!(
            eprt_command(ip("192.0.2.1"), 50000),
            b"EPRT |1|192.0.2.1|50000|\r\n"
        );
        assert_eq!(
            eprt_command(ip("2001:db8::1"), 50000),
            b"EPRT |2|2001:db8::1|50000|\r\n"
        );
        assert_eq!(
            eprt_command(ip("2001:DB8:0:0:0:0:0:AB"), 49152),
            b"EPRT |2|2001:db8::ab|49152|\r\n"
        );
    }

    #[test]
    fn extended_passive_line() {
        assert_eq!(
            extended_passive_reply(55555),
            b"229 Entering Extended Passive Mode (|||55555|)\r\n"
        );
    }

    #[test]
    fn anonymous_only_answer() {
        assert_eq!(ANONYMOUS_ONLY, b"500 Only anonymous FTP allowed\r\n");
    }

    #[test]
    fn every_refusal_is_one_421_line() {
        for why in Refusal::ALL {
            let line = refusal(why);
            assert!(line.starts_with(b"421 "), "{why:?}");
            assert!(line.ends_with(b".\r\n"), "{why:?}");
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(line.len() <= 80, "{why:?}");
        }
        assert_eq!(
            refusal(Refusal::SessionLimit),
            b"421 Too many sessions through this proxy, try again later.\r\n"
        );
        assert_eq!(
            refusal(Refusal::BadPort),
            b"421 Data port below 1024 refused.\r\n"
        );
        assert_eq!(
            refusal(Refusal::Ipv6PasvPort),
            b"421 PASV and PORT not allowed with IPv6, use EPSV or EPRT.\r\n"
        );
        assert_eq!(
            refusal(Refusal::ClientLine),
            b"421 Command line too long or not clean.\r\n"
        );
        assert_eq!(
            refusal(Refusal::Pinhole),
            b"421 Cannot open the data connection in the firewall.\r\n"
        );
        assert_eq!(refusal(Refusal::Shutdown), b"421 Proxy shutting down.\r\n");
    }
}
