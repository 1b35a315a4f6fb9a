//! A model of the part of OpenBSD's pf_ioctl.c (and pf_ruleset.c) the
//! daemon uses: DIOCXBEGIN, DIOCADDRULE, DIOCXCOMMIT, DIOCGETSTATUS,
//! DIOCGETRULESETS and DIOCGETRULESET, with the checks the kernel makes on
//! their arguments, over the very bytes the backend hands to the seam.
//!
//! State: a tree of anchors under the main ruleset, each with an active and
//! an inactive rule list, the inactive list's version (the transaction
//! ticket) and whether a transaction is open on it. Anchors referenced by a
//! rule of the main ruleset (pf.conf's `anchor "ftp-proxy/*"`) are pinned;
//! any other anchor disappears when a commit leaves it and its children
//! empty, as pf_remove_if_empty_ruleset does.
//!
//! Every call is recorded (name, argument bytes after the call, result) for
//! the assertions and the traces.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::c_char;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ftp_proxy::filter::pf::arg::{addr_mask, c_name, Arg, Plain};
use ftp_proxy::filter::pf::device::{Device, Request};
use ftp_proxy::filter::pf::sys;
use nix::errno::Errno;

/// The anchor pool's hard limit (PF_ANCHOR_HIWAT): anchors beyond it cannot
/// be created.
pub const ANCHOR_LIMIT: usize = 512;
/// PF_ANCHOR_NAME_SIZE: one path component, NUL included.
const NAME_SIZE: usize = 64;
/// PF_ANCHOR_MAXPATH: a parent's path must be shorter to get children.
const MAX_PARENT_PATH: usize = 1024 - NAME_SIZE - 1;
/// TAGID_MAX: pf's tag (and queue) name table holds this many names.
const TAGID_MAX: usize = 50000;
/// RT_TABLEID_MAX.
const RT_TABLEID_MAX: i32 = 255;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// One rule as the model keeps it: the fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub action: u32,
    pub direction: u32,
    pub quick: bool,
    pub log: u8,
    pub af: u8,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Host order (the kernel keeps it in network order).
    pub dst_port: u16,
    pub dst_port_op: u8,
    pub flags: u8,
    pub flagset: u8,
    pub keep_state: u8,
    pub max_states: u32,
    pub onrdomain: i32,
    pub rtableid: i32,
    pub rule_flag: u32,
    /// (address, proxy_port) of a pool whose type is not PF_ADDR_NONE.
    pub rdr: Option<(IpAddr, [u16; 2])>,
    pub nat: Option<(IpAddr, [u16; 2])>,
    pub qname: String,
    pub tagname: String,
}

#[derive(Debug, Default)]
struct Anchor {
    active: Vec<Rule>,
    inactive: Vec<Rule>,
    version: u32,
    open: bool,
    pinned: bool,
}

/// One ioctl as the model saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub name: &'static str,
    /// The argument's bytes after the call; for a transaction, the
    /// `pfioc_trans` (its pointer as zero) followed by its element.
    pub bytes: Vec<u8>,
    pub result: Result<(), Errno>,
}

/// The kernel's state.
#[derive(Debug)]
pub struct Kernel {
    pub running: bool,
    /// kern.securelevel: above 1, pf refuses to change rules (EPERM).
    pub securelevel: i32,
    /// Queues pf.conf defined; a rule naming another fails with EBUSY.
    pub queues: HashSet<String>,
    /// Routing tables that exist; rtableid names one or fails with EBUSY.
    pub rtables: HashSet<i32>,
    /// The next this many DIOCXCOMMITs find that another process (pfctl
    /// -a …) opened a transaction on the same anchor just before: the
    /// daemon's ticket is stale.
    pub busy_commits: u32,
    /// Tag names in use (pf_tagname2tag); a new one beyond TAGID_MAX is
    /// EBUSY.
    pub tags: BTreeSet<String>,
    anchors: BTreeMap<String, Anchor>,
    pub calls: Vec<Call>,
}

impl Kernel {
    /// pf enabled, securelevel 1, queue `ftpq`, rtables 0, 3 and 5, and
    /// pf.conf's `anchor "ftp-proxy/*"`.
    pub fn new() -> Kernel {
        let mut k = Kernel {
            running: true,
            securelevel: 1,
            queues: ["ftpq".to_string()].into(),
            rtables: [0, 3, 5].into(),
            busy_commits: 0,
            tags: BTreeSet::new(),
            anchors: BTreeMap::new(),
            calls: Vec::new(),
        };
        k.create("ftp-proxy").unwrap();
        k.anchors.get_mut("ftp-proxy").unwrap().pinned = true;
        k
    }

    /// Every anchor path, sorted.
    pub fn anchors(&self) -> Vec<String> {
        self.anchors.keys().cloned().collect()
    }

    /// The committed rules of `path`, or None when the anchor does not exist.
    pub fn active(&self, path: &str) -> Option<Vec<Rule>> {
        self.anchors.get(path).map(|a| a.active.clone())
    }

    /// Adds a committed anchor with one rule, as another process left it.
    pub fn preload(&mut self, path: &str, rule: Rule) {
        self.create(path).unwrap();
        self.anchors.get_mut(path).unwrap().active = vec![rule];
    }

    /// The calls since the last take.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    /// Creates `path` and its missing parents, as pf_find_or_create_ruleset:
    /// EINVAL for an empty component, a component of PF_ANCHOR_NAME_SIZE
    /// bytes or more, a parent path too long for children, or no room left
    /// in the anchor pool.
    fn create(&mut self, path: &str) -> Result<(), Errno> {
        let path = path.trim_start_matches('/');
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return Ok(());
        }
        let mut prefix = String::new();
        for name in path.split('/') {
            if name.is_empty() || name.len() >= NAME_SIZE || prefix.len() >= MAX_PARENT_PATH {
                return Err(Errno::EINVAL);
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(name);
            if !self.anchors.contains_key(&prefix) {
                if self.anchors.len() >= ANCHOR_LIMIT {
                    return Err(Errno::EINVAL);
                }
                self.anchors.insert(prefix.clone(), Anchor::default());
            }
        }
        Ok(())
    }

    /// pf_remove_if_empty_ruleset: drops `path` and then its parents while
    /// they are unpinned, childless, without rules and without an open
    /// transaction.
    fn remove_if_empty(&mut self, path: &str) {
        let mut path = path.to_string();
        loop {
            let Some(a) = self.anchors.get(&path) else {
                return;
            };
            let prefix = format!("{path}/");
            let has_children = self.anchors.keys().any(|k| k.starts_with(&prefix));
            if a.pinned || has_children || !a.active.is_empty() || !a.inactive.is_empty() || a.open
            {
                return;
            }
            self.anchors.remove(&path);
            match path.rfind('/') {
                Some(i) => path.truncate(i),
                None => return,
            }
        }
    }

    /// The anchor a NUL-terminated path names ("" is the main ruleset,
    /// which the model does not hold rules for).
    fn find(&self, path: &str) -> Option<&str> {
        let path = path.trim_start_matches('/');
        self.anchors.get_key_value(path).map(|(k, _)| k.as_str())
    }

    fn begin(&mut self, e: &mut sys::pfioc_trans_e) -> Result<(), Errno> {
        if self.securelevel > 1 {
            return Err(Errno::EPERM);
        }
        let path = terminated(&e.anchor).ok_or(Errno::ENAMETOOLONG)?;
        if e.type_ != sys::PF_TRANS_RULESET as i32 {
            return Err(Errno::EINVAL);
        }
        if path.trim_start_matches('/').is_empty() {
            // The kernel would let this transaction replace pf.conf's main
            // ruleset; the model refuses it so that a daemon that tried
            // fails loudly.
            return Err(Errno::EPERM);
        }
        self.create(&path)?;
        let key = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let a = self.anchors.get_mut(&key).expect("just created");
        a.inactive.clear();
        a.version = a.version.wrapping_add(1);
        a.open = true;
        e.ticket = a.version;
        Ok(())
    }

    fn add_rule(&mut self, pr: &mut sys::pfioc_rule) -> Result<(), Errno> {
        if self.securelevel > 1 {
            return Err(Errno::EPERM);
        }
        // Copy-in checks first, as DIOCADDRULE makes them before it looks
        // the ruleset up.
        let rule = self.copy_in(&pr.rule)?;
        let last = pr.anchor.len() - 1;
        pr.anchor[last] = 0;
        let path = c_name(&pr.anchor);
        let key = self.find(&path).ok_or(Errno::EINVAL)?.to_string();
        let a = self.anchors.get_mut(&key).expect("found");
        if pr.ticket != a.version {
            return Err(Errno::EBUSY);
        }
        if !rule.tagname.is_empty() {
            self.tags.insert(rule.tagname.clone());
        }
        a.inactive.push(rule);
        Ok(())
    }

    /// pf_rule_copyin and the checks around it, for the kinds of rules a
    /// proxy can add (no tables, interfaces, route-to or af-to).
    fn copy_in(&mut self, r: &sys::pf_rule) -> Result<Rule, Errno> {
        let action = u32::from(r.action);
        if ![sys::PF_PASS, sys::PF_DROP, sys::PF_MATCH].contains(&action) {
            return Err(Errno::EINVAL);
        }
        let direction = u32::from(r.direction);
        if ![sys::PF_INOUT, sys::PF_IN, sys::PF_OUT].contains(&direction) {
            return Err(Errno::EINVAL);
        }
        // pf_rule_checkaf: inet, inet6 or any; no af-to here.
        let af = r.af;
        if ![0, sys::AF_INET as u8, sys::AF_INET6 as u8].contains(&af) || r.naf != 0 {
            return Err(Errno::EPFNOSUPPORT);
        }
        if af == 0 {
            // A pinhole names its hosts; "any family" cannot carry them.
            return Err(Errno::EINVAL);
        }
        // Port operators only make sense for TCP and UDP.
        if (r.src.port_op != 0 || r.dst.port_op != 0)
            && ![IPPROTO_TCP, IPPROTO_UDP].contains(&r.proto)
        {
            return Err(Errno::EINVAL);
        }
        for ra in [&r.src, &r.dst] {
            if bad_range(
                ra.port_op,
                [u16::from_be(ra.port[0]), u16::from_be(ra.port[1])],
            ) {
                return Err(Errno::EINVAL);
            }
        }
        if bad_range(r.rdr.port_op, r.rdr.proxy_port) {
            return Err(Errno::EINVAL);
        }
        let src = host(&r.src.addr, af)?.ok_or(Errno::EINVAL)?;
        let dst = host(&r.dst.addr, af)?.ok_or(Errno::EINVAL)?;
        let rdr = pool(&r.rdr, af, false)?;
        let nat = pool(&r.nat, af, true)?;
        // The route pool only matters with route-to (rt), which a proxy
        // never sets.
        if r.rt != 0 {
            return Err(Errno::EINVAL);
        }
        if r.rtableid >= 0 && !self.rtables.contains(&r.rtableid) {
            return Err(Errno::EBUSY);
        }
        if r.onrdomain != -1 && !(0..=RT_TABLEID_MAX).contains(&r.onrdomain) {
            return Err(Errno::EINVAL);
        }
        let qname = terminated(&r.qname).ok_or(Errno::EINVAL)?;
        if !qname.is_empty() && !self.queues.contains(&qname) {
            // pf_qname2qid(…, 0) finds no such queue.
            return Err(Errno::EBUSY);
        }
        let tagname = terminated(&r.tagname).ok_or(Errno::EINVAL)?;
        if !tagname.is_empty() && !self.tags.contains(&tagname) && self.tags.len() >= TAGID_MAX {
            return Err(Errno::EBUSY);
        }
        Ok(Rule {
            action,
            direction,
            quick: r.quick != 0,
            log: r.log,
            af,
            proto: r.proto,
            src,
            dst,
            dst_port: u16::from_be(r.dst.port[0]),
            dst_port_op: r.dst.port_op,
            flags: r.flags,
            flagset: r.flagset,
            keep_state: r.keep_state,
            max_states: r.max_states,
            onrdomain: r.onrdomain,
            rtableid: r.rtableid,
            rule_flag: r.rule_flag,
            rdr,
            nat,
            qname,
            tagname,
        })
    }

    fn commit(&mut self, e: &mut sys::pfioc_trans_e) -> Result<(), Errno> {
        if self.securelevel > 1 {
            return Err(Errno::EPERM);
        }
        let path = terminated(&e.anchor).ok_or(Errno::ENAMETOOLONG)?;
        if e.type_ != sys::PF_TRANS_RULESET as i32 {
            return Err(Errno::EINVAL);
        }
        let key = self.find(&path).ok_or(Errno::EBUSY)?.to_string();
        let a = self.anchors.get_mut(&key).expect("found");
        if self.busy_commits > 0 {
            self.busy_commits -= 1;
            // Another process's DIOCXBEGIN on the same anchor.
            a.inactive.clear();
            a.version = a.version.wrapping_add(1);
            a.open = true;
        }
        if !a.open || a.version != e.ticket {
            return Err(Errno::EBUSY);
        }
        a.active = std::mem::take(&mut a.inactive);
        a.open = false;
        self.remove_if_empty(&key);
        Ok(())
    }

    /// The names of the children of `path`, sorted as pf's RB tree.
    fn children(&self, path: &str) -> Result<Vec<String>, Errno> {
        let path = path.trim_start_matches('/');
        if !path.is_empty() && !self.anchors.contains_key(path) {
            return Err(Errno::EINVAL);
        }
        let names: BTreeSet<String> = self
            .anchors
            .keys()
            .filter_map(|k| {
                let rest = if path.is_empty() {
                    Some(k.as_str())
                } else {
                    k.strip_prefix(path)?.strip_prefix('/')
                };
                rest.filter(|r| !r.contains('/')).map(str::to_string)
            })
            .collect();
        Ok(names.into_iter().collect())
    }

    fn get_rulesets(&self, rs: &mut sys::pfioc_ruleset) -> Result<(), Errno> {
        let last = rs.path.len() - 1;
        rs.path[last] = 0;
        rs.nr = self.children(&c_name(&rs.path))?.len() as u32;
        Ok(())
    }

    fn get_ruleset(&self, rs: &mut sys::pfioc_ruleset) -> Result<(), Errno> {
        let last = rs.path.len() - 1;
        rs.path[last] = 0;
        let children = self.children(&c_name(&rs.path))?;
        let name = children.get(rs.nr as usize).ok_or(Errno::EBUSY)?;
        for (d, b) in rs.name.iter_mut().zip(name.bytes().chain([0])) {
            *d = b as c_char;
        }
        Ok(())
    }
}

/// pf_validate_range: a range operator whose bounds select nothing (or
/// everything) is refused.
fn bad_range(op: u8, [a, b]: [u16; 2]) -> bool {
    (u32::from(op) == sys::PF_OP_RRG && a > b)
        || (u32::from(op) == sys::PF_OP_IRG && a >= b)
        || (u32::from(op) == sys::PF_OP_XRG && a > b)
}

/// A NUL-terminated name, or None when the buffer has no NUL.
fn terminated(buf: &[c_char]) -> Option<String> {
    buf.contains(&0).then(|| c_name(buf))
}

/// The host an address of a rule names: None for PF_ADDR_NONE; EINVAL for
/// the types that need tables, interfaces or labels (the model has none)
/// and for unknown types.
fn host(w: &sys::pf_addr_wrap, af: u8) -> Result<Option<IpAddr>, Errno> {
    match u32::from(w.type_) {
        sys::PF_ADDR_NONE => Ok(None),
        sys::PF_ADDR_ADDRMASK => {
            let (addr, mask) = addr_mask(w);
            let ip = if af == sys::AF_INET as u8 {
                if addr[4..].iter().any(|&b| b != 0) {
                    return Err(Errno::EINVAL);
                }
                IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
            } else {
                IpAddr::from(addr)
            };
            // The model only knows single hosts: a full mask over the family.
            let len = if af == sys::AF_INET as u8 { 4 } else { 16 };
            if mask[..len].iter().any(|&b| b != 0xff) || mask[len..].iter().any(|&b| b != 0) {
                return Err(Errno::EINVAL);
            }
            Ok(Some(ip))
        }
        _ => Err(Errno::EINVAL),
    }
}

/// A translation pool: unused (PF_ADDR_NONE), or one usable host with a
/// usable port range. A zeroed pool (ADDRMASK 0/0) would translate to any
/// address and is refused here; so is a nat pool without ports or with
/// them reversed, and an rdr pool without a port.
fn pool(p: &sys::pf_pool, af: u8, nat: bool) -> Result<Option<(IpAddr, [u16; 2])>, Errno> {
    let Some(ip) = host(&p.addr, af)? else {
        return Ok(None);
    };
    if ip.is_unspecified() {
        return Err(Errno::EINVAL);
    }
    let [lo, hi] = p.proxy_port;
    let usable = if nat {
        lo != 0 && lo <= hi
    } else {
        lo != 0 && (hi == 0 || hi >= lo)
    };
    if !usable {
        return Err(Errno::EINVAL);
    }
    Ok(Some((ip, p.proxy_port)))
}

/// The daemon's side of the seam: a handle on a shared [`Kernel`].
#[derive(Clone)]
pub struct ModelDev(pub Arc<Mutex<Kernel>>);

impl ModelDev {
    pub fn new(kernel: Kernel) -> ModelDev {
        ModelDev(Arc::new(Mutex::new(kernel)))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Kernel) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

impl Device for ModelDev {
    fn ioctl(&mut self, request: Request<'_>) -> Result<(), Errno> {
        let mut k = self.0.lock().unwrap();
        let name = request.name();
        let (result, bytes) = match request {
            Request::XBegin(e) => (k.begin(e.get_mut()), trans_bytes(e)),
            Request::AddRule(pr) => (k.add_rule(pr.get_mut()), sent(pr)),
            Request::XCommit(e) => (k.commit(e.get_mut()), trans_bytes(e)),
            Request::GetStatus(st) => {
                st.get_mut().running = u32::from(k.running);
                (Ok(()), sent(st))
            }
            Request::GetRulesets(rs) => (k.get_rulesets(rs.get_mut()), sent(rs)),
            Request::GetRuleset(rs) => (k.get_ruleset(rs.get_mut()), sent(rs)),
        };
        k.calls.push(Call {
            name,
            bytes,
            result,
        });
        result
    }
}

/// An argument's bytes after the call, for the record.
fn sent<T: Plain>(a: &Arg<T>) -> Vec<u8> {
    // SAFETY: the backend (dev.rs), the scenarios and this model write pf's
    // arguments one integer, byte array or union field at a time, never a
    // whole structure, so no padding byte was left uninitialised.
    unsafe { a.bytes() }.to_vec()
}

/// `struct pfioc_trans { int size; int esize; pfioc_trans_e *array; }`
/// for one element, the pointer written as zero, followed by the element.
fn trans_bytes(e: &Arg<sys::pfioc_trans_e>) -> Vec<u8> {
    let element = sent(e);
    let mut v = Vec::new();
    v.extend_from_slice(&1i32.to_le_bytes());
    v.extend_from_slice(&(element.len() as i32).to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&element);
    v
}

/// A plain pass rule for preloaded anchors.
pub fn foreign_rule() -> Rule {
    Rule {
        action: sys::PF_PASS,
        direction: sys::PF_IN,
        quick: true,
        log: 0,
        af: sys::AF_INET as u8,
        proto: IPPROTO_TCP,
        src: IpAddr::from([192, 0, 2, 1]),
        dst: IpAddr::from([192, 0, 2, 2]),
        dst_port: 21,
        dst_port_op: sys::PF_OP_EQ as u8,
        flags: 0,
        flagset: 0,
        keep_state: 0,
        max_states: 0,
        onrdomain: -1,
        rtableid: -1,
        rule_flag: 0,
        rdr: None,
        nat: None,
        qname: String::new(),
        tagname: String::new(),
    }
}
