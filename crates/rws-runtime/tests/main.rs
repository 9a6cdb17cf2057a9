//! rws-runtime's integration tests, one module per area, linked into one test binary.

mod runtime;
