//! The experiment modes of `rws eval` and `rws calibrate`: deterministic on a fixed subset (the
//! same JSON twice), JSON of the documented shape, bad grids refused, calibrated curves that
//! parse as rwsd policy rules and follow the measured best α, and the committed results and the
//! shipped configs' rules current.

use std::path::{Path, PathBuf};

use rws_lab::experiments::calibrate::{self, Calibration};
use rws_lab::experiments::compose::Compose;
use rws_lab::experiments::cross::Cross;
use rws_lab::experiments::sweep::Sweep;
use rws_testkit::repo;

use crate::rws;

/// `rws ARGS --signatures <the shipped set>`, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let (code, out, err) = rws_on_demo(args);
    assert_eq!(code, 0, "rws {args:?}: {err}");
    out
}

/// `rws ARGS` on the shipped signature set (the tests run in the crate's directory).
fn rws_on_demo(args: &[&str]) -> (i32, String, String) {
    let sigs = repo().join("signatures");
    let mut all = args.to_vec();
    all.extend(["--signatures", sigs.to_str().unwrap()]);
    rws(&all)
}

#[test]
fn sweep_is_deterministic_and_keeps_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let args = [
        "eval",
        "--mode",
        "sweep",
        "--limit",
        "12",
        "--alphas",
        "0,1",
        "--severities",
        "1,5",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ];
    let first = ok(&args);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(first, ok(&args), "same subset, same JSON");
    assert_eq!(drawn, std::fs::read_to_string(&svg).unwrap(), "same figure");
    assert!(
        drawn.starts_with("<svg") && drawn.contains("severity 5"),
        "{}",
        &drawn[..200]
    );
    let s: Sweep = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (
            s.provenance.images,
            s.alphas.as_slice(),
            s.severities.as_slice()
        ),
        (12, &[0.0, 1.0][..], &[1, 5][..])
    );
    assert_eq!(s.rows.len(), 19);
    for r in &s.rows {
        assert_eq!(r.ra.len(), 2);
        assert!(r
            .ra
            .iter()
            .all(|v| v.len() == 2 && v.iter().all(|x| (0.0..=1.0).contains(x))));
        assert_eq!(
            r.ta[0], s.ta_clean,
            "{}: α = 0 is the clean model",
            r.corruption
        );
        for (sev, best) in r.ra.iter().zip(&r.best_alpha) {
            let i = s.alphas.iter().position(|a| a == best).unwrap();
            assert!(
                sev.iter().all(|&x| x <= sev[i]),
                "{}: best α has the top RA",
                r.corruption
            );
        }
    }
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(v["command"]
        .as_str()
        .unwrap()
        .starts_with("rws eval --mode sweep"));
    assert!(v["best_alpha_per_severity"].is_array() && v["best_alpha_non_decreasing"].is_boolean());
}

#[test]
fn cross_and_compose_are_deterministic_and_keep_their_shape() {
    let args = [
        "eval",
        "--mode",
        "cross",
        "--limit",
        "10",
        "--severity",
        "5",
        "--json",
    ];
    let first = ok(&args);
    assert_eq!(first, ok(&args));
    let c: Cross = serde_json::from_str(&first).unwrap();
    assert_eq!((c.names.len(), c.ra.len(), c.clean.len()), (19, 19, 19));
    for (j, b) in c.best_other.iter().enumerate() {
        assert_eq!(b.own_gain, c.ra[j][j] - c.clean[j]);
        assert_ne!(b.signature, b.corruption);
        let i = c.names.iter().position(|n| *n == b.signature).unwrap();
        assert!((0..19)
            .filter(|&k| k != j)
            .all(|k| c.ra[k][j] <= c.ra[i][j]));
    }

    let args = [
        "eval", "--mode", "compose", "--limit", "10", "--alphas", "0,1", "--json",
    ];
    let first = ok(&args);
    assert_eq!(first, ok(&args));
    let c: Compose = serde_json::from_str(&first).unwrap();
    assert_eq!(c.pairs.len(), 3);
    for p in &c.pairs {
        assert_eq!(p.ra.len(), 2);
        assert_eq!(p.clean, p.ra[0][0]);
        assert_eq!(p.best_first_only, p.ra[0][0].max(p.ra[1][0]));
        assert_eq!(p.best_second_only, p.ra[0][0].max(p.ra[0][1]));
        assert!(p.ra.iter().flatten().all(|&x| x <= p.best_ra));
        assert_eq!(
            p.beats_both,
            p.best_ra > p.best_first_only && p.best_ra > p.best_second_only
        );
    }
}

#[test]
fn grids_that_cannot_give_a_best_alpha_are_refused() {
    for (args, want) in [
        (
            vec!["eval", "--mode", "sweep", "--alphas", "1,0"],
            "must increase",
        ),
        (vec!["eval", "--mode", "sweep", "--alphas", "0,5"], "0..=4"),
        (
            vec!["eval", "--mode", "sweep", "--severities", "0,3"],
            "within 1–5",
        ),
        (
            vec!["eval", "--mode", "compose", "--alphas", "0.5,1"],
            "need 0",
        ),
        (vec!["eval", "--plot", "x.svg"], "--plot draws"),
    ] {
        let (code, _, err) = rws_on_demo(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

fn committed_sweep() -> Sweep {
    serde_json::from_str(&std::fs::read_to_string(repo().join("docs/results/sweep.json")).unwrap())
        .unwrap()
}

fn shipped_calibration() -> Calibration {
    calibration_of("severity-map.toml")
}

/// The calibration `firmware-config/<map>` and the committed sweep give.
fn calibration_of(map: &str) -> Calibration {
    let map = calibrate::load_map(&repo().join("firmware-config").join(map)).unwrap();
    calibrate::calibrate(
        &committed_sweep(),
        Path::new("docs/results/sweep.json"),
        &map,
        calibrate::TOLERANCE,
    )
    .unwrap()
}

/// A minimal rwsd config around `rules` (the shipped signatures, raw frames on stdin).
fn config_with(rules: &str) -> rwsd::config::Config {
    let text = format!(
        "[model]\nsignatures = \"{}\"\n[model.input]\nwidth = 32\nheight = 32\n\
         [frames]\nsource = \"raw\"\npath = \"-\"\nwidth = 32\nheight = 32\nformat = \"gray8\"\n\
         [policy]\n{rules}",
        repo().join("signatures").display()
    );
    rwsd::config::Config::parse(Path::new("calibrated.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn calibrated_rules_parse_as_policy_rules_and_follow_the_measurement() {
    let cal = shipped_calibration();
    let cfg = config_with(&calibrate::to_toml(&cal, &[]));
    assert_eq!(cfg.policy.rules.len(), cal.rules.len());
    let map = calibrate::load_map(&repo().join("firmware-config/severity-map.toml")).unwrap();
    let sweep = committed_sweep();
    for ((rule, c), m) in cfg.policy.rules.iter().zip(&cal.rules).zip(&map) {
        assert_eq!(rule.signature, c.signature);
        // The chosen α: never above the argmax, and within the tolerance of the best RA.
        let row = sweep.row(&c.signature).unwrap();
        for (s, (&chosen, &argmax)) in c.best_alpha.iter().zip(&c.measured_best_alpha).enumerate() {
            assert!(chosen <= argmax, "{}", c.signature);
            let top = row.ra[s].iter().copied().fold(0.0, f64::max);
            assert!(c.ra_best[s] >= top - cal.tolerance, "{}", c.signature);
        }
        let rwsd::policy::Map::Curve(curve) = &rule.map else {
            // A code rule: on at the α of its declared severity.
            assert_eq!(
                rule.alpha,
                f64::from(c.best_alpha[usize::from(m.severity.unwrap()) - 1])
            );
            continue;
        };
        let (off, readings) = (m.off.unwrap(), m.severities.as_ref().unwrap());
        assert_eq!(
            curve.eval(off) * rule.alpha,
            0.0,
            "{}: off at {off}",
            c.signature
        );
        let at: Vec<f64> = readings
            .iter()
            .map(|&x| curve.eval(x) * rule.alpha)
            .collect();
        for (a, best) in at.iter().zip(&c.best_alpha) {
            assert!(
                (a - f64::from(*best)).abs() < 2e-3 * rule.alpha.max(1.0),
                "{}: {at:?} vs {:?}",
                c.signature,
                c.best_alpha
            );
        }
        // Monotone where the measurement is: walking from `off` toward severity 5 never lowers α.
        if c.monotone {
            let steps: Vec<f64> = (0..=100)
                .map(|k| off + (readings[4] - off) * f64::from(k) / 100.0)
                .map(|x| curve.eval(x))
                .collect();
            assert!(
                steps.windows(2).all(|w| w[1] >= w[0] - 1e-12),
                "{}",
                c.signature
            );
        }
    }
}

#[test]
fn the_shipped_configs_carry_the_calibrated_rules() {
    // The sensor configs from severity-map.toml; the camera-only one from oracle-map.toml.
    let sets = [
        (
            "severity-map.toml",
            &["demo.toml", "raspberry-pi.toml", "jetson.toml"][..],
        ),
        ("oracle-map.toml", &["camera-only.toml"][..]),
    ];
    for (map, configs) in sets {
        let cal = calibration_of(map);
        let map_path = PathBuf::from("firmware-config").join(map);
        let header = calibrate::header(Path::new("docs/results/sweep.json"), &map_path, &cal);
        for name in configs {
            let path: PathBuf = repo().join("firmware-config").join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let fresh = calibrate::update_block(&path, &text, &cal, &header).unwrap();
            assert!(
                fresh == text,
                "{name} is stale: run `rws calibrate --map {} --update firmware-config/{name}`",
                map_path.display()
            );
        }
    }
}

#[test]
fn a_bad_severity_map_is_refused_with_file_rule_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("[[rule]]\nsignature = \"fog\"\nsignal = \"visibility_m\"\noff = 1000.0\nseverities = [800.0, 900.0, 400.0, 250.0, 150.0]\n", "rule[0] (fog).severities"),
        ("[[rule]]\nsignature = \"fog\"\nsignal = \"visibility_m\"\noff = 1000.0\nseverities = [800.0]\n", "one per severity"),
        ("[[rule]]\nsignature = \"snow\"\nsignal = \"wmo_code\"\ncodes = [71]\nseverity = 6\n", "outside 1–5"),
        ("[[rule]]\nsignature = \"snow\"\nsignal = \"wmo_code\"\ncodes = [71]\n", "either off + severities"),
        ("[[rule]]\nsignature = \"fog\"\nsignal = \"visibility_m\"\ncurve = [[1.0, 0.0]]\n", "unknown field"),
    ] {
        let path = dir.path().join("map.toml");
        std::fs::write(&path, text).unwrap();
        let e = calibrate::load_map(&path).unwrap_err().to_string();
        assert!(e.contains("map.toml") && e.contains(want), "{e}");
    }
}

#[test]
fn the_committed_results_hold_their_contract() {
    let s = committed_sweep();
    assert_eq!(s.severities, [1, 2, 3, 4, 5]);
    assert_eq!(s.alphas.len(), 9);
    assert_eq!(s.best_alpha_per_severity.len(), 5);
    let text =
        |name: &str| std::fs::read_to_string(repo().join("docs/results").join(name)).unwrap();
    let c: Cross = serde_json::from_str(&text("cross.json")).unwrap();
    assert_eq!(c.names.len(), 19);
    let p: Compose = serde_json::from_str(&text("compose.json")).unwrap();
    assert_eq!(p.pairs.len(), 3);
    for name in ["sweep.json", "cross.json", "compose.json"] {
        let v: serde_json::Value = serde_json::from_str(&text(name)).unwrap();
        assert!(
            v["command"]
                .as_str()
                .unwrap()
                .starts_with("rws eval --mode"),
            "{name}"
        );
        assert!(
            text(&name.replace(".json", ".svg")).starts_with("<svg"),
            "{name}"
        );
    }
}

#[test]
fn layers_and_similarity_are_deterministic_and_match_the_committed_results() {
    let sigs = repo().join("signatures");
    let sigs = sigs.to_str().unwrap();
    for (cmd, name) in [("layers", "layers.json"), ("similarity", "similarity.json")] {
        let (code, out, err) = rws(&[cmd, "--json", "--signatures", sigs]);
        assert_eq!(code, 0, "{err}");
        let mut got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let text = std::fs::read_to_string(repo().join("docs/results").join(name)).unwrap();
        let mut want: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Only the command line differs (the path of the set).
        got["command"] = serde_json::Value::Null;
        want["command"] = serde_json::Value::Null;
        assert!(
            got == want,
            "docs/results/{name} is stale: rerun its command"
        );
    }
    let l: rws_lab::experiments::anatomy::Layers = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/results/layers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(l.layers.len(), 5);
    for row in &l.share {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let s: rws_lab::experiments::anatomy::Similarity = serde_json::from_str(
        &std::fs::read_to_string(repo().join("docs/results/similarity.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s.names.len(), 19);
    for (i, row) in s.cosine.iter().enumerate() {
        assert!((row[i] - 1.0).abs() < 1e-9);
        assert!(
            row.iter()
                .zip(s.cosine.iter().map(|r| r[i]))
                .all(|(a, b)| *a == b),
            "symmetric"
        );
    }
}

/// A models directory in the layout of `rws train --recipe demo` made from the shipped set: θ0
/// and θstd are the clean model, each robust model is the clean model with its signature at α = 1
/// (so extracting again must give the shipped signatures back, up to quantization).
fn models_from_the_shipped_set(dir: &Path) {
    let sigs = repo().join("signatures");
    let clean = rws_runtime::onnx::OnnxModel::open(sigs.join("clean.onnx")).unwrap();
    std::fs::create_dir_all(dir.join("robust")).unwrap();
    for name in ["theta0.onnx", "standard.onnx"] {
        std::fs::write(dir.join(name), clean.to_bytes()).unwrap();
    }
    for c in rws_lab::corrupt::Corruption::ALL {
        let sig =
            rws_signature::SignatureFile::open(sigs.join(format!("{}.rws", c.name()))).unwrap();
        let robust = rws_runtime::apply::patch_model(&clean, &[(&sig, 1.0)]).unwrap();
        std::fs::write(
            dir.join("robust").join(format!("{}.onnx", c.name())),
            robust.to_bytes(),
        )
        .unwrap();
    }
}

#[test]
fn storage_and_k_sweep_extract_again_and_measure_each_form() {
    let dir = tempfile::tempdir().unwrap();
    models_from_the_shipped_set(dir.path());
    let models = dir.path().to_str().unwrap();
    let args = [
        "eval", "--mode", "storage", "--models", models, "--limit", "10", "--json",
    ];
    let first = ok(&args);
    assert_eq!(first, ok(&args), "same subset, same JSON");
    let s: rws_lab::experiments::storage::Storage = serde_json::from_str(&first).unwrap();
    let labels: Vec<&str> = s.variants.iter().map(|v| v.label.as_str()).collect();
    assert_eq!(
        labels,
        ["k5-f32", "k5-f16", "k5-i8", "all-f32", "all-f16", "all-i8"]
    );
    let kb = |l: &str| {
        s.variants
            .iter()
            .find(|v| v.label == l)
            .unwrap()
            .kb_per_signature
    };
    assert!(
        kb("k5-i8") < kb("k5-f16") && kb("k5-f16") < kb("k5-f32"),
        "{first}"
    );
    let k5 = &s.variants[0];
    // The robust models differ from the clean one in the 5 signed convolutions only: K = 5 takes
    // their 5 weights and 5 biases, the shipped signatures' 8,936 parameters.
    assert_eq!((k5.layers, k5.parameters), (5, 8936));
    assert!(s.variants.iter().all(|v| v.layers <= s.weight_layers));

    let args = [
        "eval", "--mode", "ksweep", "--models", models, "--limit", "10", "--json",
    ];
    let k: rws_lab::experiments::storage::Storage = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(k.experiment, "ksweep");
    assert_eq!(k.variants.len(), k.weight_layers);
    assert!(k
        .variants
        .windows(2)
        .all(|w| w[0].parameters <= w[1].parameters));
    let (code, _, err) = rws_on_demo(&["eval", "--mode", "storage"]);
    assert_eq!(code, 2);
    assert!(err.contains("--models DIR"), "{err}");
}

/// The committed digits set (`tests/data/digits-set`, made from the MNIST-5k run's θ0; see
/// docs/results/README.md) as the transfer target, the shipped MNIST-5k set as its source.
#[test]
fn transfer_is_deterministic_and_compares_the_two_sets_on_the_target() {
    let target = repo().join("tests/data/digits-set");
    let source = repo().join("signatures");
    let args = [
        "eval",
        "--mode",
        "transfer",
        "--dataset",
        "digits",
        "--signatures",
        target.to_str().unwrap(),
        "--transfer-from",
        source.to_str().unwrap(),
        "--limit",
        "20",
        "--json",
    ];
    let run = || {
        let (code, out, err) = rws(&args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let first = run();
    assert_eq!(first, run(), "same subset, same JSON");
    let t: rws_lab::experiments::transfer::Transfer = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (t.source_dataset.as_str(), t.target_dataset.as_str()),
        ("mnist-5k", "digits")
    );
    assert_eq!((t.provenance.images, t.rows.len()), (20, 19));
    for r in &t.rows {
        assert!([r.clean, r.in_domain, r.transfer]
            .iter()
            .all(|x| (0.0..=1.0).contains(x)));
    }
    let mean = |f: fn(&rws_lab::experiments::transfer::Row) -> f64| {
        t.rows.iter().map(f).sum::<f64>() / 19.0
    };
    assert!((mean(|r| r.transfer) - t.mean_ra_transfer).abs() < 1e-12);
    assert!((mean(|r| r.in_domain) - t.mean_ra_in_domain).abs() < 1e-12);

    // The flag and the mode go together.
    let (code, _, err) = rws_on_demo(&["eval", "--mode", "transfer"]);
    assert_eq!(code, 2);
    assert!(err.contains("--transfer-from"), "{err}");
    let (code, _, err) = rws_on_demo(&["eval", "--transfer-from", "signatures"]);
    assert_eq!(code, 2);
    assert!(err.contains("--mode transfer"), "{err}");
}

/// table1.json, storage.json, ksweep.json and transfer.json: the full runs on the demo's trained
/// models, with the fields scripts read.
#[test]
fn the_committed_tables_hold_their_contract() {
    let json = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(repo().join("docs/results").join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let t = json("table1.json");
    for field in [
        "ta_clean",
        "ta_rws_off",
        "mean_ra_clean",
        "mean_ra_rws",
        "mean_ra_all_models",
    ] {
        let v = t[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "table1.json: {field} = {v}");
    }
    assert_eq!(t["ta_clean"], t["ta_rws_off"], "all signatures off = clean");
    assert_eq!(t["images"], 1000);
    assert!(t["command"].as_str().unwrap().starts_with("rws eval"));
    let s: rws_lab::experiments::storage::Storage =
        serde_json::from_value(json("storage.json")).unwrap();
    assert_eq!(s.variants.len(), 6);
    let k: rws_lab::experiments::storage::Storage =
        serde_json::from_value(json("ksweep.json")).unwrap();
    assert_eq!(
        (k.experiment.as_str(), k.variants.len()),
        ("ksweep", k.weight_layers)
    );
    let x: rws_lab::experiments::transfer::Transfer =
        serde_json::from_value(json("transfer.json")).unwrap();
    assert_eq!(x.rows.len(), 19);
    for name in ["storage.json", "ksweep.json", "transfer.json"] {
        assert!(json(name)["command"]
            .as_str()
            .unwrap()
            .starts_with("rws eval --mode"));
    }
    assert!(
        std::fs::read_to_string(repo().join("docs/results/ksweep.svg"))
            .unwrap()
            .starts_with("<svg")
    );
}

/// docs/results/levers/: one run file per lever (`scripts/levers`), each a whole training run
/// scored as Table 1; `rws levers` on them gives the committed levers.json, and every run keeps
/// the clean model when its signatures are off.
#[test]
fn the_lever_runs_make_the_committed_lever_table() {
    let dir = repo().join("docs/results/levers");
    let mut runs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".json"))
        .collect();
    runs.sort();
    assert!(
        runs.len() >= 2,
        "the baseline and at least one lever: {runs:?}"
    );
    let mut args = vec!["levers", "--json"];
    args.extend(runs.iter().map(String::as_str));
    let (code, out, err) = rws(&args);
    assert_eq!(code, 0, "{err}");
    let mut made: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = std::fs::read_to_string(repo().join("docs/results/levers.json")).unwrap();
    let mut committed: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The command names the files as the caller spelled them.
    made["command"] = serde_json::Value::Null;
    committed["command"] = serde_json::Value::Null;
    assert_eq!(
        made, committed,
        "levers.json is stale: rerun the last line of scripts/levers"
    );
    for row in made["rows"].as_array().unwrap() {
        assert_eq!(row["ta_clean"], row["ta_rws_off"], "{}", row["lever"]);
        let share = row["gain_share"].as_f64().unwrap();
        assert!((-1.0..=1.5).contains(&share), "{}: {share}", row["lever"]);
    }
    // Without the baseline nothing compares.
    let lever = runs.iter().find(|p| !p.ends_with("shipped.json")).unwrap();
    let (code, _, err) = rws(&["levers", lever.as_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'shipped'"), "{err}");
}
