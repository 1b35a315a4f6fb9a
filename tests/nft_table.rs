//! The nftables backend against the kernel: the table it creates and the
//! elements each pinhole adds, inspected with nft(8). Root only; every test
//! works in network namespaces of its own, never on the host's ruleset.

mod nft_netns;

use std::time::{Duration, Instant};

use ftp_proxy::filter::nft::{NftConfig, Nftables, DEFAULT_MARK};
use ftp_proxy::filter::Filter;
use ftp_proxy::pinhole::{Pinhole, SessionAddrs};
use nft_netns::Netns;

fn config(ipv6: bool) -> NftConfig {
    NftConfig {
        ipv6,
        listen_port: 8021,
        mark: DEFAULT_MARK,
        log: 0,
        priority: None,
    }
}

fn v4() -> SessionAddrs {
    SessionAddrs {
        client: "198.51.100.2".parse().unwrap(),
        orig: "203.0.113.5".parse().unwrap(),
        server: "192.0.2.10".parse().unwrap(),
        proxy: "192.0.2.1".parse().unwrap(),
    }
}

fn v6() -> SessionAddrs {
    SessionAddrs {
        client: "2001:db8:1::2".parse().unwrap(),
        orig: "2001:db8:3::5".parse().unwrap(),
        server: "2001:db8:2::10".parse().unwrap(),
        proxy: "2001:db8:2::1".parse().unwrap(),
    }
}

/// `nft list table`, without the owner's process name nft appends to the
/// first line (it depends on the test binary's name).
fn listed(ns: &Netns, family: &str, port: u16) -> String {
    let text = ns.nft(&["list", "table", family, &format!("ftp-proxy-{port}")]);
    let (first, rest) = text.split_once('\n').unwrap();
    let first = first.split(" # progname").next().unwrap();
    format!("{first}\n{rest}")
}

/// The table as nft 1.0.6 prints it; `forward` is the forward chain's rule.
fn expected(ipv6: bool, mark: &str, log_first: bool, forward: Option<&str>) -> String {
    let (ip, addr) = if ipv6 {
        ("ip6", "ipv6_addr")
    } else {
        ("ip", "ipv4_addr")
    };
    let key = format!("{addr} . {addr} . inet_service");
    let log = if log_first {
        "log prefix \"ftp-proxy: \" "
    } else {
        ""
    };
    let mut t = format!(
        "table {ip} ftp-proxy-8021 {{
\tflags owner

\tset once {{
\t\ttype {key}
\t\tsize 65535
\t\tflags dynamic,timeout
\t}}

\tmap rdr_to {{
\t\ttype {key} : {addr} . inet_service
\t\tflags timeout
\t}}

\tmap nat_to {{
\t\ttype {key} : {addr}
\t\tflags timeout
\t}}

\tmap nat_to_20 {{
\t\ttype {key} : {addr}
\t\tflags timeout
\t}}

\tchain prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp flags syn / fin,syn,rst,ack {ip} saddr . {ip} daddr . tcp dport @once delete @once {{ {ip} saddr . {ip} daddr . tcp dport }} {log}ct mark set {mark} dnat {ip} to {ip} saddr . {ip} daddr . tcp dport map @rdr_to
\t}}

\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta l4proto tcp ct status dnat snat to ct original {ip} saddr . ct original {ip} daddr . ct original proto-dst map @nat_to:50001-65535
\t\tmeta l4proto tcp ct status dnat snat to ct original {ip} saddr . ct original {ip} daddr . ct original proto-dst map @nat_to_20:20
\t}}
"
    );
    if let Some(rule) = forward {
        t.push_str(&format!(
            "
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
\t\t{rule}
\t}}
"
        ));
    }
    t.push_str("}\n");
    t
}

/// Creates the backend's table with `cfg` in a fresh namespace and checks
/// that `nft list table` prints `want`.
fn assert_table(ns_name: &str, cfg: NftConfig, want: String) {
    let ns = Netns::new(ns_name);
    let family = if cfg.ipv6 { "ip6" } else { "ip" };
    let _nft = ns.run(|| Nftables::new(cfg)).unwrap();
    assert_eq!(listed(&ns, family, 8021), want);
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_ipv4_default() {
    assert_table(
        "t4",
        config(false),
        expected(false, "0x00667470", false, None),
    );
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_ipv6_default() {
    assert_table(
        "t6",
        config(true),
        expected(true, "0x00667470", false, None),
    );
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_with_log_once_logs_the_first_packet_in_prerouting() {
    let cfg = NftConfig {
        log: 1,
        ..config(false)
    };
    assert_table("tv", cfg, expected(false, "0x00667470", true, None));
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_with_log_all_logs_every_packet_in_forward() {
    let cfg = NftConfig {
        log: 2,
        ..config(true)
    };
    assert_table(
        "tvv",
        cfg,
        expected(
            true,
            "0x00667470",
            false,
            Some("ct mark 0x00667470 log prefix \"ftp-proxy: \""),
        ),
    );
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_with_queue_and_custom_mark() {
    let cfg = NftConfig {
        mark: 42,
        priority: Some(0x0001_0010),
        ..config(false)
    };
    assert_table(
        "tq",
        cfg,
        expected(
            false,
            "0x0000002a",
            false,
            Some("ct mark 0x0000002a meta priority set 1:10"),
        ),
    );
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn table_with_log_all_and_queue() {
    let cfg = NftConfig {
        log: 2,
        priority: Some(0xffff_0001),
        ..config(false)
    };
    assert_table(
        "tvvq",
        cfg,
        expected(
            false,
            "0x00667470",
            false,
            Some("ct mark 0x00667470 log prefix \"ftp-proxy: \" meta priority set ffff:1"),
        ),
    );
}

/// The JSON of one set or map of the table.
fn set_json(ns: &Netns, family: &str, set: &str) -> String {
    let kind = if set == "once" { "set" } else { "map" };
    ns.nft(&["-j", "list", kind, family, "ftp-proxy-8021", set])
}

/// The element `key` with its (initial) timeout, as `nft -j` writes it.
fn elem(key: &str) -> String {
    format!("{{\"elem\": {{\"val\": {{\"concat\": [{key}]}}, \"timeout\": 300, ")
}

fn assert_empty(ns: &Netns, family: &str) {
    for set in ["once", "rdr_to", "nat_to", "nat_to_20"] {
        let json = set_json(ns, family, set);
        assert!(!json.contains("\"elem\""), "{set} not empty: {json}");
    }
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn open_replace_close_ipv4() {
    let ns = Netns::new("e4");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();

    nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    let key = elem("\"198.51.100.2\", \"203.0.113.5\", 55000");
    assert!(set_json(&ns, "ip", "once").contains(&key));
    let rdr = set_json(&ns, "ip", "rdr_to");
    assert!(
        rdr.contains(&format!("{key}\"expires\""))
            && rdr.contains("{\"concat\": [\"192.0.2.10\", 2121]}"),
        "{rdr}"
    );
    let nat = set_json(&ns, "ip", "nat_to");
    assert!(
        nat.contains(&key) && nat.contains("\"192.0.2.1\"]]"),
        "{nat}"
    );
    assert!(!set_json(&ns, "ip", "nat_to_20").contains("\"elem\""));

    // The session's next negotiation replaces the pinhole in one batch.
    nft.open(1, &Pinhole::active(&v4(), 3000, 56000, true))
        .unwrap();
    let old = "\"198.51.100.2\", \"203.0.113.5\", 55000";
    let new = elem("\"192.0.2.10\", \"192.0.2.1\", 56000");
    for set in ["once", "rdr_to", "nat_to", "nat_to_20"] {
        assert!(
            !set_json(&ns, "ip", set).contains(old),
            "{set} kept the old key"
        );
    }
    assert!(set_json(&ns, "ip", "once").contains(&new));
    assert!(set_json(&ns, "ip", "rdr_to").contains("{\"concat\": [\"198.51.100.2\", 3000]}"));
    assert!(set_json(&ns, "ip", "nat_to_20").contains("\"203.0.113.5\"]]"));
    assert!(!set_json(&ns, "ip", "nat_to").contains("\"elem\""));

    // Another session's pinhole is independent.
    nft.open(2, &Pinhole::passive(&v4(), 2122, 57000)).unwrap();
    nft.close(1).unwrap();
    assert!(!set_json(&ns, "ip", "once").contains("56000"));
    assert!(set_json(&ns, "ip", "once").contains("57000"));
    nft.close(2).unwrap();
    assert_empty(&ns, "ip");

    // Closing again, or a session that never opened, is a no-op.
    nft.close(1).unwrap();
    nft.close(99).unwrap();
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn open_close_ipv6() {
    let ns = Netns::new("e6");
    let mut nft = ns.run(|| Nftables::new(config(true))).unwrap();
    nft.open(7, &Pinhole::active(&v6(), 1024, 49152, false))
        .unwrap();
    let key = elem("\"2001:db8:2::10\", \"2001:db8:2::1\", 49152");
    assert!(set_json(&ns, "ip6", "once").contains(&key));
    assert!(set_json(&ns, "ip6", "rdr_to").contains("{\"concat\": [\"2001:db8:1::2\", 1024]}"));
    assert!(set_json(&ns, "ip6", "nat_to").contains("\"2001:db8:3::5\"]]"));
    nft.close(7).unwrap();
    assert_empty(&ns, "ip6");
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn wrong_family_is_refused_without_changing_anything() {
    let ns = Netns::new("wf");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    let err = nft
        .open(1, &Pinhole::passive(&v6(), 2121, 55001))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // The first pinhole is still there and still owned by session 1.
    assert!(set_json(&ns, "ip", "once").contains("55000"));
    nft.close(1).unwrap();
    assert_empty(&ns, "ip");
}

/// Waits until the kernel no longer lists any of the pinhole's elements.
fn wait_until_expired(ns: &Netns, family: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = ["once", "rdr_to", "nat_to"]
            .iter()
            .filter(|s| set_json(ns, family, s).contains("\"elem\""))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still there: {left:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The kernel removes elements on its own (timeouts here; a first SYN
/// consumes `once`, see nft_packets.rs). Closing or replacing must still work,
/// and nft(8) cannot delete elements from a table another process owns.
#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn close_and_replace_after_the_kernel_removed_the_elements() {
    let ns = Netns::new("ex");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    let denied = ns.output(
        "nft",
        &[
            "delete",
            "element",
            "ip",
            "ftp-proxy-8021",
            "once",
            "{ 198.51.100.2 . 203.0.113.5 . 55000 }",
        ],
    );
    assert!(!denied.status.success());

    nft.set_pinhole_timeout(Duration::from_secs(1));
    nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    nft.open(2, &Pinhole::passive(&v4(), 2122, 55001)).unwrap();
    wait_until_expired(&ns, "ip");
    nft.close(1).unwrap();

    nft.set_pinhole_timeout(Duration::from_secs(300));
    nft.open(2, &Pinhole::passive(&v4(), 2123, 55002)).unwrap();
    let once = set_json(&ns, "ip", "once");
    assert!(once.contains("55002") && !once.contains("55001"), "{once}");
    nft.close(2).unwrap();
    assert_empty(&ns, "ip");
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn stale_table_of_the_same_name_is_replaced() {
    let ns = Netns::new("st");
    ns.nft(&["add", "table", "ip", "ftp-proxy-8021"]);
    ns.nft(&["add", "chain", "ip", "ftp-proxy-8021", "leftover"]);
    ns.nft(&[
        "add",
        "set",
        "ip",
        "ftp-proxy-8021",
        "once",
        "{ type ipv4_addr; }",
    ]);
    let _nft = ns.run(|| Nftables::new(config(false))).unwrap();
    assert_eq!(
        listed(&ns, "ip", 8021),
        expected(false, "0x00667470", false, None)
    );
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn second_instance_on_the_same_table_fails_clearly() {
    let ns = Netns::new("2nd");
    let mut first = ns.run(|| Nftables::new(config(false))).unwrap();
    let err = ns.run(|| Nftables::new(config(false))).unwrap_err();
    assert_eq!(
        err,
        "nftables table ip ftp-proxy-8021 belongs to another running process \
         (another ftp-proxy on port 8021?)"
    );
    // The first instance is untouched and still works.
    assert_eq!(
        listed(&ns, "ip", 8021),
        expected(false, "0x00667470", false, None)
    );
    first
        .open(1, &Pinhole::passive(&v4(), 2121, 55000))
        .unwrap();
    assert!(set_json(&ns, "ip", "once").contains("55000"));
    // Another port, or the other family, is another table.
    let other_port = ns.run(|| {
        Nftables::new(NftConfig {
            listen_port: 8022,
            ..config(false)
        })
    });
    assert!(other_port.is_ok());
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn ipv4_and_ipv6_instances_side_by_side() {
    let ns = Netns::new("both");
    let mut four = ns.run(|| Nftables::new(config(false))).unwrap();
    let mut six = ns.run(|| Nftables::new(config(true))).unwrap();
    four.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    six.open(1, &Pinhole::passive(&v6(), 2121, 55000)).unwrap();
    assert!(set_json(&ns, "ip", "once").contains("198.51.100.2"));
    assert!(set_json(&ns, "ip6", "once").contains("2001:db8:1::2"));
    four.shutdown().unwrap();
    let ruleset = ns.ruleset();
    assert!(!ruleset.contains("table ip ftp-proxy-8021"), "{ruleset}");
    assert!(ruleset.contains("table ip6 ftp-proxy-8021"), "{ruleset}");
    six.close(1).unwrap();
    assert_empty(&ns, "ip6");
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn shutdown_removes_the_table() {
    let ns = Netns::new("sd");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    nft.shutdown().unwrap();
    assert_eq!(ns.ruleset(), "");
    // Afterwards: nothing to close, nothing can be opened, shutdown is idempotent.
    nft.close(1).unwrap();
    assert!(nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).is_err());
    nft.shutdown().unwrap();
    // The name is free again.
    let again = ns.run(|| Nftables::new(config(false)));
    assert!(again.is_ok());
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn closing_the_socket_removes_the_table_and_its_pinholes() {
    let ns = Netns::new("drop");
    let mut nft = ns.run(|| Nftables::new(config(true))).unwrap();
    nft.open(1, &Pinhole::passive(&v6(), 2121, 55000)).unwrap();
    assert!(ns.ruleset().contains("table ip6 ftp-proxy-8021"));
    drop(nft);
    assert_eq!(ns.ruleset(), "");
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn a_killed_daemon_leaves_nothing_behind() {
    // A child process creates the table and is killed with SIGKILL.
    let ns = Netns::new("kill");
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "hold_table_until_killed",
            "--nocapture",
        ])
        .env("FTP_PROXY_NFT_HOLD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns.ruleset().contains("table ip ftp-proxy-8021") {
        assert!(Instant::now() < deadline, "child never created the table");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kill exactly the process we spawned, by its PID.
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    assert_eq!(ns.ruleset(), "");
}

/// Helper for `a_killed_daemon_leaves_nothing_behind`: does nothing unless
/// run by it.
#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn hold_table_until_killed() {
    if std::env::var_os("FTP_PROXY_NFT_HOLD").is_none() {
        return;
    }
    let mut nft = Nftables::new(config(false)).unwrap();
    nft.open(1, &Pinhole::passive(&v4(), 2121, 55000)).unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn without_cap_net_admin_the_error_says_so() {
    let ns = Netns::new("cap");
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("timeout")
        .args(["10", "nsenter"])
        .arg(format!("--net={}", ns.path().display()))
        .args([
            "setpriv",
            "--bounding-set=-net_admin",
            "--inh-caps=-net_admin",
            "--",
        ])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "report_start_up_error",
            "--nocapture",
        ])
        .env("FTP_PROXY_NFT_REPORT", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "start-up error: cannot create nftables table ip ftp-proxy-8021: permission denied \
             (ftp-proxy needs root or CAP_NET_ADMIN in this network namespace)"
        ),
        "{stdout}"
    );
    assert_eq!(ns.ruleset(), "");
}

/// Helper for `without_cap_net_admin_the_error_says_so`: does nothing
/// unless run by it.
#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn report_start_up_error() {
    if std::env::var_os("FTP_PROXY_NFT_REPORT").is_none() {
        return;
    }
    match Nftables::new(config(false)) {
        Ok(_) => println!("start-up succeeded"),
        Err(e) => println!("start-up error: {e}"),
    }
}

/// Measures one open() (replacing the session's previous pinhole) and one
/// close(), each a single netlink batch with its acks.
#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn latency_of_open_and_close() {
    const ROUNDS: u16 = 2000;
    let ns = Netns::new("lat");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    let started = Instant::now();
    for i in 0..ROUNDS {
        nft.open(1, &Pinhole::passive(&v4(), 2121, 50000 + i))
            .unwrap();
    }
    let open = started.elapsed() / u32::from(ROUNDS);
    let started = Instant::now();
    for i in 0..ROUNDS {
        nft.open(u32::from(i) + 2, &Pinhole::passive(&v4(), 2121, 10000 + i))
            .unwrap();
    }
    let first_open = started.elapsed() / u32::from(ROUNDS);
    let started = Instant::now();
    for i in 0..ROUNDS {
        nft.close(u32::from(i) + 2).unwrap();
    }
    let close = started.elapsed() / u32::from(ROUNDS);
    println!("open (replacing): {open:?}, open (first): {first_open:?}, close: {close:?}");
    nft.close(1).unwrap();
    assert_empty(&ns, "ip");
    for t in [open, first_open, close] {
        assert!(t < Duration::from_millis(1), "{t:?} per change");
    }
}

/// A refused batch changes nothing: the session keeps its previous pinhole,
/// in the kernel and in the bookkeeping.
#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn a_refused_replacement_leaves_the_previous_pinhole_in_place() {
    let ns = Netns::new("atom");
    let mut nft = ns.run(|| Nftables::new(config(false))).unwrap();
    let taken = Pinhole::passive(&v4(), 2121, 55000);
    nft.open(1, &taken).unwrap();
    nft.open(2, &Pinhole::passive(&v4(), 2122, 55001)).unwrap();
    // Session 2 asks for a key session 1 holds: the kernel refuses (EEXIST).
    let err = nft.open(2, &taken).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    let once = set_json(&ns, "ip", "once");
    assert!(once.contains("55000") && once.contains("55001"), "{once}");
    // Both sessions still close what they really have.
    nft.close(2).unwrap();
    assert!(!set_json(&ns, "ip", "once").contains("55001"));
    assert!(set_json(&ns, "ip", "rdr_to").contains("2121]"));
    nft.close(1).unwrap();
    assert_empty(&ns, "ip");
}
