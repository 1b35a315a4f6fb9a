//! Anchor names: one per session, `ftp-proxy/<pid>.<id>`, as the original
//! names them, so `pfctl -a 'ftp-proxy/*' -sr` and admins' scripts keep
//! working and the two daemons can share a firewall.

use crate::filter::SessionId;

/// The parent anchor; pf.conf hooks it in with `anchor "ftp-proxy/*"`.
pub const PARENT: &str = "ftp-proxy";

/// pf's limit on an anchor path including the NUL (PATH_MAX).
pub const MAX_PATH: usize = 1024;

/// The anchor of session `id` of process `pid`: `ftp-proxy/12345.7`.
///
/// `pid` is the process's own at the time of the call, i.e. after the
/// daemon forked, which is what makes the name unique per running daemon.
pub fn session_anchor(pid: u32, id: SessionId) -> String {
    format!("{PARENT}/{pid}.{id}")
}

/// The pid and session id of a child anchor's name (`12345.7`), or None for
/// a name this daemon (or the original) would not have made.
pub fn parse_child(name: &str) -> Option<(u32, SessionId)> {
    let (pid, id) = name.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(id) {
        return None;
    }
    Some((pid.parse().ok()?, id.parse().ok()?))
}

/// The children of `ftp-proxy` that belong to processes that no longer
/// exist, as full anchor paths.
///
/// `alive(pid)` reports whether a process exists. Names that do not parse
/// are left alone (they are the admin's), and so are anchors of live
/// processes: a second instance (`-6`) or base's ftp-proxy share the parent.
/// A pid reused by an unrelated process keeps its stale anchor; that errs on
/// the safe side.
pub fn stale<'a>(
    children: impl IntoIterator<Item = &'a str>,
    mut alive: impl FnMut(u32) -> bool,
) -> Vec<String> {
    children
        .into_iter()
        .filter(|name| matches!(parse_child(name), Some((pid, _)) if !alive(pid)))
        .map(|name| format!("{PARENT}/{name}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_the_original() {
        assert_eq!(session_anchor(12345, 7), "ftp-proxy/12345.7");
        assert_eq!(session_anchor(1, u32::MAX), "ftp-proxy/1.4294967295");
        assert!(session_anchor(u32::MAX, u32::MAX).len() < MAX_PATH);
    }

    #[test]
    fn parses_only_pid_dot_id() {
        assert_eq!(parse_child("12345.7"), Some((12345, 7)));
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "a.1",
            "1.a",
            "1.2.3",
            "+1.2",
            "1 .2",
            "99999999999.1",
        ] {
            assert_eq!(parse_child(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stale_keeps_live_processes_and_foreign_names() {
        let children = ["100.1", "100.2", "200.1", "admin", "300.x"];
        let got = stale(children, |pid| pid == 200);
        assert_eq!(got, ["ftp-proxy/100.1", "ftp-proxy/100.2"]);
        assert!(stale(children, |_| true).is_empty());
    }
}
