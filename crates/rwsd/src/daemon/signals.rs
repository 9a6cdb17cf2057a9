//! SIGHUP, SIGTERM and SIGINT as flags the frame loop polls between frames: the handlers do no
//! work (signal-hook sets an atomic), so nothing runs in signal context.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// The daemon's signal flags.
pub struct Signals {
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGHUP, hup.clone()).context("installing SIGHUP")?;
        signal_hook::flag::register(SIGTERM, term.clone()).context("installing SIGTERM")?;
        signal_hook::flag::register(SIGINT, term.clone()).context("installing SIGINT")?;
        Ok(Signals { hup, term })
    }

    /// SIGTERM or SIGINT arrived.
    pub fn terminated(&self) -> bool {
        self.term.load(Ordering::Relaxed)
    }

    /// SIGHUP arrived since the last call.
    pub fn take_hangup(&self) -> bool {
        self.hup.swap(false, Ordering::Relaxed)
    }
}
