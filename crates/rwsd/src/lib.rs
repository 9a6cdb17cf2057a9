//! rwsd: the device side of rws as a library, under the `rwsd` daemon and the `rwsctl` client.
//!
//! It owns what happens on the device around the runtime (`rws-runtime`):
//! - [`sensors`]: weather and camera-fault sensor protocols, the line reader and driver threads;
//! - [`policy`]: sensor signals to coefficients (curves, staleness, hysteresis, ramp, cap);
//! - [`replay`]: coefficient traces from recorded sensor logs (gpsd-style regression tests);
//! - [`config`]: the daemon's `firmware-config/*.toml` (schema, validation, loading);
//! - [`frames`]: camera frames in (directory, raw pipe, V4L2), model input out;
//! - [`protocol`], [`control`], [`client`]: the control socket's typed protocol, its server
//!   and its client;
//! - [`daemon`]: the frame loop, reloads and status;
//! - [`source`] and [`health`]: the lifecycle every outside source follows (non-blocking open,
//!   reads with a tick, end or reconnect, stop) and the supervision of the threads that run them;
//! - [`oracle`]: the camera-only oracle: frame statistics to `oracle.*` signals;
//! - [`check`]: what `rwsctl check` verifies without building the model;
//! - [`cli`]: the command lines of `rwsd` and `rwsctl` (also their manual pages).
//!
//! It depends on nothing offline: no training, no corruption code (`.ci/deps` enforces it).

pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod daemon;
pub mod frames;
pub mod health;
pub mod metrics;
pub mod oracle;
pub mod policy;
pub mod protocol;
pub mod ratelimit;
pub mod replay;
pub mod sensors;
pub mod source;
