//! Targets for the text and binary parsers: the `.rws` reader, the manifest, the daemon's
//! config, the three sensor protocols, the line reader, control requests and the trust files.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rws_signature::manifest::Manifest;
use rws_signature::SignatureFile;
use rwsd::config::Config;
use rwsd::control::{respond, Shared};
use rwsd::policy::Engine;
use rwsd::sensors::line::{self, LineReader, Next};
use rwsd::sensors::Protocol;

/// A `.rws` file as it arrives, then with its header checksum recomputed: without the second
/// pass nearly every mutation of the header or table would stop at `header_crc`.
pub fn rws_file(data: &[u8]) {
    open_rws(data);
    let mut sealed = data.to_vec();
    if rws_signature::format::writer::seal_header(&mut sealed) {
        open_rws(&sealed);
    }
}

fn open_rws(data: &[u8]) {
    let Ok(sig) = SignatureFile::from_bytes(data, "fuzz.rws") else {
        return;
    };
    // Accepted: every payload is the size its shape says, and its values are finite.
    for (i, t) in sig.tensors().iter().enumerate() {
        let values = sig.data(i).to_f32();
        assert_eq!(values.len(), t.numel(), "tensor '{}'", t.name);
        assert!(values.iter().all(|v| v.is_finite()), "tensor '{}'", t.name);
    }
    assert!(sig.metadata().validate().is_ok());
}

/// A `manifest.json`.
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::parse(Path::new("manifest.json"), data) else {
        return;
    };
    let _ = m.model_expected();
    let _ = m.missing_digest();
    for e in &m.signatures {
        let _ = Manifest::signature_expected(e);
        assert!(m.find(&e.corruption).is_some());
    }
}

/// Where config text is anchored: relative paths resolve as for a file in
/// `firmware-config/`, so `../signatures` is the shipped set.
fn config_path() -> PathBuf {
    crate::repo_root().join("firmware-config/fuzz.toml")
}

/// An `rwsd` config file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Config::parse(&config_path(), text) else {
        return;
    };
    assert_eq!(c.signatures.len(), c.signature_expected.len());
    assert_eq!(c.sensors.len(), c.stale_after.len());
    assert!(c.policy.max_total_alpha.is_finite() && c.policy.max_total_alpha >= 0.0);
}

pub fn sensor_pwd(data: &[u8]) {
    sensor(Protocol::Pwd, data);
}

pub fn sensor_nmea(data: &[u8]) {
    sensor(Protocol::Nmea, data);
}

pub fn sensor_camera(data: &[u8]) {
    sensor(Protocol::Camera, data);
}

/// Each line of `data` as a live line and as a replay-log line (`<seconds> <line>`); what a
/// protocol accepts is a finite reading.
fn sensor(p: Protocol, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for l in text.split('\n') {
        check_signals(p, l);
        if let Ok((t, rest)) = line::split_timestamp(l) {
            assert!(t.is_finite(), "timestamp {t} from {l:?}");
            check_signals(p, rest);
        }
    }
}

fn check_signals(p: Protocol, l: &str) {
    if let Ok(signals) = p.parse(l) {
        for (name, v) in signals {
            assert!(v.is_finite(), "{p}: {name} = {v} from {l:?}");
            assert!(p.produces(&name), "{p}: unlisted signal {name} from {l:?}");
        }
    }
}

/// A byte stream that arrives in uneven pieces, with a timeout now and then, as a serial port
/// delivers it: the input's first two bytes choose the line limit and the rhythm.
struct Chunks<'a> {
    data: &'a [u8],
    step: usize,
    reads: usize,
    timeouts: bool,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.timeouts && self.reads.is_multiple_of(3) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let n = (1 + (self.reads * self.step) % 97)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The sensor line reader: every line it gives is within its limit and has no newline, and
/// the stream ends.
pub fn line_reader(data: &[u8]) {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let max = 1 + usize::from(*a) * 2;
    let mut r = LineReader::with_max(
        Chunks {
            data: rest,
            step: usize::from(*b >> 1),
            reads: 0,
            timeouts: b & 1 == 1,
        },
        max,
    );
    // Each read gives at least one byte or a timeout: twice the input's length in reads.
    for _ in 0..(2 * rest.len() + 8) * 2 {
        match r.next_line() {
            Ok(Next::Line(l)) => assert!(l.len() <= max && !l.contains('\n'), "{l:?}"),
            Ok(Next::Eof) => return,
            Ok(_) => {}
            Err(e) => panic!("a Cursor-like stream failed: {e}"),
        }
    }
    panic!("the reader did not reach the end of {} bytes", rest.len());
}

/// The shipped demo config's policy (its signatures, rules and cap), read once.
fn demo_policy() -> &'static (rwsd::policy::Policy, Vec<f64>) {
    static P: OnceLock<(rwsd::policy::Policy, Vec<f64>)> = OnceLock::new();
    P.get_or_init(|| {
        let path = crate::repo_root().join("firmware-config/demo.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("the demo config: {e}"));
        (c.policy, c.stale_after)
    })
}

/// One control request line against a fresh engine on the demo's policy: the answer is
/// serializable, and whatever it did, the coefficients stay finite, non-negative and inside
/// the policy's cap.
pub fn control(data: &[u8]) {
    let (policy, stale) = demo_policy();
    let shared = Shared::new(Engine::new(policy.clone(), stale.clone()));
    let response = respond(data, &shared);
    assert!(serde_json::to_string(&response).is_ok());
    let cap = policy.max_total_alpha;
    for t in [0.0, 1.0, 1e6] {
        let alphas = shared.engine().evaluate(t);
        assert!(
            alphas.iter().all(|a| a.is_finite() && *a >= 0.0),
            "{alphas:?}"
        );
        let total: f64 = alphas.iter().sum();
        assert!(total <= cap + 1e-9, "total {total} above the cap {cap}");
    }
}

/// The manifest the trust target's seals are checked against, and a key that did not sign it.
fn trust_fixture() -> &'static (Vec<u8>, Vec<rws_trust::PublicKey>) {
    static F: OnceLock<(Vec<u8>, Vec<rws_trust::PublicKey>)> = OnceLock::new();
    F.get_or_init(|| {
        let m = crate::repo_root().join("signatures/manifest.json");
        let bytes = std::fs::read(&m).unwrap_or_else(|e| panic!("{}: {e}", m.display()));
        let key = rws_trust::SecretKey::generate("fuzz").expect("a fresh key");
        (bytes, vec![key.public()])
    })
}

/// A `.pub` key file and a `manifest.json.sig` seal: a key that parses prints back to itself,
/// and no seal made up from the input passes for the shipped manifest.
pub fn trust(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = rws_trust::PublicKey::parse(Path::new("fuzz.pub"), text) {
        let again = rws_trust::PublicKey::parse(Path::new("again.pub"), &k.to_text());
        assert!(again.is_ok_and(|a| a.id() == k.id()));
    }
    if let Ok(seal) = rws_trust::Seal::parse(Path::new("fuzz.sig"), text) {
        let (manifest, trusted) = trust_fixture();
        assert!(seal
            .verify(Path::new("fuzz.sig"), manifest, trusted)
            .is_err());
    }
}

/// A camera-only oracle head (`oracle.rwo`) as it arrives, then with its trailing checksum
/// recomputed (else nearly every mutation stops at the CRC). An accepted head predicts finite
/// probabilities summing to 1 and severities in 1–5 on any features, and writes back to the
/// same bytes.
pub fn oracle_file(data: &[u8]) {
    open_oracle(data);
    if data.len() >= 4 {
        let mut sealed = data.to_vec();
        let body = sealed.len() - 4;
        let crc = crc32c::crc32c(&sealed[..body]);
        sealed[body..].copy_from_slice(&crc.to_le_bytes());
        open_oracle(&sealed);
    }
}

fn open_oracle(data: &[u8]) {
    let Ok(f) = rws_oracle::OracleFile::parse(Path::new("fuzz.rwo"), data) else {
        return;
    };
    assert_eq!(
        f.to_bytes(),
        data,
        "an accepted head writes back to its bytes"
    );
    let _ = f.check_set(Path::new("fuzz.rwo"), 0, (32, 32), |c| c == "fog");
    let mut head = f.head;
    let n = rws_oracle::N_FEATURES;
    for features in [[0.0; 26], [1e30; 26], [-1e30; 26], [f32::NAN; 26]] {
        debug_assert_eq!(features.len(), n);
        let p = head.predict(&features);
        let sum: f32 = p.probs.iter().sum();
        assert!(p.probs.iter().all(|v| v.is_finite()), "{:?}", p.probs);
        assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
        assert!(
            p.severity[1..].iter().all(|s| (1.0..=5.0).contains(s)),
            "{:?}",
            p.severity
        );
    }
}
