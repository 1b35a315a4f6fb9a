//! The seed corpus, written out as code so every seed says what it is.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml -- --ignored write_seed_corpus`
//! rewrites `fuzz/corpus/<target>/<name>`; `seeds_are_committed` fails when
//! a seed here is missing from (or differs in) the committed corpus.

use std::fs;
use std::path::PathBuf;

use ftp_proxy_fuzz::input::{encode, Side};

use Side::{Client as C, Server as S};

/// Option bits of the header's first byte.
const A: u8 = 1;
const SIX: u8 = 2;
const R: u8 = 4;
const DEBUG: u8 = 7 << 3;
const REVERSE: u8 = 0x40;
/// Family bits of the second byte.
const CLIENT_V6: u8 = 1;
const SERVER_V6: u8 = 2;
const CLIENT_MAPPED: u8 = 4 | 8;

const BANNER: &[u8] = b"220 ready\r\n";
const PASV_227: &[u8] = b"227 Entering Passive Mode (192,0,2,10,195,80)\r\n";

fn session(opts: u8, fam: u8, chunks: &[(Side, &[u8])]) -> Vec<u8> {
    encode([opts, fam, 7], chunks)
}

fn line(head: &[u8], line: &[u8]) -> Vec<u8> {
    let mut v = head.to_vec();
    v.extend_from_slice(line);
    v
}

fn session_seeds() -> Seeds {
    let long = [b'A'; 600];
    let mut line_500 = vec![b'N'; 498];
    line_500.extend_from_slice(b"\r\n");
    vec![
        (
            "passive-v4",
            session(
                DEBUG,
                0,
                &[
                    (S, BANNER),
                    (C, b"USER ftp\r\n"),
                    (S, b"331 Password\r\n"),
                    (C, b"PASS x@\r\n"),
                    (S, b"230 Logged in\r\n"),
                    (C, b"PASV\r\n"),
                    (S, PASV_227),
                    (C, b"RETR f\r\n"),
                    (S, b"150 Opening\r\n226 Done\r\n"),
                    (C, b"QUIT\r\n"),
                    (S, b"221 Bye\r\n"),
                ],
            ),
        ),
        (
            "active-port-v4",
            session(
                DEBUG,
                0,
                &[
                    (S, BANNER),
                    (C, b"PORT 10,0,0,2,4,1\r\n"),
                    (S, b"200 PORT ok\r\n"),
                    (C, b"LIST\r\n"),
                ],
            ),
        ),
        (
            "active-port-rfc",
            session(R, 0, &[(S, BANNER), (C, b"PORT 10,0,0,2,4,1\r\n")]),
        ),
        (
            "eprt-epsv-v4",
            session(
                0,
                0,
                &[
                    (S, BANNER),
                    (C, b"EPRT |1|10.0.0.2|5000|\r\n"),
                    (S, b"200 ok\r\n"),
                    (C, b"EPSV\r\n"),
                    (S, b"229 Entering Extended Passive Mode (|||50000|)\r\n"),
                ],
            ),
        ),
        (
            "eprt-epsv-v6",
            session(
                SIX | DEBUG,
                CLIENT_V6,
                &[
                    (S, BANNER),
                    (C, b"EPRT |2|2001:db8:1::2|5000|\r\n"),
                    (S, b"200 ok\r\n"),
                    (C, b"EPSV\r\n"),
                    (S, b"229 Extended Passive (|||50000|)\r\n"),
                ],
            ),
        ),
        (
            "reverse-v4-to-v6",
            session(
                REVERSE,
                SERVER_V6,
                &[
                    (S, BANNER),
                    (C, b"EPRT |1|10.0.0.2|5000|\r\n"),
                    (C, b"PASV\r\n"),
                    (S, PASV_227),
                ],
            ),
        ),
        (
            "mapped-client",
            session(
                0,
                CLIENT_MAPPED,
                &[(S, BANNER), (C, b"PASV\r\n"), (S, PASV_227)],
            ),
        ),
        (
            "ipv6-pasv",
            session(SIX, CLIENT_V6, &[(S, BANNER), (C, b"PASV\r\n")]),
        ),
        (
            "ipv6-port",
            session(
                SIX,
                CLIENT_V6,
                &[(S, BANNER), (C, b"PORT 10,0,0,2,4,1\r\n")],
            ),
        ),
        (
            "anonymous-only",
            session(
                A,
                0,
                &[
                    (S, BANNER),
                    (C, b"USER root\r\n"),
                    (C, b"user ftp\n"),
                    (C, b"USER anonymous\r\n"),
                    (S, b"331 ok\r\n"),
                ],
            ),
        ),
        (
            "multiline-227",
            session(
                0,
                0,
                &[
                    (S, BANNER),
                    (C, b"PASV\r\n"),
                    (
                        S,
                        b"227-Entering Passive Mode (192,0,2,10,195,80)\r\n227 OK\r\n",
                    ),
                    (C, b"PASV\r\n"),
                    (S, b"227-Here it comes\r\n"),
                    (S, PASV_227),
                ],
            ),
        ),
        (
            "pipelined-pasv-noop",
            session(
                0,
                0,
                &[
                    (S, BANNER),
                    (C, b"PASV\r\nNOOP\r\n"),
                    (S, PASV_227),
                    (S, b"200 NOOP ok\r\n"),
                ],
            ),
        ),
        (
            "split-lines",
            session(
                0,
                0,
                &[
                    (S, b"22"),
                    (S, b"0 re"),
                    (S, b"ady\r\n"),
                    (C, b"PA"),
                    (C, b"SV\r"),
                    (C, b"\n"),
                    (S, b"227 Entering Passive Mode (192,0,2,10,"),
                    (S, b"195,80)\r\n"),
                ],
            ),
        ),
        (
            "third-party-port",
            session(0, 0, &[(S, BANNER), (C, b"PORT 8,8,8,8,4,1\r\n")]),
        ),
        (
            "port-21",
            session(0, 0, &[(S, BANNER), (C, b"PORT 10,0,0,2,0,21\r\n")]),
        ),
        (
            "port-tab-third-party",
            session(0, 0, &[(S, BANNER), (C, b"port\t8,8,8,8,0,22\r\n")]),
        ),
        (
            "eprt-port-wraps",
            session(0, 0, &[(S, BANNER), (C, b"EPRT |1|10.0.0.2|66560|\r\n")]),
        ),
        (
            "227-other-host-port-22",
            session(
                0,
                0,
                &[
                    (S, BANNER),
                    (C, b"PASV\r\n"),
                    (S, b"227 Entering Passive Mode (8,8,8,8,0,22)\r\n"),
                ],
            ),
        ),
        (
            "unsolicited-227",
            session(0, 0, &[(S, BANNER), (S, PASV_227), (C, b"NOOP\r\n")]),
        ),
        ("overlong-client", session(0, 0, &[(S, BANNER), (C, &long)])),
        (
            "line-500",
            session(0, 0, &[(S, BANNER), (C, &line_500), (S, &line_500)]),
        ),
        (
            "nul-client",
            session(0, 0, &[(S, BANNER), (C, b"NOOP\0PORT 8,8,8,8,0,22\r\n")]),
        ),
        ("nul-server", session(0, 0, &[(S, b"220 \0ready\r\n")])),
        (
            "no-lf",
            session(0, 0, &[(S, BANNER), (C, b"PASV"), (S, PASV_227)]),
        ),
    ]
}

fn client_seeds() -> Seeds {
    let h = [0u8, 0];
    let v6 = [0u8, CLIENT_V6 | SERVER_V6];
    let mut long = b"PORT ".to_vec();
    long.extend_from_slice(&[b'1'; 600]);
    vec![
        ("port", line(&h, b"PORT 10,0,0,2,4,1\r\n")),
        ("port-lower", line(&h, b"port 10,0,0,2,195,80\r\n")),
        ("port-tab", line(&h, b"PORT\t10,0,0,2,4,1\r\n")),
        // Found by this target: EPRT and a tab reach the server as they are.
        ("crash-eprt-tab", line(&[0xff, 0x03], b"EPRT\t\r\n")),
        ("port-spaces", line(&h, b"PORT 10, 0, 0, 2, 4, 1\r\n")),
        ("port-trailing-blank", line(&h, b"PORT 10,0,0,2,4,1 \r\n")),
        ("port-third-party", line(&h, b"PORT 8,8,8,8,4,1\r\n")),
        ("port-21", line(&h, b"PORT 10,0,0,2,0,21\r\n")),
        ("port-hi-300", line(&h, b"PORT 10,0,0,2,300,5\r\n")),
        ("port-rfc", line(&[R, 0], b"PORT 10,0,0,2,4,1\r\n")),
        ("port-ipv6-mode", line(&[SIX, 0], b"PORT 10,0,0,2,4,1\r\n")),
        ("eprt-v4", line(&h, b"EPRT |1|10.0.0.2|5000|\r\n")),
        ("eprt-v6", line(&v6, b"EPRT |2|2001:db8:1::2|5000|\r\n")),
        (
            "eprt-v1-in-v6",
            line(&[SIX, 3], b"EPRT |1|10.0.0.2|5000|\r\n"),
        ),
        (
            "eprt-mapped",
            line(&v6, b"EPRT |2|::ffff:10.0.0.2|5000|\r\n"),
        ),
        ("eprt-family-3", line(&h, b"EPRT |3|x|5000|\r\n")),
        ("eprt-66560", line(&h, b"EPRT |1|10.0.0.2|66560|\r\n")),
        ("eprt-other-delim", line(&h, b"EPRT !1!10.0.0.2!5000!\r\n")),
        ("pasv", line(&h, b"PASV\r\n")),
        ("pasv-ipv6-mode", line(&[SIX, 1], b"pasv\r\n")),
        ("epsv-all", line(&h, b"EPSV ALL\r\n")),
        ("user-anonymous", line(&[A, 0], b"USER anonymous\r\n")),
        ("user-root", line(&[A, 0], b"USER root\r\n")),
        ("user-lf", line(&[A, 0], b"USER ftp\n")),
        ("retr", line(&h, b"RETR file.txt\r\n")),
        ("nul", line(&h, b"PORT 10,0,0,2,4,1\0\r\n")),
        ("overlong", line(&h, &long)),
        ("short", line(&h, b"P\r\n")),
    ]
}

fn server_seeds() -> Seeds {
    let pasv = [0u8, 0, 0];
    let epsv = [0u8, 0, 1];
    vec![
        ("227", line(&pasv, PASV_227)),
        (
            "227-trailing-text",
            line(
                &pasv,
                b"227 Entering Passive Mode (192,0,2,10,195,80). OK\r\n",
            ),
        ),
        (
            "227-no-parens",
            line(&pasv, b"227 Entering Passive Mode 192,0,2,10,195,80\r\n"),
        ),
        (
            "227-other-host",
            line(&pasv, b"227 Entering Passive Mode (8,8,8,8,195,80)\r\n"),
        ),
        (
            "227-port-22",
            line(&pasv, b"227 Entering Passive Mode (192,0,2,10,0,22)\r\n"),
        ),
        (
            "227-hi-300",
            line(&pasv, b"227 Entering Passive Mode (192,0,2,10,300,80)\r\n"),
        ),
        (
            "227-multiline",
            line(
                &pasv,
                b"227-Entering Passive Mode (192,0,2,10,195,80)\r\n227 OK\r\n",
            ),
        ),
        (
            "227-multiline-last",
            line(
                &pasv,
                b"227-Here\r\n 227 note\r\n227 Entering Passive Mode (192,0,2,10,195,80)\r\n",
            ),
        ),
        ("227-to-epsv", line(&epsv, PASV_227)),
        ("227-v6-orig", line(&[0, CLIENT_V6, 0], PASV_227)),
        (
            "229",
            line(&epsv, b"229 Entering Extended Passive Mode (|||50000|)\r\n"),
        ),
        (
            "229-port-0",
            line(&epsv, b"229 Entering Extended Passive Mode (|||0|)\r\n"),
        ),
        (
            "229-70000",
            line(&epsv, b"229 Entering Extended Passive Mode (|||70000|)\r\n"),
        ),
        (
            "229-other-delim",
            line(&epsv, b"229 Entering Extended Passive Mode (!!!5000!)\r\n"),
        ),
        (
            "229-v6",
            line(
                &[SIX, 3, 1],
                b"229 Entering Extended Passive Mode (|||50000|)\r\n",
            ),
        ),
        ("500", line(&pasv, b"500 Not understood\r\n")),
        (
            "150-then-227",
            line(
                &pasv,
                b"150 wait\r\n227 Entering Passive Mode (192,0,2,10,195,80)\r\n",
            ),
        ),
        (
            "nul",
            line(
                &pasv,
                b"227 Entering Passive Mode (192,0,2,10,195,80)\0\r\n",
            ),
        ),
    ]
}

fn framing_seeds() -> Seeds {
    let mut line_500 = vec![b'x'; 499];
    line_500.push(b'\n');
    let long = [b'y'; 500];
    let dribble: Vec<(Side, &[u8])> = b"NOOP\r\nSTAT\r\n".chunks(1).map(|c| (C, c)).collect();
    vec![
        (
            "both-sides",
            session(
                0,
                0,
                &[
                    (S, BANNER),
                    (C, b"NOOP\r\nSYST\r\n"),
                    (S, b"200 ok\r\n215 UNIX\r\n"),
                ],
            ),
        ),
        ("line-500", session(0, 0, &[(C, &line_500), (S, &line_500)])),
        ("overlong-client", session(0, 0, &[(C, &long)])),
        ("overlong-server", session(0, 0, &[(S, BANNER), (S, &long)])),
        (
            "nul-partial",
            session(0, 0, &[(C, b"NO\0"), (C, b"OP\r\n")]),
        ),
        ("cr-and-bare-lf", session(0, 0, &[(C, b"\r\n\n\rX\r\r\n")])),
        ("dribble", session(0, 0, &dribble)),
        (
            "empty-chunks",
            session(0, 0, &[(C, b""), (S, b""), (C, b"NOOP\r\n")]),
        ),
    ]
}

/// Named seed inputs of one target.
type Seeds = Vec<(&'static str, Vec<u8>)>;

fn all() -> Vec<(&'static str, Seeds)> {
    vec![
        ("session", session_seeds()),
        ("client_command", client_seeds()),
        ("server_reply", server_seeds()),
        ("line_framing", framing_seeds()),
    ]
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
#[ignore = "writes fuzz/corpus"]
fn write_seed_corpus() {
    for (target, seeds) in all() {
        let dir = corpus().join(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            fs::write(dir.join(name), data).unwrap();
        }
    }
}

#[test]
fn seeds_are_committed() {
    for (target, seeds) in all() {
        for (name, data) in seeds {
            let path = corpus().join(target).join(name);
            let committed = fs::read(&path).unwrap_or_default();
            assert!(
                committed == data,
                "{} is missing or stale: run the write_seed_corpus test",
                path.display()
            );
        }
    }
}
