//! pf's own text: a rule in pf.conf syntax, as `pfctl -a 'ftp-proxy/*' -sr`
//! prints it.
//!
//! Rendered from the very [`RuleSpec`]s the backend gives the kernel, so the
//! `-D 7` log line (`#<id> rules: …`) says what was installed, field for
//! field; the OpenBSD regress compares it with pfctl's listing. pfctl's
//! print_rule decides the order and the defaults left out: `log (all)` for
//! every log flag beyond PF_LOG, no `quick` for match rules, `set (queue Q)`
//! before `keep state`, `tag` and `rtable` before the translation, and no
//! nat-to port range when it is the default 50001:65535.

use std::fmt::Write as _;

use super::rule::{Action, Direction, RuleSpec};
use crate::pinhole::NAT_PORTS;

/// One rule, one line, without the newline.
pub fn render(r: &RuleSpec) -> String {
    let mut s = String::from(match r.action {
        Action::Pass => "pass",
        Action::Match => "match",
    });
    s += match r.direction {
        Direction::In => " in",
        Direction::Out => " out",
    };
    if r.log != 0 {
        s += " log";
        if r.log & !0x01 != 0 {
            s += " (all)";
        }
    }
    if r.quick {
        s += " quick";
    }
    if r.onrdomain >= 0 {
        let _ = write!(s, " on rdomain {}", r.onrdomain);
    }
    s += if r.src.is_ipv4() { " inet" } else { " inet6" };
    let _ = write!(
        s,
        " proto tcp from {} to {} port = {} flags S/SA",
        r.src,
        r.dst,
        r.dst_port()
    );
    if let Some(q) = &r.qname {
        let _ = write!(s, " set (queue {q})");
    }
    s += " keep state (max 1)";
    if let Some(t) = &r.tagname {
        let _ = write!(s, " tag {t}");
    }
    if r.rtableid >= 0 {
        let _ = write!(s, " rtable {}", r.rtableid);
    }
    if let Some(p) = &r.rdr {
        let _ = write!(s, " rdr-to {}", p.addr);
        let [lo, hi] = p.proxy_port;
        if lo != 0 {
            let _ = write!(s, " port {lo}");
            if hi != 0 && hi != lo {
                let _ = write!(s, ":{hi}");
            }
        }
    }
    if let Some(p) = &r.nat {
        let _ = write!(s, " nat-to {}", p.addr);
        let [lo, hi] = p.proxy_port;
        if (lo, hi) != (*NAT_PORTS.start(), *NAT_PORTS.end()) && (lo, hi) != (0, 0) {
            let _ = if lo == hi {
                write!(s, " port {lo}")
            } else {
                write!(s, " port {lo}:{hi}")
            };
        }
    }
    s
}

/// The rules of one anchor, one line each, in the order they were added.
pub fn describe(rules: &[RuleSpec]) -> Vec<String> {
    rules.iter().map(render).collect()
}

#[cfg(test)]
mod tests {
    use super::super::rule::{pinhole_rules, RuleOptions};
    use super::*;
    use crate::pinhole::{Mode, Pinhole, SessionAddrs};

    fn v4() -> SessionAddrs {
        SessionAddrs {
            client: "10.0.0.2".parse().unwrap(),
            orig: "192.0.2.10".parse().unwrap(),
            server: "192.0.2.10".parse().unwrap(),
            proxy: "192.0.2.1".parse().unwrap(),
        }
    }

    /// Reverse mode (-R): the server differs from the original destination.
    fn v6_reverse() -> SessionAddrs {
        SessionAddrs {
            client: "2001:db8:1::2".parse().unwrap(),
            orig: "2001:db8:2::10".parse().unwrap(),
            server: "2001:db8:3::20".parse().unwrap(),
            proxy: "2001:db8:3::1".parse().unwrap(),
        }
    }

    /// The two lines the backend logs for `p`, each ending in a newline.
    fn render(p: &Pinhole, opts: &RuleOptions) -> String {
        describe(&pinhole_rules(p, opts).unwrap())
            .into_iter()
            .map(|l| l + "\n")
            .collect()
    }

    #[test]
    fn passive_inet_defaults() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA keep state (max 1) rdr-to 192.0.2.10 port 40000\n\
             pass out quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA keep state (max 1) nat-to 192.0.2.1\n"
        );
    }

    #[test]
    fn active_inet_defaults() {
        let p = Pinhole::active(&v4(), 2000, 60000, false);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) rdr-to 10.0.0.2 port 2000\n\
             pass out quick inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn active_inet_rfc_mode_comes_from_port_20() {
        let p = Pinhole::active(&v4(), 2000, 60000, true);
        assert!(render(&p, &RuleOptions::default())
            .ends_with(" flags S/SA keep state (max 1) nat-to 192.0.2.10 port 20\n"));
    }

    #[test]
    fn passive_inet6_reverse_mode() {
        let p = Pinhole::passive(&v6_reverse(), 1024, 49152);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet6 proto tcp from 2001:db8:1::2 to 2001:db8:2::10 port = 49152 flags S/SA keep state (max 1) rdr-to 2001:db8:3::20 port 1024\n\
             pass out quick inet6 proto tcp from 2001:db8:1::2 to 2001:db8:3::20 port = 1024 flags S/SA keep state (max 1) nat-to 2001:db8:3::1\n"
        );
    }

    #[test]
    fn active_inet6_reverse_mode() {
        // The client sees the data connection come from the server it meant
        // (orig), not from the fixed server.
        let p = Pinhole::active(&v6_reverse(), 3000, 65534, false);
        assert_eq!(
            render(&p, &RuleOptions::default()),
            "pass in quick inet6 proto tcp from 2001:db8:3::20 to 2001:db8:3::1 port = 65534 flags S/SA keep state (max 1) rdr-to 2001:db8:1::2 port 3000\n\
             pass out quick inet6 proto tcp from 2001:db8:3::20 to 2001:db8:1::2 port = 3000 flags S/SA keep state (max 1) nat-to 2001:db8:2::10\n"
        );
    }

    #[test]
    fn openbsd_rdomains_passive_and_active() {
        let opts = RuleOptions {
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
            ..Default::default()
        };
        assert_eq!(
            render(&Pinhole::passive(&v4(), 40000, 55000), &opts),
            "pass in quick on rdomain 3 inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA keep state (max 1) rtable 0 rdr-to 192.0.2.10 port 40000\n\
             pass out quick on rdomain 0 inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA keep state (max 1) nat-to 192.0.2.1\n"
        );
        assert_eq!(
            render(&Pinhole::active(&v4(), 2000, 60000, false), &opts),
            "pass in quick on rdomain 0 inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) rtable 3 rdr-to 10.0.0.2 port 2000\n\
             pass out quick on rdomain 3 inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn log_levels() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        let one = render(
            &p,
            &RuleOptions {
                log: 1,
                ..Default::default()
            },
        );
        assert!(one.starts_with("pass in log quick inet proto tcp "));
        assert!(one.contains("\npass out log quick inet proto tcp "));
        let two = render(
            &p,
            &RuleOptions {
                log: 2,
                ..Default::default()
            },
        );
        assert!(two.starts_with("pass in log (all) quick inet proto tcp "));
        assert!(two.contains("\npass out log (all) quick inet proto tcp "));
    }

    #[test]
    fn queue_is_a_set_action_before_the_state() {
        let p = Pinhole::passive(&v4(), 40000, 55000);
        let opts = RuleOptions {
            queue: Some("ftpq".into()),
            ..Default::default()
        };
        assert_eq!(
            render(&p, &opts),
            "pass in quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 55000 flags S/SA set (queue ftpq) keep state (max 1) rdr-to 192.0.2.10 port 40000\n\
             pass out quick inet proto tcp from 10.0.0.2 to 192.0.2.10 port = 40000 flags S/SA set (queue ftpq) keep state (max 1) nat-to 192.0.2.1\n"
        );
    }

    #[test]
    fn tag_makes_match_rules_without_quick() {
        let p = Pinhole::active(&v4(), 2000, 60000, false);
        let opts = RuleOptions {
            tag: Some("FTP".into()),
            ..Default::default()
        };
        assert_eq!(
            render(&p, &opts),
            "match in inet proto tcp from 192.0.2.10 to 192.0.2.1 port = 60000 flags S/SA keep state (max 1) tag FTP rdr-to 10.0.0.2 port 2000\n\
             match out inet proto tcp from 192.0.2.10 to 10.0.0.2 port = 2000 flags S/SA keep state (max 1) tag FTP nat-to 192.0.2.10\n"
        );
    }

    #[test]
    fn every_option_at_once_inet6_active_rfc() {
        let p = Pinhole::active(&v6_reverse(), 2000, 60000, true);
        let opts = RuleOptions {
            log: 2,
            tag: Some("FTP".into()),
            queue: Some("ftpq".into()),
            client_rdomain: Some(3),
            proxy_rdomain: Some(0),
        };
        assert_eq!(
            render(&p, &opts),
            "match in log (all) on rdomain 0 inet6 proto tcp from 2001:db8:3::20 to 2001:db8:3::1 port = 60000 flags S/SA set (queue ftpq) keep state (max 1) tag FTP rtable 3 rdr-to 2001:db8:1::2 port 2000\n\
             match out log (all) on rdomain 3 inet6 proto tcp from 2001:db8:3::20 to 2001:db8:1::2 port = 2000 flags S/SA set (queue ftpq) keep state (max 1) tag FTP nat-to 2001:db8:2::10 port 20\n"
        );
    }

    /// Every mode × family × -v × -T × -q × rdomain combination: the parts
    /// each option adds are present exactly when it is set, in pfctl's order.
    #[test]
    fn option_matrix_properties() {
        for addrs in [v4(), v6_reverse()] {
            let inet = if addrs.client.is_ipv4() {
                " inet "
            } else {
                " inet6 "
            };
            for (mode, rfc) in [
                (Mode::Passive, false),
                (Mode::Active, false),
                (Mode::Active, true),
            ] {
                let p = match mode {
                    Mode::Passive => Pinhole::passive(&addrs, 40000, 55000),
                    Mode::Active => Pinhole::active(&addrs, 40000, 55000, rfc),
                };
                for opts in all_options() {
                    let text = render(&p, &opts);
                    let lines: Vec<&str> = text.lines().collect();
                    assert_eq!(lines.len(), 2, "{text}");
                    for (i, line) in lines.iter().enumerate() {
                        let verb = if opts.tag.is_some() { "match" } else { "pass" };
                        let dir = if i == 0 { "in" } else { "out" };
                        assert!(line.starts_with(&format!("{verb} {dir} ")), "{line}");
                        assert_eq!(line.contains(" quick "), opts.tag.is_none(), "{line}");
                        assert_eq!(
                            line.contains(" log quick ")
                                || line.contains(" log on ")
                                || line.contains(" log inet"),
                            opts.log == 1,
                            "{line}"
                        );
                        assert_eq!(line.contains(" log (all) "), opts.log == 2, "{line}");
                        assert_eq!(
                            line.contains(" set (queue "),
                            opts.queue.is_some(),
                            "{line}"
                        );
                        assert_eq!(line.contains(" tag "), opts.tag.is_some(), "{line}");
                        assert!(line.contains(inet), "{line}");
                        assert!(line.contains(" flags S/SA "), "{line}");
                        assert!(line.contains(" keep state (max 1)"), "{line}");
                        let on_rdomain = line.contains(" on rdomain ");
                        let rd = if (i == 0) == (mode == Mode::Passive) {
                            opts.client_rdomain
                        } else {
                            opts.proxy_rdomain
                        };
                        assert_eq!(on_rdomain, rd.is_some(), "{line}");
                        let order = [" flags ", " keep state ", " rdr-to ", " nat-to "];
                        let pos: Vec<usize> = order.iter().filter_map(|t| line.find(t)).collect();
                        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{line}");
                    }
                    assert!(lines[0].contains(" rdr-to ") && !lines[0].contains(" nat-to "));
                    assert!(lines[1].contains(" nat-to ") && !lines[1].contains(" rdr-to "));
                    // Only the redirect routes in a table; the nat rule's
                    // rtableid stays -1 and pfctl prints nothing.
                    assert!(!lines[1].contains(" rtable "));
                    assert_eq!(lines[1].ends_with(" port 20"), rfc);
                }
            }
        }
    }

    /// The option sets the matrix runs over.
    fn all_options() -> Vec<RuleOptions> {
        let mut all = Vec::new();
        for log in 0..=2 {
            for tag in [None, Some("FTP".to_string())] {
                for queue in [None, Some("ftpq".to_string())] {
                    for (client_rdomain, proxy_rdomain) in
                        [(None, None), (Some(0), Some(0)), (Some(3), Some(5))]
                    {
                        all.push(RuleOptions {
                            log,
                            tag: tag.clone(),
                            queue: queue.clone(),
                            client_rdomain,
                            proxy_rdomain,
                        });
                    }
                }
            }
        }
        all
    }
}
