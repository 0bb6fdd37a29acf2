//! Results on stdout that survive a closed pipe: `faultline check *.log | head -1` must not
//! panic, and must still check every history and exit with the worst verdict. After the
//! reader goes away the rest of the output is dropped; any other write error is reported.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Print `text` and a newline on stdout, unless whoever read stdout has gone.
pub fn line(text: impl std::fmt::Display) -> std::io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}
