//! The nftables backend against the kernel: the table it creates and the
//! elements each pinhole adds, inspected with nft(8). Root only, each test in
//! its own network namespace.

mod nft_netns;

use ftp_proxy::filter::nft::{NftConfig, Nftables, DEFAULT_MARK};
use ftp_proxy::filter::Filter;
use nft_netns::Netns;

const ROOT: &str = "needs root and a private network namespace: run by make regress";

fn config(ipv6: bool) -> NftConfig {
    NftConfig {
        ipv6,
        listen_port: 8021,
        mark: DEFAULT_MARK,
        log: 0,
        priority: None,
    }
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn smoke() {
    let _ = ROOT;
    let ns = Netns::new("smoke");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    println!("{}", ns.nft(&["list", "table", "ip", "ftp-proxy-8021"]));
    nft.shutdown().unwrap();
}
