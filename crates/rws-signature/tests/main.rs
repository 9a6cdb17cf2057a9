//! rws-signature's integration tests, one module per area, linked into one test binary.

mod format;
mod patch;
