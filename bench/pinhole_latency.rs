//! Pinhole install and removal latency of the nftables backend, measured on
//! the code the daemon runs: `Nftables::open` and `Nftables::close`, one
//! atomic netlink batch each, acknowledged by the kernel before they return.
//!
//! Usage (root, inside the network namespace to measure, e.g. the lab's
//! gateway): `pinhole-latency SESSIONS ROUNDS [LISTEN_PORT]`
//!
//! Each round opens one pinhole for each of SESSIONS sessions (so the sets
//! grow to SESSIONS elements, as under load), then replaces every one (a
//! second data command in the same session: one batch removes the old
//! elements and adds the new), then closes them all. Each call is timed with
//! a monotonic clock around the call alone. Half the sessions are passive,
//! half active, as the daemon would see them.
//!
//! Prints one JSON object: for "install", "replace" and "remove", the number
//! of samples and their median, 99th percentile, minimum and maximum in
//! microseconds.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Instant;

use ftp_proxy::filter::nft::{NftConfig, Nftables, DEFAULT_MARK};
use ftp_proxy::filter::Filter;
use ftp_proxy::pinhole::{Pinhole, SessionAddrs};

fn addrs() -> SessionAddrs {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    SessionAddrs {
        client: ip("192.0.2.2"),
        orig: ip("198.51.100.2"),
        server: ip("198.51.100.2"),
        proxy: ip("198.51.100.1"),
    }
}

/// Session i's pinhole; `generation` changes its ports so a replacement
/// really is a different element. Proxy ports stay unique among live ones.
fn pinhole(i: u32, generation: u32, sessions: u32) -> Pinhole {
    let a = addrs();
    let pport = 49152 + ((i + generation * sessions) % 16000) as u16;
    let port = 20000 + ((i * 2 + generation) % 20000) as u16;
    if i % 2 == 0 {
        Pinhole::passive(&a, port, pport)
    } else {
        Pinhole::active(&a, port, pport, false)
    }
}

fn summary(name: &str, mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "\"{name}\": {{\"n\": {}, \"median_us\": {:.2}, \"p99_us\": {:.2}, \"min_us\": {:.2}, \"max_us\": {:.2}}}",
        ns.len(),
        at(0.5),
        at(0.99),
        at(0.0),
        at(1.0)
    )
}

fn timed(f: impl FnOnce() -> std::io::Result<()>) -> Result<u64, String> {
    let t = Instant::now();
    f().map_err(|e| e.to_string())?;
    Ok(t.elapsed().as_nanos() as u64)
}

fn run(sessions: u32, rounds: u32, port: u16) -> Result<String, String> {
    let mut nft = Nftables::new(NftConfig {
        ipv6: false,
        listen_port: port,
        mark: DEFAULT_MARK,
        log: 0,
        priority: None,
    })?;
    let (mut install, mut replace, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        for i in 0..sessions {
            let p = pinhole(i, 0, sessions);
            install.push(timed(|| nft.open(i + 1, &p))?);
        }
        for i in 0..sessions {
            let p = pinhole(i, 1, sessions);
            replace.push(timed(|| nft.open(i + 1, &p))?);
        }
        for i in 0..sessions {
            remove.push(timed(|| nft.close(i + 1))?);
        }
    }
    nft.shutdown().map_err(|e| e.to_string())?;
    Ok(format!(
        "{{{}, {}, {}}}",
        summary("install", install),
        summary("replace", replace),
        summary("remove", remove)
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u32| -> Option<u32> {
        args.get(i).map_or(Some(default), |s| s.parse().ok())
    };
    let (Some(sessions), Some(rounds), Some(port)) = (num(0, 500), num(1, 10), num(2, 9021)) else {
        eprintln!("usage: pinhole-latency SESSIONS ROUNDS [LISTEN_PORT]");
        return ExitCode::from(2);
    };
    if sessions == 0 || sessions > 16000 || rounds == 0 || port == 0 || port > 65535 {
        eprintln!("pinhole-latency: SESSIONS 1..16000, ROUNDS >= 1, LISTEN_PORT 1..65535");
        return ExitCode::from(2);
    }
    match run(sessions, rounds, port as u16) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinhole-latency: {e}");
            ExitCode::FAILURE
        }
    }
}
