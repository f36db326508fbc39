//! Keeps a handle on every open connection of a blocking model so a shutdown can
//! `shutdown(2)` them: that is what wakes a thread blocked in `read(2)`.

use std::collections::HashMap;
use std::net::{Shutdown as Both, TcpStream};
use std::sync::{Arc, Mutex};

use crate::shutdown::Shutdown;

#[derive(Default)]
struct State {
    next: u64,
    conns: HashMap<u64, TcpStream>,
    /// Set once the shutdown ran; connections registered later are shut at once.
    closed: bool,
}

/// The registry; cheap to clone.
#[derive(Clone, Default)]
pub struct ConnRegistry {
    state: Arc<Mutex<State>>,
}

/// Removes its connection from the registry when dropped.
pub struct Registered {
    id: u64,
    registry: ConnRegistry,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut st = self
            .registry
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        st.conns.remove(&self.id);
    }
}

impl ConnRegistry {
    /// A registry whose connections are shut down when `shutdown` triggers.
    pub fn new(shutdown: &Shutdown) -> Self {
        let reg = ConnRegistry::default();
        let r = reg.clone();
        shutdown.on_trigger(move || r.shutdown_all());
        reg
    }

    /// Tracks `stream` (through a dup of its descriptor) until the guard drops.
    pub fn register(&self, stream: &TcpStream) -> Option<Registered> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            let _ = stream.shutdown(Both::Both);
            return None;
        }
        let dup = stream.try_clone().ok()?;
        let id = st.next;
        st.next += 1;
        st.conns.insert(id, dup);
        Some(Registered {
            id,
            registry: self.clone(),
        })
    }

    /// Shuts down every tracked connection (both directions) and refuses new ones.
    pub fn shutdown_all(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        for s in st.conns.values() {
            let _ = s.shutdown(Both::Both);
        }
    }
}
