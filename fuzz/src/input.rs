//! How a fuzz input becomes a session: a three-byte header (options,
//! addresses, proxy ports) and a stream of byte chunks for either side.
//!
//! The format is hand-made rather than derived with `arbitrary` so that seed
//! inputs stay readable and writable by hand (FTP lines appear verbatim in
//! them) and so that libFuzzer's byte-level mutations map onto meaningful
//! changes: flipping a header bit toggles an option, inserting a marker byte
//! splits a chunk.
//!
//! ```text
//! byte 0  options   bit 0 -A, bit 1 -6, bit 2 -r, bits 3-5 -D level,
//!                   bit 6 -R (the server is not the original destination)
//! byte 1  families  bit 0 client and orig are IPv6, bit 1 server and proxy
//!                   are IPv6 (only with -R; otherwise they follow orig),
//!                   bits 2-5 client/orig/server/proxy given as
//!                   IPv4-mapped IPv6 (::ffff:a.b.c.d) when IPv4, as a
//!                   dual-stack listener reports them
//! byte 2  ports     the first proxy port handed out
//! rest    chunks    0xFF starts a client chunk, 0xFE a server chunk,
//!                   0xFD x is the literal byte x; bytes before the first
//!                   marker are a client chunk
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ftp_proxy::ftp::EngineConfig;
use ftp_proxy::log::Level;
use ftp_proxy::pinhole::SessionAddrs;

/// Starts a chunk for the client side.
pub const TO_CLIENT_SIDE: u8 = 0xFF;
/// Starts a chunk for the server side.
pub const TO_SERVER_SIDE: u8 = 0xFE;
/// Escapes the next byte.
pub const ESCAPE: u8 = 0xFD;

/// Which peer sent a chunk: the engine's own type.
pub use ftp_proxy::ftp::Side;

/// Everything the engine is built from.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub config: EngineConfig,
    pub addrs: SessionAddrs,
    /// The first proxy port the harness hands out.
    pub first_port: u16,
}

/// The `-D` level for a 3-bit value.
pub fn level(bits: u8) -> Level {
    Level::from_number(bits & 7)
}

/// The engine options in the options byte.
pub fn config(options: u8) -> EngineConfig {
    EngineConfig {
        anonymous_only: options & 1 != 0,
        ipv6: options & 2 != 0,
        rfc_mode: options & 4 != 0,
        log_level: level(options >> 3),
    }
}

fn mapped(v4: Ipv4Addr, map: bool) -> IpAddr {
    if map {
        IpAddr::V6(v4.to_ipv6_mapped())
    } else {
        IpAddr::V4(v4)
    }
}

/// The session's addresses. Every role has its own address (documentation
/// prefixes), so a pinhole that swaps two roles, or uses an address named in
/// a peer's line, can never pass for a correct one by coincidence.
pub fn addrs(options: u8, families: u8) -> SessionAddrs {
    let reverse = options & 0x40 != 0;
    let client_v6 = families & 1 != 0;
    let server_v6 = if reverse {
        families & 2 != 0
    } else {
        client_v6
    };
    let pick = |v6: bool, v4: [u8; 4], v6addr: [u16; 8], map: bool| {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(v6addr))
        } else {
            mapped(Ipv4Addr::from(v4), map)
        }
    };
    let client = pick(
        client_v6,
        [10, 0, 0, 2],
        [0x2001, 0xdb8, 1, 0, 0, 0, 0, 2],
        families & 4 != 0,
    );
    let orig = pick(
        client_v6,
        [192, 0, 2, 10],
        [0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10],
        families & 8 != 0,
    );
    let server = if reverse {
        pick(
            server_v6,
            [198, 51, 100, 20],
            [0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x20],
            families & 16 != 0,
        )
    } else {
        orig
    };
    let proxy = pick(
        server_v6,
        [203, 0, 113, 1],
        [0x2001, 0xdb8, 4, 0, 0, 0, 0, 1],
        families & 32 != 0,
    );
    SessionAddrs {
        client,
        orig,
        server,
        proxy,
    }
}

/// Splits off the header (missing bytes count as zero).
pub fn setup(data: &[u8]) -> (Setup, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let setup = Setup {
        config: config(byte(0)),
        addrs: addrs(byte(0), byte(1)),
        first_port: crate::ports::FIRST + u16::from(byte(2)) * 64,
    };
    (setup, data.get(3..).unwrap_or(&[]))
}

/// The chunk stream after the header.
pub fn chunks(data: &[u8]) -> Vec<(Side, Vec<u8>)> {
    let mut chunks: Vec<(Side, Vec<u8>)> = Vec::new();
    let mut current: Option<(Side, Vec<u8>)> = None;
    let mut bytes = data.iter().copied();
    while let Some(b) = bytes.next() {
        let side = match b {
            TO_CLIENT_SIDE => Some(Side::Client),
            TO_SERVER_SIDE => Some(Side::Server),
            _ => None,
        };
        match side {
            Some(side) => chunks.extend(current.replace((side, Vec::new()))),
            None => {
                let b = if b == ESCAPE {
                    match bytes.next() {
                        Some(x) => x,
                        None => break,
                    }
                } else {
                    b
                };
                current
                    .get_or_insert_with(|| (Side::Client, Vec::new()))
                    .1
                    .push(b);
            }
        }
    }
    chunks.extend(current);
    chunks
}

/// The inverse of [`setup`] and [`chunks`], for writing seeds.
pub fn encode(header: [u8; 3], chunks: &[(Side, &[u8])]) -> Vec<u8> {
    let mut out = header.to_vec();
    for (side, bytes) in chunks {
        out.push(match side {
            Side::Client => TO_CLIENT_SIDE,
            Side::Server => TO_SERVER_SIDE,
        });
        for &b in *bytes {
            if matches!(b, ESCAPE | TO_SERVER_SIDE | TO_CLIENT_SIDE) {
                out.push(ESCAPE);
            }
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode() {
        let chunks_in: [(Side, &[u8]); 4] = [
            (Side::Server, b"220 ready\r\n"),
            (Side::Client, b""),
            (Side::Client, b"\xff\xfe\xfd PASV\r\n"),
            (Side::Server, b"227 x\r\n"),
        ];
        let data = encode([1, 2, 3], &chunks_in);
        let (setup, rest) = setup(&data);
        assert!(setup.config.anonymous_only);
        let decoded = chunks(rest);
        let expected: Vec<(Side, Vec<u8>)> =
            chunks_in.iter().map(|(s, b)| (*s, b.to_vec())).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn bytes_before_a_marker_go_to_the_client() {
        assert_eq!(
            chunks(b"USER ftp\r\n\xfe220\r\n"),
            vec![
                (Side::Client, b"USER ftp\r\n".to_vec()),
                (Side::Server, b"220\r\n".to_vec())
            ]
        );
    }
}
