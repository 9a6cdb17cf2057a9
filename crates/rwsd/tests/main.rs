//! rwsd's integration tests (the daemon and rwsctl as processes, sensors through
//! pseudo-terminals), one module per area, linked into one test binary.

mod daemon;
mod faults;
mod hardening;
mod oracle;
mod packaging;
mod rwsctl;
mod sensors;
mod trust;
