use super::*;
use rws_rng::Rng;

/// A smooth gradient with a bright square: structure in both directions.
fn scene(side: usize) -> Image {
    let mut img = Image::new(side, side);
    for y in 0..side {
        for x in 0..side {
            let inside = (side / 4..3 * side / 4).contains(&y) && (side / 3..side / 2).contains(&x);
            let g = if inside {
                0.9
            } else {
                0.2 + 0.4 * x as f32 / side as f32
            };
            let i = (y * side + x) * 3;
            img.data[i..i + 3].copy_from_slice(&[g, g * 0.9, g * 0.8]);
        }
    }
    img
}

fn index(name: &str) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .expect("known feature")
}

#[test]
fn every_feature_is_finite_on_edge_cases() {
    for img in [
        Image::new(0, 0),
        Image::new(1, 1),
        Image::new(2, 7),
        scene(32),
        scene(5),
    ] {
        assert!(
            extract(&img).iter().all(|f| f.is_finite()),
            "{}x{}",
            img.height,
            img.width
        );
    }
    let mut nan = scene(16);
    nan.data[40] = f32::NAN;
    nan.data[41] = f32::INFINITY;
    assert!(extract(&nan).iter().all(|f| f.is_finite()));
}

#[test]
fn noise_sigma_estimates_added_gaussian_noise() {
    let clean = scene(64);
    let base = extract(&clean)[index("noise_sigma")];
    let mut rng = Rng::new(7);
    let mut last = base;
    for sigma in [0.02f32, 0.05, 0.1] {
        let mut noisy = clean.clone();
        for v in &mut noisy.data {
            *v += sigma * rng.normal() as f32;
        }
        let est = extract(&noisy)[index("noise_sigma")];
        assert!(est > last, "σ {sigma}: {est} after {last}");
        // Immerkær's estimate is within a factor 1.5 of the truth on a smooth scene.
        let ratio = f64::from(est).exp() / f64::from(sigma);
        assert!(
            (0.6..1.5).contains(&ratio),
            "σ {sigma}: estimate/true {ratio}"
        );
        last = est;
    }
}

#[test]
fn extraction_is_deterministic() {
    let img = scene(48);
    assert_eq!(extract(&img), extract(&img.clone()));
}
