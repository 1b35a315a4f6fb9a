//! The proxy ports (`pport`) told to peers: random, and never shared by two
//! live pinholes.
//!
//! ftp-proxy(8) picks `49152 + uniform(65535 - 49152)` with no check, so two
//! sessions could be handed the same port and install clashing redirects.
//! Here the daemon keeps the set of ports its live pinholes use and draws
//! again on a clash.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use crate::ftp::ProxyPorts;
use crate::sys;

/// IPPORT_HIFIRSTAUTO ..< IPPORT_HILASTAUTO, as the original: 49152..=65534.
pub const PROXY_PORTS: RangeInclusive<u16> = 49152..=65534;

/// Random draws before falling back to a scan; with at most 500 sessions and
/// 16383 ports a draw clashes with probability ≤ 3 %, so 32 draws in a row
/// clash essentially never.
const DRAWS: usize = 32;

/// The daemon-wide allocator of proxy ports.
#[derive(Debug, Default)]
pub struct PortAllocator {
    live: HashSet<u16>,
}

impl PortAllocator {
    pub fn new() -> PortAllocator {
        PortAllocator::default()
    }

    /// How many ports are held.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    fn draw(&self) -> u16 {
        let span = u32::from(PROXY_PORTS.end() - PROXY_PORTS.start()) + 1;
        PROXY_PORTS.start() + sys::random_below(span) as u16
    }
}

impl ProxyPorts for PortAllocator {
    /// A random free port other than `avoid`, now held until
    /// [`PortAllocator::release`].
    fn pick(&mut self, avoid: u16) -> u16 {
        let usable = |ports: &Self, p: u16| p != avoid && !ports.live.contains(&p);
        let mut port = self.draw();
        for _ in 0..DRAWS {
            if usable(self, port) {
                break;
            }
            port = self.draw();
        }
        if !usable(self, port) {
            // Never reached from client input: each session holds the port
            // of its one live pinhole, plus, while one read's actions are
            // carried out, the ports of the pinholes queued from that read
            // (at most one per line of a 4096-byte read), each given back
            // when replaced or not installed. With at most 500 sessions
            // that is far below the range's 16383 ports.
            port = PROXY_PORTS
                .clone()
                .find(|&p| usable(self, p))
                .expect("more live pinholes than proxy ports");
        }
        self.live.insert(port);
        port
    }

    /// Gives a port back when its pinhole is replaced, removed, or was never
    /// installed.
    fn release(&mut self, port: u16) {
        self.live.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_in_range_and_unique_while_live() {
        let mut ports = PortAllocator::new();
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let p = ports.pick(0);
            assert!(PROXY_PORTS.contains(&p));
            assert!(seen.insert(p), "port {p} handed out twice");
        }
        assert_eq!(ports.live(), 2000);
    }

    #[test]
    fn released_ports_come_back() {
        let mut ports = PortAllocator::new();
        let all: Vec<u16> = (0..PROXY_PORTS.len()).map(|_| ports.pick(0)).collect();
        assert_eq!(ports.live(), PROXY_PORTS.len());
        ports.release(all[7]);
        assert_eq!(ports.pick(0), all[7]);
    }

    #[test]
    fn the_peer_s_data_port_is_never_handed_out() {
        let mut ports = PortAllocator::new();
        // Hold every port but two, then ask while avoiding one of them.
        let free = [50000u16, 60000];
        for p in PROXY_PORTS.clone().filter(|p| !free.contains(p)) {
            ports.live.insert(p);
        }
        assert_eq!(ports.pick(50000), 60000);
        ports.release(60000);
        for _ in 0..200 {
            let p = ports.pick(60000);
            assert_eq!(p, 50000);
            ports.release(p);
        }
    }
}
