//! The scenarios: each starts a daemon on a fresh model kernel, negotiates
//! over real sockets, and checks what the kernel holds, the errnos the
//! backend met and what the client got.

use std::net::IpAddr;

use ftp_proxy::filter::pf::arg::Arg;
use ftp_proxy::filter::pf::device::{Device, Request};
use ftp_proxy::filter::pf::sys;
use ftp_proxy::filter::SessionId;
use nix::errno::Errno;

use super::harness::{Client, Lab, Negotiation, Opts, CLIENT_DATA_PORT, SERVER_DATA_PORT};
use super::kernel::{foreign_rule, Call, Kernel, ModelDev, Rule, ANCHOR_LIMIT};

const TCP: u8 = 6;
const TH_SYN: u8 = 0x02;
const TH_ACK: u8 = 0x10;

/// The two rules the man page says a negotiation installs, computed from
/// the scenario's addresses and options alone.
fn expected(lab: &Lab, n: &Negotiation) -> [Rule; 2] {
    let o = &lab.opts;
    let a = &lab.addrs;
    let client_rdomain = o.client_rdomain.unwrap_or(0) as i32;
    let proxy_rdomain = o.proxy_rdomain as i32;
    let af = if o.ipv6 { sys::AF_INET6 } else { sys::AF_INET } as u8;
    let base = |direction, src: IpAddr, dst: IpAddr, port: u16, onrdomain, rtableid| Rule {
        action: if o.tag.is_some() {
            sys::PF_MATCH
        } else {
            sys::PF_PASS
        },
        direction,
        quick: o.tag.is_none(),
        log: match o.log {
            0 => 0,
            1 => sys::PF_LOG as u8,
            _ => sys::PF_LOG_ALL as u8,
        },
        af,
        proto: TCP,
        src,
        dst,
        dst_port: port,
        dst_port_op: sys::PF_OP_EQ as u8,
        flags: TH_SYN,
        flagset: TH_SYN | TH_ACK,
        keep_state: sys::PF_STATE_NORMAL as u8,
        max_states: 1,
        onrdomain,
        rtableid,
        rule_flag: 0,
        rdr: None,
        nat: None,
        qname: o.queue.clone().unwrap_or_default(),
        tagname: o.tag.clone().unwrap_or_default(),
    };
    if n.mode == "passive" {
        // client → orig:pport becomes server:port, leaving from proxy.
        let mut rdr = base(
            sys::PF_IN,
            a.client,
            a.orig,
            n.pport,
            client_rdomain,
            proxy_rdomain,
        );
        rdr.rdr = Some((a.server, [n.port, 0]));
        let mut nat = base(sys::PF_OUT, a.client, a.server, n.port, proxy_rdomain, -1);
        nat.nat = Some((a.proxy, [50001, 65535]));
        [rdr, nat]
    } else {
        // server → proxy:pport becomes client:port, leaving from orig
        // (port 20 with -r and PORT).
        let mut rdr = base(
            sys::PF_IN,
            a.server,
            a.proxy,
            n.pport,
            proxy_rdomain,
            client_rdomain,
        );
        rdr.rdr = Some((a.client, [n.port, 0]));
        let mut nat = base(sys::PF_OUT, a.server, a.client, n.port, client_rdomain, -1);
        let ports = if o.rfc && n.cmd == "PORT" {
            [20, 20]
        } else {
            [50001, 65535]
        };
        nat.nat = Some((a.orig, ports));
        [rdr, nat]
    }
}

/// The names and results of `calls`.
fn summary(calls: &[Call]) -> Vec<(&'static str, Option<Errno>)> {
    calls.iter().map(|c| (c.name, c.result.err())).collect()
}

const ONE_TRANSACTION: [(&str, Option<Errno>); 4] = [
    ("DIOCXBEGIN", None),
    ("DIOCADDRULE", None),
    ("DIOCADDRULE", None),
    ("DIOCXCOMMIT", None),
];

/// Checks that the anchor holds exactly the expected pair, in order.
fn assert_installed(lab: &Lab, n: &Negotiation) {
    let got = lab.dev.with(|k| k.active(&n.anchor));
    assert_eq!(got, Some(expected(lab, n).to_vec()), "{}: {n:?}", lab.name);
    let described = lab.described();
    assert_eq!(described.len(), 2, "{}", lab.name);
    assert!(described[0].contains(" rdr-to ") && described[1].contains(" nat-to "));
}

/// PASV or EPSV from the client; the n-th passive command of the session.
fn passive(lab: &Lab, c: &mut Client, cmd: &'static str, id: SessionId, nth: u16) -> Negotiation {
    lab.calls();
    let reply = c.command(&format!("{cmd}\r\n"));
    let pport = if cmd == "PASV" {
        let inner = reply
            .strip_prefix("227 Entering Passive Mode (")
            .and_then(|r| r.strip_suffix(")\r\n"))
            .unwrap_or_else(|| panic!("{}: {reply:?} {:?}", lab.name, summary(&lab.calls())));
        let f: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        let IpAddr::V4(orig) = lab.addrs.orig else {
            unreachable!()
        };
        let o = orig.octets().map(u16::from);
        assert_eq!(&f[..4], &o, "{}: the client is told orig", lab.name);
        f[4] * 256 + f[5]
    } else {
        reply
            .strip_prefix("229 Entering Extended Passive Mode (|||")
            .and_then(|r| r.strip_suffix("|)\r\n"))
            .unwrap_or_else(|| panic!("{}: {reply:?}", lab.name))
            .parse()
            .unwrap()
    };
    let n = Negotiation {
        mode: "passive",
        cmd,
        pport,
        port: SERVER_DATA_PORT + nth,
        anchor: lab.anchor(id),
    };
    let calls = lab.calls();
    lab.trace_pinhole(&n, &calls);
    assert_eq!(summary(&calls), ONE_TRANSACTION, "{}", lab.name);
    assert_installed(lab, &n);
    n
}

/// PORT or EPRT from the client, announcing CLIENT_DATA_PORT.
fn active(lab: &Lab, c: &mut Client, cmd: &'static str, id: SessionId) -> Negotiation {
    lab.calls();
    let line = match (cmd, lab.addrs.client) {
        ("PORT", IpAddr::V4(v4)) => {
            let [a, b, x, d] = v4.octets();
            format!(
                "PORT {a},{b},{x},{d},{},{}\r\n",
                CLIENT_DATA_PORT >> 8,
                CLIENT_DATA_PORT & 0xff
            )
        }
        ("EPRT", ip) => {
            let af = if ip.is_ipv4() { 1 } else { 2 };
            format!("EPRT |{af}|{ip}|{CLIENT_DATA_PORT}|\r\n")
        }
        _ => unreachable!(),
    };
    let reply = c.command(&line);
    assert!(reply.starts_with("200 "), "{}: {reply:?}", lab.name);
    let got = lab.server_got();
    let pport = if cmd == "PORT" {
        let f: Vec<u16> = got["PORT ".len()..]
            .split(',')
            .map(|x| x.parse().unwrap())
            .collect();
        let IpAddr::V4(proxy) = lab.addrs.proxy else {
            unreachable!()
        };
        assert_eq!(&f[..4], &proxy.octets().map(u16::from), "{}", lab.name);
        f[4] * 256 + f[5]
    } else {
        let fields: Vec<&str> = got["EPRT ".len()..].split('|').collect();
        assert_eq!(
            fields[2].parse::<IpAddr>().unwrap(),
            lab.addrs.proxy,
            "{}",
            lab.name
        );
        fields[3].parse().unwrap()
    };
    let n = Negotiation {
        mode: "active",
        cmd,
        pport,
        port: CLIENT_DATA_PORT,
        anchor: lab.anchor(id),
    };
    let calls = lab.calls();
    lab.trace_pinhole(&n, &calls);
    assert_eq!(summary(&calls), ONE_TRANSACTION, "{}", lab.name);
    assert_installed(lab, &n);
    n
}

/// QUIT, then the session's anchor must go: an empty transaction whose
/// commit leaves the anchor empty, which pf removes.
fn end_session(lab: &Lab, mut c: Client, id: SessionId) {
    assert_eq!(c.command("QUIT\r\n"), "221 bye\r\n");
    drop(c);
    let anchor = lab.anchor(id);
    lab.wait_for("the anchor to go", |k| k.active(&anchor).is_none());
    let calls = lab.calls();
    lab.trace_close(&anchor, &calls);
    assert_eq!(
        summary(&calls),
        [("DIOCXBEGIN", None), ("DIOCXCOMMIT", None)],
        "{}",
        lab.name
    );
    assert!(lab
        .dev
        .with(|k| k.anchors())
        .contains(&"ftp-proxy".to_string()));
}

fn v4() -> Opts {
    Opts::default()
}

fn v6() -> Opts {
    Opts {
        ipv6: true,
        ..Opts::default()
    }
}

/// One session with the given negotiations, then its end.
fn run(name: &'static str, opts: Opts, steps: &[&'static str]) -> Lab {
    let lab = Lab::start(name, opts, Kernel::new());
    let mut c = lab.connect();
    let mut nth = 0;
    for &cmd in steps {
        match cmd {
            "PASV" | "EPSV" => {
                nth += 1;
                passive(&lab, &mut c, cmd, 1, nth);
            }
            _ => {
                active(&lab, &mut c, cmd, 1);
            }
        }
    }
    end_session(&lab, c, 1);
    lab
}

#[test]
fn passive_v4() {
    run("passive-v4", v4(), &["PASV"]).stop();
}

#[test]
fn passive_v6() {
    run("passive-v6", v6(), &["EPSV"]).stop();
}

#[test]
fn active_v4() {
    run("active-v4", v4(), &["PORT"]).stop();
}

#[test]
fn active_v6() {
    run("active-v6", v6(), &["EPRT"]).stop();
}

#[test]
fn reverse_mode() {
    let opts = Opts {
        reverse: true,
        ..v4()
    };
    run("reverse", opts, &["PASV", "PORT"]).stop();
}

#[test]
fn rfc_mode_port_comes_from_port_20_and_eprt_does_not() {
    let opts = Opts { rfc: true, ..v4() };
    run("rfc-port", opts, &["PORT", "EPRT"]).stop();
}

#[test]
fn tag_makes_match_rules() {
    let opts = Opts {
        tag: Some("FTPDATA".into()),
        ..v4()
    };
    run("tag", opts, &["PASV", "PORT"]).stop();
}

#[test]
fn queue() {
    let opts = Opts {
        queue: Some("ftpq".into()),
        ..v6()
    };
    run("queue", opts, &["EPSV", "EPRT"]).stop();
}

#[test]
fn log_v() {
    let opts = Opts { log: 1, ..v4() };
    run("log-v", opts, &["PASV"]).stop();
}

#[test]
fn log_vv() {
    let opts = Opts { log: 2, ..v6() };
    run("log-vv", opts, &["EPRT"]).stop();
}

#[test]
fn rdomains_swap_between_passive_and_active() {
    let opts = Opts {
        client_rdomain: Some(3),
        proxy_rdomain: 5,
        ..v4()
    };
    run("rdomains", opts, &["PASV", "PORT"]).stop();
}

#[test]
fn replaced_pinhole_leaves_only_the_new_rules() {
    // Each negotiation's check asserts the anchor holds exactly its pair.
    run("replaced", v4(), &["PASV", "EPSV", "PASV"]).stop();
}

#[test]
fn session_end_removes_the_anchor() {
    let lab = run("session-end", v4(), &["PASV"]);
    assert_eq!(lab.dev.with(|k| k.anchors()), ["ftp-proxy"]);
    lab.stop();
}

#[test]
fn stop_removes_every_anchor() {
    let lab = Lab::start("stop", v4(), Kernel::new());
    let mut a = lab.connect();
    let mut b = lab.connect();
    passive(&lab, &mut a, "PASV", 1, 1);
    passive(&lab, &mut b, "PASV", 2, 1);
    assert_eq!(lab.dev.with(|k| k.anchors()).len(), 3);
    let dev = lab.dev.clone();
    lab.stop();
    assert_eq!(dev.with(|k| k.anchors()), ["ftp-proxy"]);
    for c in [&mut a, &mut b] {
        assert!(c.rest().starts_with("421 "));
    }
}

/// The client's 421 and the backend's errno when a pinhole fails; the
/// session's end then empties and removes its anchor.
fn assert_refused(lab: &Lab, c: &mut Client, cmd: &str, errno: Errno, at: &str) {
    lab.calls();
    c.send(&format!("{cmd}\r\n"));
    let rest = c.rest();
    assert!(rest.starts_with("421 "), "{}: {rest:?}", lab.name);
    assert!(!rest.contains("227 ") && !rest.contains("229 "), "{rest:?}");
    let anchor = lab.anchor(1);
    lab.wait_for("the anchor to go", |k| k.active(&anchor).is_none());
    let calls = lab.calls();
    assert!(
        calls.iter().any(|c| c.name == at && c.result == Err(errno)),
        "{}: {:?}",
        lab.name,
        summary(&calls)
    );
}

#[test]
fn failed_addrule_unknown_queue_is_ebusy_and_the_client_gets_421() {
    let opts = Opts {
        queue: Some("nosuchq".into()),
        ..v4()
    };
    let lab = Lab::start("failed-addrule", opts, Kernel::new());
    let mut c = lab.connect();
    assert_refused(&lab, &mut c, "PASV", Errno::EBUSY, "DIOCADDRULE");
    assert_eq!(lab.dev.with(|k| k.anchors()), ["ftp-proxy"]);
    lab.stop();
}

#[test]
fn a_routing_table_that_does_not_exist_is_ebusy() {
    let opts = Opts {
        proxy_rdomain: 7,
        ..v4()
    };
    let lab = Lab::start("no-such-rtable", opts, Kernel::new());
    let mut c = lab.connect();
    assert_refused(&lab, &mut c, "PASV", Errno::EBUSY, "DIOCADDRULE");
    lab.stop();
}

#[test]
fn tag_names_run_out_with_ebusy() {
    let mut kernel = Kernel::new();
    kernel.tags = (0..50000).map(|n| format!("t{n}")).collect();
    let opts = Opts {
        tag: Some("FTPDATA".into()),
        ..v4()
    };
    let lab = Lab::start("tags-exhausted", opts, kernel);
    let mut c = lab.connect();
    assert_refused(&lab, &mut c, "PASV", Errno::EBUSY, "DIOCADDRULE");
    lab.stop();
}

#[test]
fn busy_commit_once_is_retried_with_a_fresh_transaction() {
    let mut kernel = Kernel::new();
    kernel.busy_commits = 1;
    let lab = Lab::start("busy-commit-once", v4(), kernel);
    let mut c = lab.connect();
    lab.calls();
    c.send("PASV\r\n");
    let reply = c.line();
    assert!(reply.starts_with("227 "), "{reply:?}");
    let calls = lab.calls();
    let mut expect = vec![
        ("DIOCXBEGIN", None),
        ("DIOCADDRULE", None),
        ("DIOCADDRULE", None),
        ("DIOCXCOMMIT", Some(Errno::EBUSY)),
    ];
    expect.extend(ONE_TRANSACTION);
    assert_eq!(summary(&calls), expect);
    assert_eq!(lab.dev.with(|k| k.active(&lab.anchor(1))).unwrap().len(), 2);
    end_session(&lab, c, 1);
    lab.stop();
}

#[test]
fn busy_commit_twice_fails_the_pinhole_with_421() {
    let mut kernel = Kernel::new();
    kernel.busy_commits = 2;
    let lab = Lab::start("busy-commit", v4(), kernel);
    let mut c = lab.connect();
    assert_refused(&lab, &mut c, "PASV", Errno::EBUSY, "DIOCXCOMMIT");
    lab.stop();
}

#[test]
fn securelevel_2_refuses_rule_changes_with_eperm() {
    let mut kernel = Kernel::new();
    kernel.securelevel = 2;
    kernel.preload(&format!("ftp-proxy/{}.1", dead_pid()), foreign_rule());
    let lab = Lab::start("securelevel", v4(), kernel);
    assert_eq!(lab.startup.len(), 1);
    assert!(
        lab.startup[0].starts_with("stale anchor clean-up failed: "),
        "{:?}",
        lab.startup
    );
    let mut c = lab.connect();
    lab.calls();
    c.send("PASV\r\n");
    let rest = c.rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    let calls = lab.calls();
    assert_eq!(summary(&calls)[0], ("DIOCXBEGIN", Some(Errno::EPERM)));
    lab.stop();
}

#[test]
fn disabled_pf_is_a_start_up_error() {
    let mut kernel = Kernel::new();
    kernel.running = false;
    let err = Lab::try_start("disabled", v4(), kernel).err().unwrap();
    assert_eq!(err, "pf is disabled");
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn stale_anchors_of_a_dead_pid_are_removed_at_start_up() {
    let dead = dead_pid();
    let mut kernel = Kernel::new();
    for id in [1, 2] {
        kernel.preload(&format!("ftp-proxy/{dead}.{id}"), foreign_rule());
    }
    // pid 1 is alive; "admin" is not a name the daemon makes.
    kernel.preload("ftp-proxy/1.7", foreign_rule());
    kernel.preload("ftp-proxy/admin", foreign_rule());
    let lab = Lab::start("stale", v4(), kernel);
    assert_eq!(
        lab.startup,
        [
            format!("removed stale anchor ftp-proxy/{dead}.1"),
            format!("removed stale anchor ftp-proxy/{dead}.2"),
        ]
    );
    assert_eq!(
        lab.dev.with(|k| k.anchors()),
        ["ftp-proxy", "ftp-proxy/1.7", "ftp-proxy/admin"]
    );
    let calls = lab.calls();
    assert_eq!(calls[0].name, "DIOCGETSTATUS");
    assert_eq!(calls[1].name, "DIOCGETRULESETS");
    lab.stop();
}

#[test]
fn the_513th_anchor_is_refused_and_the_client_gets_421() {
    let mut kernel = Kernel::new();
    // ftp-proxy itself and 510 anchors of a live process: 511 in the pool.
    for id in 0..(ANCHOR_LIMIT - 2) {
        kernel.preload(&format!("ftp-proxy/1.{id}"), foreign_rule());
    }
    let lab = Lab::start("anchor-limit", v4(), kernel);
    let mut first = lab.connect();
    passive(&lab, &mut first, "PASV", 1, 1);
    assert_eq!(lab.dev.with(|k| k.anchors()).len(), ANCHOR_LIMIT);
    let mut second = lab.connect();
    lab.calls();
    second.send("PASV\r\n");
    let rest = second.rest();
    assert!(rest.starts_with("421 "), "{rest:?}");
    let calls = lab.calls();
    assert_eq!(summary(&calls)[0], ("DIOCXBEGIN", Some(Errno::EINVAL)));
    assert!(lab.dev.with(|k| k.active(&lab.anchor(2))).is_none());
    // The first session is unaffected.
    assert_eq!(lab.dev.with(|k| k.active(&lab.anchor(1))).unwrap().len(), 2);
    lab.stop();
}

// The model's own checks, issued by hand through the same seam.

fn begin(dev: &mut ModelDev, path: &str) -> (Result<(), Errno>, u32) {
    let mut e = Arg::<sys::pfioc_trans_e>::new();
    set(&mut e.get_mut().anchor, path);
    let r = dev.ioctl(Request::XBegin(&mut e));
    (r, e.get().ticket)
}

fn set(buf: &mut [std::ffi::c_char], s: &str) {
    for (d, b) in buf.iter_mut().zip(s.bytes()) {
        *d = b as std::ffi::c_char;
    }
}

/// An IPv4 address in pf's 16-byte form.
fn v4_bytes(a: [u8; 4]) -> [u8; 16] {
    let mut b = [0; 16];
    b[..4].copy_from_slice(&a);
    b
}

/// A valid pinhole-like rule on anchor `path` with `ticket`, changed by `f`.
fn add(
    dev: &mut ModelDev,
    path: &str,
    ticket: u32,
    f: impl FnOnce(&mut sys::pf_rule),
) -> Result<(), Errno> {
    let mut pr = Arg::<sys::pfioc_rule>::new();
    let p = pr.get_mut();
    p.ticket = ticket;
    set(&mut p.anchor, path);
    let r = &mut p.rule;
    r.action = sys::PF_PASS as u8;
    r.direction = sys::PF_IN as u8;
    r.af = sys::AF_INET as u8;
    r.proto = TCP;
    for w in [&mut r.src.addr, &mut r.dst.addr] {
        w.type_ = sys::PF_ADDR_ADDRMASK as u8;
        w.v.a.addr.pfa.addr8 = v4_bytes([192, 0, 2, 1]);
        w.v.a.mask.pfa.addr8 = v4_bytes([0xff; 4]);
    }
    r.dst.port_op = sys::PF_OP_EQ as u8;
    r.dst.port[0] = 21u16.to_be();
    r.rtableid = -1;
    r.onrdomain = -1;
    r.nat.addr.type_ = sys::PF_ADDR_NONE as u8;
    r.rdr.addr.type_ = sys::PF_ADDR_NONE as u8;
    r.route.addr.type_ = sys::PF_ADDR_NONE as u8;
    f(r);
    dev.ioctl(Request::AddRule(&mut pr))
}

/// A change to a valid rule.
type Change = dyn FnOnce(&mut sys::pf_rule);

#[test]
fn model_checks_anchor_paths_tickets_and_rule_fields() {
    let mut dev = ModelDev::new(Kernel::new());
    let mut e = Arg::<sys::pfioc_trans_e>::new();
    e.get_mut().anchor.fill(b'a' as std::ffi::c_char);
    assert_eq!(dev.ioctl(Request::XBegin(&mut e)), Err(Errno::ENAMETOOLONG));
    assert_eq!(begin(&mut dev, "ftp-proxy//x").0, Err(Errno::EINVAL));
    assert_eq!(
        begin(&mut dev, &format!("ftp-proxy/{}", "n".repeat(64))).0,
        Err(Errno::EINVAL)
    );

    let (r, t) = begin(&mut dev, "ftp-proxy/9.1");
    r.unwrap();
    assert_eq!(
        add(&mut dev, "ftp-proxy/9.1", t + 1, |_| {}),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        add(&mut dev, "ftp-proxy/9.2", t, |_| {}),
        Err(Errno::EINVAL)
    );
    let bad: Vec<(Errno, Box<Change>)> = vec![
        (Errno::EINVAL, Box::new(|r| r.action = 200)),
        (Errno::EPFNOSUPPORT, Box::new(|r| r.af = 10)),
        (Errno::EINVAL, Box::new(|r| r.proto = 1)),
        (
            Errno::EINVAL,
            Box::new(|r| r.src.addr.type_ = sys::PF_ADDR_NONE as u8),
        ),
        (
            Errno::EINVAL,
            Box::new(|r| r.dst.addr.type_ = sys::PF_ADDR_TABLE as u8),
        ),
        (Errno::EBUSY, Box::new(|r| r.rtableid = 7)),
        (Errno::EINVAL, Box::new(|r| r.onrdomain = 256)),
        (
            Errno::EBUSY,
            Box::new(|r| r.qname[0] = b'x' as std::ffi::c_char),
        ),
        // A zeroed nat pool: ADDRMASK 0/0, translate to anything.
        (
            Errno::EINVAL,
            Box::new(|r| r.nat.addr.type_ = sys::PF_ADDR_ADDRMASK as u8),
        ),
        (
            Errno::EINVAL,
            Box::new(|r| {
                r.nat.addr.type_ = sys::PF_ADDR_ADDRMASK as u8;
                r.nat.addr.v.a.addr.pfa.addr8 = v4_bytes([192, 0, 2, 9]);
                r.nat.addr.v.a.mask.pfa.addr8 = v4_bytes([0xff; 4]);
                r.nat.proxy_port = [60000, 50000];
            }),
        ),
        (
            Errno::EINVAL,
            Box::new(|r| {
                r.dst.port_op = sys::PF_OP_RRG as u8;
                r.dst.port = [30u16.to_be(), 20u16.to_be()];
            }),
        ),
    ];
    for (i, (errno, f)) in bad.into_iter().enumerate() {
        assert_eq!(add(&mut dev, "ftp-proxy/9.1", t, f), Err(errno), "case {i}");
    }
    add(&mut dev, "ftp-proxy/9.1", t, |r| {
        r.tagname[0] = b'T' as std::ffi::c_char
    })
    .unwrap();
    // Commit with a stale ticket, then the right one.
    let mut e = Arg::<sys::pfioc_trans_e>::new();
    set(&mut e.get_mut().anchor, "ftp-proxy/9.1");
    e.get_mut().ticket = t + 5;
    assert_eq!(dev.ioctl(Request::XCommit(&mut e)), Err(Errno::EBUSY));
    e.get_mut().ticket = t;
    dev.ioctl(Request::XCommit(&mut e)).unwrap();
    assert_eq!(dev.with(|k| k.active("ftp-proxy/9.1")).unwrap().len(), 1);
    // A second commit of the same transaction is busy: it is closed.
    assert_eq!(dev.ioctl(Request::XCommit(&mut e)), Err(Errno::EBUSY));
    // An empty transaction removes the anchor, not its pinned parent.
    let (r, t) = begin(&mut dev, "ftp-proxy/9.1");
    r.unwrap();
    e.get_mut().ticket = t;
    dev.ioctl(Request::XCommit(&mut e)).unwrap();
    assert_eq!(dev.with(|k| k.anchors()), ["ftp-proxy"]);
}
