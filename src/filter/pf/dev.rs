//! OpenBSD: the [`Filter`] over `/dev/pf`.
//!
//! Each session owns the anchor `ftp-proxy/<pid>.<id>`. Every negotiation is
//! one transaction on it (DIOCXBEGIN, two DIOCADDRULE, DIOCXCOMMIT) that
//! replaces whatever the anchor held, so the swap from the previous pinhole
//! to the new one is atomic; an empty transaction at the session's end
//! empties the anchor and pf deletes it.
//!
//! No DIOCXROLLBACK, ever: pledge(2)'s `pf` promise does not allow it and
//! would kill the daemon. A transaction abandoned after a failed DIOCADDRULE
//! or DIOCXCOMMIT is harmless: it only fills the anchor's *inactive* ruleset,
//! which the next DIOCXBEGIN on the same anchor clears. The session driver
//! ends a session whose pinhole failed and calls [`Filter::close`], whose
//! empty transaction is exactly that next DIOCXBEGIN; its commit then leaves
//! the anchor empty and pf removes it.

use std::collections::{HashMap, HashSet};
use std::ffi::c_char;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;

use super::anchor;
use super::conf;
use super::ioc::{nr, PF_GROUP};
use super::rule::RuleOptions;
use super::rule::{self, Action, Direction, Pool, RuleSpec};
use super::sys;
use crate::filter::{Filter, SessionId};
use crate::pinhole::Pinhole;

/// The ioctls, with request numbers nix computes from the generated
/// structures' sizes (`_IOWR('D', n, T)`).
mod ioctl {
    use super::{nr, sys, PF_GROUP};
    nix::ioctl_readwrite!(add_rule, PF_GROUP, nr::DIOCADDRULE, sys::pfioc_rule);
    nix::ioctl_readwrite!(get_status, PF_GROUP, nr::DIOCGETSTATUS, sys::pf_status);
    nix::ioctl_readwrite!(
        get_rulesets,
        PF_GROUP,
        nr::DIOCGETRULESETS,
        sys::pfioc_ruleset
    );
    nix::ioctl_readwrite!(
        get_ruleset,
        PF_GROUP,
        nr::DIOCGETRULESET,
        sys::pfioc_ruleset
    );
    nix::ioctl_readwrite!(begin, PF_GROUP, nr::DIOCXBEGIN, sys::pfioc_trans);
    nix::ioctl_readwrite!(commit, PF_GROUP, nr::DIOCXCOMMIT, sys::pfioc_trans);
}

/// How long to wait before the one retry of a commit that found pf busy.
const COMMIT_RETRY: Duration = Duration::from_millis(5);

/// The pf backend: the open `/dev/pf` and what the sessions' rules share.
pub struct Pf {
    dev: File,
    /// -v, -T, -q and the proxy's rdomain; the client's is per session.
    opts: RuleOptions,
    client_rdomains: HashMap<SessionId, u32>,
    /// Sessions whose anchor may exist (a DIOCXBEGIN was issued for it).
    anchors: HashSet<SessionId>,
    /// The rules each session's anchor holds, exactly as they were added.
    installed: HashMap<SessionId, [RuleSpec; 2]>,
    startup: Vec<String>,
}

impl Pf {
    /// Opens `/dev/pf` read-write (as root, before the chroot), checks that
    /// pf is enabled, and empties the anchors of dead instances.
    ///
    /// `opts` carries -v, -T and -q; a missing `proxy_rdomain` is taken from
    /// getrtable(2). Errors read like the original's start-up errors:
    /// `open /dev/pf: …`, `DIOCGETSTATUS: …`, `pf is disabled`.
    ///
    /// Must run before pledge(2): the stale-anchor listing
    /// (DIOCGETRULESETS/DIOCGETRULESET) is not in the `pf` promise.
    pub fn new(mut opts: RuleOptions) -> Result<Pf, String> {
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/pf")
            .map_err(|e| format!("open /dev/pf: {}", strerror(&e)))?;
        let mut status = sys::pf_status::default();
        // SAFETY: dev is an open /dev/pf and status a valid, writable
        // pf_status of the size the request number encodes.
        unsafe { ioctl::get_status(dev.as_raw_fd(), &mut status) }
            .map_err(|e| format!("DIOCGETSTATUS: {}", e.desc()))?;
        if status.running == 0 {
            return Err("pf is disabled".into());
        }
        if opts.proxy_rdomain.is_none() {
            opts.proxy_rdomain = Some(crate::sys::proxy_rdomain());
        }
        opts.client_rdomain = None;
        let mut pf = Pf {
            dev,
            opts,
            client_rdomains: HashMap::new(),
            anchors: HashSet::new(),
            installed: HashMap::new(),
            startup: Vec::new(),
        };
        pf.startup = match pf.remove_stale_anchors() {
            Ok(removed) => removed
                .into_iter()
                .map(|a| format!("removed stale anchor {a}"))
                .collect(),
            Err(e) => vec![format!("stale anchor clean-up failed: {}", strerror(&e))],
        };
        Ok(pf)
    }

    /// What start-up did beyond the checks, one log line each (stale
    /// anchors removed, or why that failed). The caller logs them once
    /// syslog is open.
    pub fn startup_messages(&self) -> &[String] {
        &self.startup
    }

    /// The rule decorations for session `id`: an unknown client rdomain is
    /// 0, as in the original (its session record starts zeroed).
    pub fn session_options(&self, id: SessionId) -> RuleOptions {
        RuleOptions {
            client_rdomain: Some(self.client_rdomains.get(&id).copied().unwrap_or(0)),
            ..self.opts.clone()
        }
    }

    /// Empties every `ftp-proxy/<pid>.<id>` anchor whose process is gone,
    /// and returns their paths.
    ///
    /// The original leaves such anchors behind after a crash or SIGKILL
    /// until an admin flushes them; their rules keep redirecting data
    /// connections nobody proxies any more. Anchors of live processes (a
    /// second instance, base's ftp-proxy) and names that are not
    /// `<pid>.<id>` are left alone.
    pub fn remove_stale_anchors(&mut self) -> io::Result<Vec<String>> {
        let children = self.child_anchors(anchor::PARENT)?;
        let stale = anchor::stale(children.iter().map(String::as_str), pid_alive);
        let mut first_error = None;
        for path in &stale {
            if let Err(e) = self.transaction(path, &[]) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stale),
        }
    }

    /// The names of the anchors directly under `parent`; none if `parent`
    /// does not exist (pf answers EINVAL).
    fn child_anchors(&self, parent: &str) -> io::Result<Vec<String>> {
        let mut rs = sys::pfioc_ruleset::default();
        copy_name(&mut rs.path, parent)?;
        // SAFETY: rs is a valid pfioc_ruleset with a NUL-terminated path.
        match unsafe { ioctl::get_rulesets(self.fd(), &mut rs) } {
            Ok(_) => {}
            Err(Errno::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        let mut names = Vec::new();
        for n in 0..rs.nr {
            let mut one = sys::pfioc_ruleset::default();
            copy_name(&mut one.path, parent)?;
            one.nr = n;
            // SAFETY: as above; the kernel writes a NUL-terminated name.
            match unsafe { ioctl::get_ruleset(self.fd(), &mut one) } {
                Ok(_) => names.push(c_name(&one.name)),
                // The set changed under us: work with what was listed.
                Err(Errno::EBUSY) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(names)
    }

    /// One transaction on `path` that replaces its rules with `rules`
    /// (none: empty the anchor, which pf then deletes).
    fn transaction(&self, path: &str, rules: &[RuleSpec]) -> io::Result<()> {
        let mut elem = sys::pfioc_trans_e::default();
        elem.type_ = sys::PF_TRANS_RULESET as i32;
        copy_name(&mut elem.anchor, path)?;
        let mut trans = sys::pfioc_trans {
            size: 1,
            esize: std::mem::size_of::<sys::pfioc_trans_e>() as i32,
            array: &mut elem,
        };
        // SAFETY: trans points at one valid element that outlives the call;
        // the kernel fills in its ticket.
        unsafe { ioctl::begin(self.fd(), &mut trans) }?;
        let ticket = elem.ticket;
        for spec in rules {
            let mut pr = Box::<sys::pfioc_rule>::default();
            pr.ticket = ticket;
            copy_name(&mut pr.anchor, path)?;
            fill_rule(&mut pr.rule, spec)?;
            // SAFETY: pr is a fully initialised pfioc_rule on the heap.
            unsafe { ioctl::add_rule(self.fd(), &mut *pr) }?;
        }
        // SAFETY: as for begin; the same element carries the ticket back.
        match unsafe { ioctl::commit(self.fd(), &mut trans) } {
            Err(Errno::EBUSY) => {
                std::thread::sleep(COMMIT_RETRY);
                // SAFETY: as above.
                unsafe { ioctl::commit(self.fd(), &mut trans) }?;
            }
            other => {
                other?;
            }
        }
        Ok(())
    }

    fn fd(&self) -> i32 {
        self.dev.as_raw_fd()
    }
}

impl Filter for Pf {
    fn name(&self) -> &'static str {
        "pf"
    }

    fn open(&mut self, id: SessionId, pinhole: &Pinhole) -> io::Result<()> {
        let rules = rule::pinhole_rules(pinhole, &self.session_options(id))?;
        let path = anchor::session_anchor(std::process::id(), id);
        self.anchors.insert(id);
        // On failure the anchor keeps its active rules: `installed` too.
        self.transaction(&path, &rules)?;
        self.installed.insert(id, rules);
        Ok(())
    }

    fn close(&mut self, id: SessionId) -> io::Result<()> {
        self.client_rdomains.remove(&id);
        if !self.anchors.contains(&id) {
            return Ok(());
        }
        let path = anchor::session_anchor(std::process::id(), id);
        self.transaction(&path, &[])?;
        self.anchors.remove(&id);
        self.installed.remove(&id);
        Ok(())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let ids: Vec<SessionId> = self.anchors.iter().copied().collect();
        let mut first_error = None;
        for id in ids {
            if let Err(e) = self.close(id) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn set_client_rdomain(&mut self, id: SessionId, rdomain: Option<u32>) {
        self.client_rdomains.insert(id, rdomain.unwrap_or(0));
    }

    fn describe(&self, id: SessionId) -> Vec<String> {
        self.installed
            .get(&id)
            .map_or_else(Vec::new, |rules| conf::describe(rules))
    }
}

/// Copies the portable rule into the kernel's structure, which starts all
/// zero (`Default` of the generated type).
fn fill_rule(r: &mut sys::pf_rule, s: &RuleSpec) -> io::Result<()> {
    r.action = match s.action {
        Action::Pass => sys::PF_PASS,
        Action::Match => sys::PF_MATCH,
    } as u8;
    r.direction = match s.direction {
        Direction::In => sys::PF_IN,
        Direction::Out => sys::PF_OUT,
    } as u8;
    r.quick = u8::from(s.quick);
    r.log = s.log;
    r.af = family(s.src);
    r.proto = rule::PROTO_TCP;
    set_host(&mut r.src.addr, s.src);
    set_host(&mut r.dst.addr, s.dst);
    r.dst.port_op = sys::PF_OP_EQ as u8;
    r.dst.port[0] = s.dst_port_net;
    r.keep_state = sys::PF_STATE_NORMAL as u8;
    r.flags = rule::TH_SYN;
    r.flagset = rule::TH_SYN | rule::TH_ACK;
    r.max_states = rule::MAX_STATES;
    r.onrdomain = s.onrdomain;
    r.rtableid = s.rtableid;
    // A zeroed pool is PF_ADDR_ADDRMASK 0/0, "translate to anything": mark
    // both unused first, then fill the one this rule translates with.
    r.nat.addr.type_ = sys::PF_ADDR_NONE as u8;
    r.rdr.addr.type_ = sys::PF_ADDR_NONE as u8;
    if let Some(p) = &s.rdr {
        set_pool(&mut r.rdr, p);
    }
    if let Some(p) = &s.nat {
        set_pool(&mut r.nat, p);
    }
    if let Some(q) = &s.qname {
        copy_name(&mut r.qname, q)?;
    }
    if let Some(t) = &s.tagname {
        copy_name(&mut r.tagname, t)?;
    }
    Ok(())
}

/// A single host: the address and an all-ones mask over its length.
fn set_host(w: &mut sys::pf_addr_wrap, ip: IpAddr) {
    let (mut addr, mut mask) = ([0u8; 16], [0u8; 16]);
    match ip {
        IpAddr::V4(a) => {
            addr[..4].copy_from_slice(&a.octets());
            mask[..4].fill(0xff);
        }
        IpAddr::V6(a) => {
            addr = a.octets();
            mask = [0xff; 16];
        }
    }
    w.type_ = sys::PF_ADDR_ADDRMASK as u8;
    w.v.a.addr.pfa.addr8 = addr;
    w.v.a.mask.pfa.addr8 = mask;
}

/// One address, ports in host order, no pool options (PF_POOL_NONE).
fn set_pool(pool: &mut sys::pf_pool, p: &Pool) {
    set_host(&mut pool.addr, p.addr);
    pool.proxy_port = p.proxy_port;
    pool.port_op = 0;
    pool.opts = sys::PF_POOL_NONE as u8;
}

/// OpenBSD's address family numbers (AF_INET6 is 24 here).
fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// Copies `s` into a fixed C buffer, NUL-terminated; EINVAL if it does not
/// fit or holds a NUL.
fn copy_name(buf: &mut [c_char], s: &str) -> io::Result<()> {
    if s.len() >= buf.len() || s.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, b) in buf.iter_mut().zip(s.bytes()) {
        *d = b as c_char;
    }
    buf[s.len()] = 0;
    Ok(())
}

/// The text of a NUL-terminated C buffer.
fn c_name(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether process `pid` exists: kill(pid, 0) succeeds or is refused. 0 and
/// values beyond pid_t would mean "a process group" or nothing; they count
/// as alive so their anchors are never touched.
fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    if raw <= 0 {
        return true;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(Errno::ESRCH)
    )
}

/// strerror(3)'s text without Rust's "(os error N)" suffix, as err(3) prints.
fn strerror(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ioc::{self, amd64_rev1_543 as rev};
    use super::*;
    use std::mem::size_of;

    #[test]
    fn nix_request_numbers_are_the_ioccom_formula() {
        let pairs = [
            (nr::DIOCADDRULE, size_of::<sys::pfioc_rule>()),
            (nr::DIOCGETSTATUS, size_of::<sys::pf_status>()),
            (nr::DIOCGETRULESETS, size_of::<sys::pfioc_ruleset>()),
            (nr::DIOCXBEGIN, size_of::<sys::pfioc_trans>()),
        ];
        for (n, size) in pairs {
            let by_nix = nix::request_code_readwrite!(PF_GROUP, n, size);
            assert_eq!(by_nix as u32, ioc::pf_iowr(n, size), "request {n}");
        }
    }

    #[test]
    fn known_amd64_values() {
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        assert_eq!(size_of::<sys::pfioc_trans>(), rev::PFIOC_TRANS);
        // The others hold only for the headers of rev 1.543, recognisable
        // by its pf_rule size; other releases have other numbers.
        if size_of::<sys::pf_rule>() == rev::PF_RULE {
            assert_eq!(size_of::<sys::pfioc_trans_e>(), rev::PFIOC_TRANS_E);
            assert_eq!(size_of::<sys::pfioc_rule>(), rev::PFIOC_RULE);
            assert_eq!(size_of::<sys::pf_status>(), rev::PF_STATUS);
            assert_eq!(size_of::<sys::pfioc_ruleset>(), rev::PFIOC_RULESET);
        }
    }

    #[test]
    fn filled_rule_has_the_traps_right() {
        let addrs = crate::pinhole::SessionAddrs {
            client: "10.0.0.2".parse().unwrap(),
            orig: "192.0.2.10".parse().unwrap(),
            server: "192.0.2.10".parse().unwrap(),
            proxy: "192.0.2.1".parse().unwrap(),
        };
        let p = Pinhole::passive(&addrs, 0x1234, 0xc350);
        let opts = RuleOptions {
            client_rdomain: Some(0),
            proxy_rdomain: Some(0),
            ..Default::default()
        };
        let [rdr, nat] = rule::pinhole_rules(&p, &opts).unwrap();
        let mut r = sys::pf_rule::default();
        fill_rule(&mut r, &rdr).unwrap();
        assert_eq!(r.dst.port[0].to_ne_bytes(), [0xc3, 0x50]);
        assert_eq!(r.rdr.proxy_port, [0x1234, 0]);
        assert_eq!(u32::from(r.nat.addr.type_), sys::PF_ADDR_NONE);
        assert_eq!(u32::from(r.rdr.addr.type_), sys::PF_ADDR_ADDRMASK);
        assert_eq!(
            (r.quick, r.keep_state, r.max_states, r.flags, r.flagset),
            (1, 1, 1, 2, 0x12)
        );
        assert_eq!(r.rule_flag & sys::PFRULE_ONCE, 0);
        let mut n = sys::pf_rule::default();
        fill_rule(&mut n, &nat).unwrap();
        assert_eq!(u32::from(n.rdr.addr.type_), sys::PF_ADDR_NONE);
        assert_eq!(n.nat.proxy_port, [50001, 65535]);
        assert_eq!(n.rtableid, -1);
    }

    #[test]
    fn names_fit_or_fail() {
        let mut buf = [1 as c_char; 4];
        copy_name(&mut buf, "abc").unwrap();
        assert_eq!(c_name(&buf), "abc");
        assert!(copy_name(&mut buf, "abcd").is_err());
    }
}
