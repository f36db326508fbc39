//! Terminal events for an async front end: crossterm's reads block, so a thread polls them
//! and forwards each to a channel the event loop selects on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;

/// How often the thread looks at its stop flag between events.
const POLL: Duration = Duration::from_millis(100);

/// The thread reading terminal events; [`KeyReader::stop`] ends it.
pub struct KeyReader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl KeyReader {
    /// Starts the thread; events arrive on the returned receiver until the terminal
    /// fails, the receiver is dropped or the reader is stopped.
    pub fn start() -> (KeyReader, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match event::poll(POLL) {
                    Ok(true) => {
                        let sent = event::read().map(|ev| tx.blocking_send(ev).is_ok());
                        if !matches!(sent, Ok(true)) {
                            return;
                        }
                    }
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        });
        (KeyReader { stop, thread }, rx)
    }

    /// Stops the thread and waits for it (at most one poll interval).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
