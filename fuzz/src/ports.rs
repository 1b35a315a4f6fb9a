//! The proxy ports the harness hands the engine, and a record of them.

use ftp_proxy::ftp::ProxyPorts;

/// The allocator's range (IPPORT_HIFIRSTAUTO ..= IPPORT_HILASTAUTO - 1).
pub const FIRST: u16 = 49152;
pub const LAST: u16 = 65534;

/// Hands out ports in 49152..=65534, as the daemon's allocator does, and
/// remembers every port handed out since the last [`FuzzPorts::take`].
#[derive(Debug)]
pub struct FuzzPorts {
    next: u16,
    picked: Vec<u16>,
}

impl FuzzPorts {
    pub fn new(first: u16) -> FuzzPorts {
        FuzzPorts {
            next: first.clamp(FIRST, LAST),
            picked: Vec::new(),
        }
    }

    /// The ports picked since the last call.
    pub fn take(&mut self) -> Vec<u16> {
        std::mem::take(&mut self.picked)
    }
}

impl ProxyPorts for FuzzPorts {
    fn pick(&mut self, avoid: u16) -> u16 {
        let mut port = self.next;
        if port == avoid {
            port = if port >= LAST { FIRST } else { port + 1 };
        }
        self.next = if port >= LAST { FIRST } else { port + 1 };
        self.picked.push(port);
        port
    }

    /// Nothing to give back: ports are handed out in turn, never checked
    /// against the live ones.
    fn release(&mut self, _port: u16) {}
}
