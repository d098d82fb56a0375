//! Helpers shared by the storage tests: capturing what the code under test logs.
//!
//! Tests run on parallel threads, and tracing caches per-callsite interest globally, so a
//! scoped subscriber per test is racy. Instead one global subscriber writes into a buffer of
//! the thread that logged, and each test reads its own thread's buffer.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Once;

thread_local! {
    static CAPTURED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct ThreadSink;

impl Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|c| c.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns what it logged on this thread.
pub fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (String, T) {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| ThreadSink)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
    let out = f();
    let logs = CAPTURED.with(|c| String::from_utf8_lossy(&c.borrow()).into_owned());
    (logs, out)
}
