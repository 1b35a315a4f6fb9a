//! The [`Filter`] over pf, through a [`Device`]: `/dev/pf` on OpenBSD.
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
//!
//! The code also compiles on an x86_64 host given OpenBSD headers (see
//! build.rs), so that tests drive it against a model of the kernel.

use std::collections::{HashMap, HashSet};
use std::ffi::c_char;
use std::io;
use std::net::IpAddr;

use nix::errno::Errno;

use super::anchor;
use super::arg::{c_name, Arg};
use super::conf;
use super::device::{Device, Request};
use super::rule::{self, Action, Direction, Pool, RuleOptions, RuleSpec};
use super::sys;
use crate::filter::{Filter, SessionId};
use crate::pinhole::Pinhole;

/// The pf backend: the device and what the sessions' rules share.
pub struct Pf {
    dev: Box<dyn Device>,
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
    /// Opens `/dev/pf` read-write (as root, before the chroot), then as
    /// [`Pf::with_device`]; a missing `proxy_rdomain` is taken from
    /// getrtable(2). Errors read like the original's start-up errors:
    /// `open /dev/pf: …`, `DIOCGETSTATUS: …`, `pf is disabled`.
    ///
    /// Must run before pledge(2): the stale-anchor listing
    /// (DIOCGETRULESETS/DIOCGETRULESET) is not in the `pf` promise.
    #[cfg(target_os = "openbsd")]
    pub fn new(mut opts: RuleOptions) -> Result<Pf, String> {
        let dev =
            super::device::DevPf::open().map_err(|e| format!("open /dev/pf: {}", strerror(&e)))?;
        if opts.proxy_rdomain.is_none() {
            opts.proxy_rdomain = Some(crate::sys::proxy_rdomain());
        }
        Pf::with_device(Box::new(dev), opts)
    }

    /// The backend over `dev`: checks that pf is enabled and empties the
    /// anchors of dead instances.
    ///
    /// `opts` carries -v, -T, -q and the proxy's rdomain (0 when None);
    /// the client's rdomain comes per session through
    /// [`Filter::set_client_rdomain`].
    pub fn with_device(dev: Box<dyn Device>, mut opts: RuleOptions) -> Result<Pf, String> {
        let mut pf = Pf {
            dev,
            opts: RuleOptions::default(),
            client_rdomains: HashMap::new(),
            anchors: HashSet::new(),
            installed: HashMap::new(),
            startup: Vec::new(),
        };
        let mut status = Arg::<sys::pf_status>::new();
        pf.dev
            .ioctl(Request::GetStatus(&mut status))
            .map_err(|e| format!("DIOCGETSTATUS: {}", e.desc()))?;
        if status.get().running == 0 {
            return Err("pf is disabled".into());
        }
        opts.proxy_rdomain.get_or_insert(0);
        opts.client_rdomain = None;
        pf.opts = opts;
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
    fn child_anchors(&mut self, parent: &str) -> io::Result<Vec<String>> {
        let mut rs = Arg::<sys::pfioc_ruleset>::new();
        copy_name(&mut rs.get_mut().path, parent)?;
        match self.dev.ioctl(Request::GetRulesets(&mut rs)) {
            Ok(()) => {}
            Err(Errno::EINVAL) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        let mut names = Vec::new();
        for n in 0..rs.get().nr {
            let mut one = Arg::<sys::pfioc_ruleset>::new();
            copy_name(&mut one.get_mut().path, parent)?;
            one.get_mut().nr = n;
            match self.dev.ioctl(Request::GetRuleset(&mut one)) {
                Ok(()) => names.push(c_name(&one.get().name)),
                // The set changed under us: work with what was listed.
                Err(Errno::EBUSY) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(names)
    }

    /// Replaces the rules of anchor `path` with `rules` (none: empty the
    /// anchor, which pf then deletes).
    ///
    /// A commit refused with EBUSY means another process opened a
    /// transaction on the same anchor after ours (pfctl on `ftp-proxy/*`):
    /// our ticket is stale for good, so the whole transaction is tried once
    /// more with a fresh one.
    fn transaction(&mut self, path: &str, rules: &[RuleSpec]) -> io::Result<()> {
        match self.try_transaction(path, rules) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.try_transaction(path, rules),
            other => other,
        }
    }

    fn try_transaction(&mut self, path: &str, rules: &[RuleSpec]) -> io::Result<()> {
        let mut elem = Arg::<sys::pfioc_trans_e>::new();
        elem.get_mut().type_ = sys::PF_TRANS_RULESET as i32;
        copy_name(&mut elem.get_mut().anchor, path)?;
        self.dev.ioctl(Request::XBegin(&mut elem))?;
        for spec in rules {
            let mut pr = Arg::<sys::pfioc_rule>::new();
            pr.get_mut().ticket = elem.get().ticket;
            copy_name(&mut pr.get_mut().anchor, path)?;
            fill_rule(&mut pr.get_mut().rule, spec)?;
            self.dev.ioctl(Request::AddRule(&mut pr))?;
        }
        self.dev.ioctl(Request::XCommit(&mut elem))?;
        Ok(())
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
/// zero (it lives in a zeroed [`Arg`](super::arg::Arg) buffer); only the
/// fields set here differ from zero.
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

/// OpenBSD's address family numbers, from its headers (AF_INET6 is 24
/// there, 10 on Linux: the host's libc must not decide).
fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => sys::AF_INET as u8,
        IpAddr::V6(_) => sys::AF_INET6 as u8,
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
    use super::super::ioc::amd64_rev1_543 as rev;
    use super::*;
    use std::mem::size_of;

    #[cfg(target_os = "openbsd")]
    #[test]
    fn nix_request_numbers_are_the_ioccom_formula() {
        let pairs = [
            (nr::DIOCADDRULE, size_of::<sys::pfioc_rule>()),
            (nr::DIOCGETSTATUS, size_of::<sys::pf_status>()),
            (nr::DIOCGETRULESETS, size_of::<sys::pfioc_ruleset>()),
            (nr::DIOCXBEGIN, size_of::<sys::pfioc_trans>()),
        ];
        use super::super::ioc::{self, nr, PF_GROUP};
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
    fn filled_rule_has_port_orders_unused_pool_and_state_options_right() {
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
