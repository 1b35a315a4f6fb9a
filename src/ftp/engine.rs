//! The per-session protocol state machine. (Implementation pending.)

use crate::log::Level;
use crate::pinhole::SessionAddrs;

use super::{Action, ProxyPorts};

/// What the engine needs from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// `-A`: only USER ftp / USER anonymous reach the server.
    pub anonymous_only: bool,
    /// `-6`: PASV and PORT end the session; EPRT is re-emitted as `|2|`.
    pub ipv6: bool,
    /// `-r`: active-mode data connections from PORT come from port 20.
    pub rfc_mode: bool,
    /// The `-D` threshold: [`Action::Log`] is only produced at or above it.
    pub log_level: Level,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    addrs: SessionAddrs,
}

impl Engine {
    pub fn new(config: EngineConfig, addrs: SessionAddrs) -> Engine {
        Engine { config, addrs }
    }

    /// Bytes the client sent. Appends what to do to `out`.
    pub fn client_input(
        &mut self,
        bytes: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        let _ = (bytes, ports, &self.config, &self.addrs);
        out.push(Action::ToServer(bytes.to_vec()));
    }

    /// Bytes the server sent. Appends what to do to `out`.
    pub fn server_input(
        &mut self,
        bytes: &[u8],
        ports: &mut dyn ProxyPorts,
        out: &mut Vec<Action>,
    ) {
        let _ = ports;
        out.push(Action::ToClient(bytes.to_vec()));
    }
}
