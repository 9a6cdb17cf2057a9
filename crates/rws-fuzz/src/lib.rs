//! The bodies of rws's fuzz targets: one function per parser that takes bytes from outside the
//! process (signature files, oracle heads, manifests, configs, sensor lines and the line reader, control
//! requests, raw and PNG/JPEG frames, key and seal files). Each feeds the bytes through the
//! same code the daemon and the tools run, then checks what a success promises (finite values,
//! bounded sizes, coefficients inside the policy's cap): a panic or a failed check is a finding.
//!
//! `fuzz/fuzz_targets/<name>.rs` calls [`run`] with its name under libFuzzer; the `corpus`
//! test replays every file of `fuzz/corpus/<name>/` through the same function, so what the
//! fuzzer found stays covered in CI (docs/reliability.md has the runs).

mod frames;
mod parsers;

/// A target: its name (the directory under `fuzz/corpus/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("rws_file", parsers::rws_file),
    ("oracle_file", parsers::oracle_file),
    ("manifest", parsers::manifest),
    ("config", parsers::config),
    ("sensor_pwd", parsers::sensor_pwd),
    ("sensor_nmea", parsers::sensor_nmea),
    ("sensor_camera", parsers::sensor_camera),
    ("line_reader", parsers::line_reader),
    ("control", parsers::control),
    ("trust", parsers::trust),
    ("frame_raw", frames::frame_raw),
    ("frame_image", frames::frame_image),
];

/// Runs target `name` on `data`; false when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => {
            body(data);
            true
        }
        None => false,
    }
}

/// The repository's root (the targets read the shipped signature set and configs from it).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
