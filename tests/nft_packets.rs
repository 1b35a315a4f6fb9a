//! Real TCP connections through pinholes: three network namespaces (client,
//! gateway, server), the backend's table in the gateway, std::net sockets in
//! the others. The server has no route back to the client's network, so a
//! data connection can only work through the gateway's translations.
//! Root only; nothing outside the namespaces this test creates is touched.

mod nft_netns;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ftp_proxy::filter::nft::{NftConfig, Nftables, DEFAULT_MARK};
use ftp_proxy::filter::Filter;
use ftp_proxy::pinhole::{Pinhole, SessionAddrs, NAT_PORTS};
use nft_netns::Netns;

/// How long a connection that should work may take, and how long one that
/// should not is given to prove it.
const WAIT: Duration = Duration::from_secs(3);

struct Lab {
    client: Netns,
    gateway: Netns,
    server: Netns,
    addrs: SessionAddrs,
    nft: Nftables,
}

impl Lab {
    /// client (LAN) — gateway (forwarding) — server (WAN, no route back).
    /// `orig` is an address nobody has: where the client "meant to go".
    fn new(ipv6: bool) -> Lab {
        let client = Netns::new("cli");
        let gateway = Netns::new("gw");
        let server = Netns::new("srv");
        let (cli, gw_lan, gw_wan, srv, orig, plen, ip) = if ipv6 {
            (
                "2001:db8:1::2",
                "2001:db8:1::1",
                "2001:db8:2::1",
                "2001:db8:2::10",
                "2001:db8:3::5",
                64,
                "ip -6",
            )
        } else {
            (
                "198.51.100.2",
                "198.51.100.1",
                "192.0.2.1",
                "192.0.2.10",
                "203.0.113.5",
                24,
                "ip -4",
            )
        };
        gateway.sh(&format!(
            "ip link add lan type veth peer name eth0 netns {c}
             ip link add wan type veth peer name eth0 netns {s}
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
                 net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.forwarding=1
             ip addr add {gw_lan}/{plen} dev lan nodad
             ip addr add {gw_wan}/{plen} dev wan nodad
             ip link set lan up
             ip link set wan up",
            c = client.name(),
            s = server.name(),
        ));
        client.sh(&format!(
            "ip addr add {cli}/{plen} dev eth0 nodad
             ip link set eth0 up
             {ip} route add default via {gw_lan}"
        ));
        // No route to the client's network: only the gateway's NAT helps.
        server.sh(&format!(
            "ip addr add {srv}/{plen} dev eth0 nodad
             ip link set eth0 up"
        ));
        let addrs = SessionAddrs {
            client: cli.parse().unwrap(),
            orig: orig.parse().unwrap(),
            server: srv.parse().unwrap(),
            proxy: gw_wan.parse().unwrap(),
        };
        let config = NftConfig {
            ipv6,
            listen_port: 8021,
            mark: DEFAULT_MARK,
            log: 0,
            priority: None,
        };
        let nft = gateway.run(|| Nftables::new(config)).unwrap();
        Lab {
            client,
            gateway,
            server,
            addrs,
            nft,
        }
    }

    fn passive(&self, port: u16, pport: u16) -> Pinhole {
        Pinhole::passive(&self.addrs, port, pport)
    }

    fn active(&self, port: u16, pport: u16, from_port_20: bool) -> Pinhole {
        Pinhole::active(&self.addrs, port, pport, from_port_20)
    }
}

fn listen(ns: &Netns, addr: IpAddr, port: u16) -> TcpListener {
    let listener = ns
        .run(|| TcpListener::bind(SocketAddr::new(addr, port)))
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

/// The next connection on `listener` within `wait`, if any.
fn accept_within(listener: &TcpListener, wait: Duration) -> Option<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false).unwrap();
                return Some((stream, peer));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(ns: &Netns, addr: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    ns.run(|| TcpStream::connect_timeout(&SocketAddr::new(addr, port), WAIT))
}

/// Connects from `from` to `to:port`, expects the connection on `listener`
/// and bytes to flow both ways; returns the peer address the listener saw.
fn connect_through(from: &Netns, to: IpAddr, port: u16, listener: &TcpListener) -> SocketAddr {
    let mut outgoing =
        connect(from, to, port).unwrap_or_else(|e| panic!("connect to {to}:{port}: {e}"));
    let (mut incoming, peer) =
        accept_within(listener, WAIT).expect("the connection did not arrive");
    for s in [&outgoing, &incoming] {
        s.set_read_timeout(Some(WAIT)).unwrap();
    }
    outgoing.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    incoming.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    incoming.write_all(b"pong").unwrap();
    outgoing.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    peer
}

/// A connection attempt that must not reach `listener`.
fn assert_blocked(from: &Netns, to: IpAddr, port: u16, listener: &TcpListener) {
    let attempt = connect(from, to, port);
    assert!(
        accept_within(listener, Duration::from_millis(500)).is_none(),
        "a connection to {to}:{port} got through"
    );
    assert!(
        attempt.is_err(),
        "connecting to {to}:{port} succeeded somewhere"
    );
}

fn passive_pinhole_is_one_shot_and_closes(ipv6: bool) {
    let mut lab = Lab::new(ipv6);
    let a = lab.addrs;
    let data = listen(&lab.server, a.server, 2121);
    // Without a pinhole nothing gets through.
    assert_blocked(&lab.client, a.orig, 55000, &data);

    lab.nft.open(1, &lab.passive(2121, 55000)).unwrap();
    let peer = connect_through(&lab.client, a.orig, 55000, &data);
    assert_eq!(
        peer.ip(),
        a.proxy,
        "the server must see the proxy's address"
    );
    assert!(
        NAT_PORTS.contains(&peer.port()),
        "source port {}",
        peer.port()
    );
    // One connection per pinhole, as pf's max 1.
    assert_blocked(&lab.client, a.orig, 55000, &data);
    // Closing after the SYN consumed `once` still works and removes the rest.
    lab.nft.close(1).unwrap();
    let ruleset = lab.gateway.ruleset();
    assert!(!ruleset.contains("elements ="), "{ruleset}");

    // A fresh pinhole that is closed before use lets nothing through.
    lab.nft.open(1, &lab.passive(2121, 55001)).unwrap();
    lab.nft.close(1).unwrap();
    assert_blocked(&lab.client, a.orig, 55001, &data);
}

fn active_pinholes(ipv6: bool) {
    let mut lab = Lab::new(ipv6);
    let a = lab.addrs;
    let data = listen(&lab.client, a.client, 3000);

    lab.nft.open(1, &lab.active(3000, 56000, false)).unwrap();
    let peer = connect_through(&lab.server, a.proxy, 56000, &data);
    assert_eq!(peer.ip(), a.orig, "the client must see the original server");
    assert!(
        NAT_PORTS.contains(&peer.port()),
        "source port {}",
        peer.port()
    );
    assert_blocked(&lab.server, a.proxy, 56000, &data);

    // -r with PORT: from port 20. It replaces the session's previous pinhole.
    lab.nft.open(1, &lab.active(3000, 56001, true)).unwrap();
    let peer = connect_through(&lab.server, a.proxy, 56001, &data);
    assert_eq!(peer, SocketAddr::new(a.orig, 20));
    assert_blocked(&lab.server, a.proxy, 56001, &data);

    // Replacing an unused pinhole disables it at once.
    lab.nft.open(1, &lab.active(3000, 56002, false)).unwrap();
    lab.nft.open(1, &lab.active(3000, 56003, false)).unwrap();
    assert_blocked(&lab.server, a.proxy, 56002, &data);
    lab.nft.close(1).unwrap();
    assert_blocked(&lab.server, a.proxy, 56003, &data);
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn passive_ipv4() {
    passive_pinhole_is_one_shot_and_closes(false);
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn passive_ipv6() {
    passive_pinhole_is_one_shot_and_closes(true);
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn active_ipv4() {
    active_pinholes(false);
}

#[test]
#[ignore = "needs root and a private network namespace: run by make regress"]
fn active_ipv6() {
    active_pinholes(true);
}
