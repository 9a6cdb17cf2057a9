//! The figures of `docs/results/` as SVG, drawn with plotters' SVG backend (no font
//! rasterizer: text is left to the viewer). Each function returns the SVG text, so the files are
//! a pure function of the results they draw.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::anatomy::{Layers, Similarity};
use super::compose::Compose;
use super::cross::Cross;
use super::levers::Levers;
use super::storage::Storage;
use super::sweep::Sweep;
use super::ExperimentError;

fn plot_err<E: std::fmt::Debug>(e: E) -> ExperimentError {
    ExperimentError::Invalid(format!("drawing the figure: {e:?}"))
}

/// A chart on f64 × f64 axes, as every line figure here draws.
type LineChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One labelled line through `points` with a dot of `radius` at each point.
fn dotted_line(
    chart: &mut LineChart<'_, '_>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    (width, radius): (u32, i32),
    label: impl Into<String>,
) -> Result<(), ExperimentError> {
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
        });
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, radius, color.filled())),
        )
        .map_err(plot_err)?;
    Ok(())
}

/// The legend of the labelled lines, boxed on a translucent white ground.
fn legend<'a, 'b: 'a>(
    chart: &mut LineChart<'a, 'b>,
    at: SeriesLabelPosition,
) -> Result<(), ExperimentError> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)
}

/// One colour per line, distinguishable in print.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0xa6, 0x1e),
    RGBColor(0x33, 0x33, 0x33),
];

/// Fig. 7: mean RA against α, one line per severity, and the best α per severity.
pub fn sweep(s: &Sweep) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(600);
        sweep_curves(&left, s)?;
        sweep_best(&right, s)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn sweep_curves(area: &DrawingArea<SVGBackend, Shift>, s: &Sweep) -> Result<(), ExperimentError> {
    let amax = f64::from(s.alphas.last().copied().unwrap_or(1.0).max(0.25));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Mean robust accuracy over 19 corruptions vs α",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..amax, 0f64..100f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("α (signature coefficient)")
        .y_desc("mean RA (%)")
        .draw()
        .map_err(plot_err)?;
    for (k, (sev, ra)) in s.severities.iter().zip(&s.mean_ra).enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let points: Vec<(f64, f64)> = s
            .alphas
            .iter()
            .zip(ra)
            .map(|(&a, &r)| (f64::from(a), r * 100.0))
            .collect();
        dotted_line(&mut chart, points, color, (2, 3), format!("severity {sev}"))?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

fn sweep_best(area: &DrawingArea<SVGBackend, Shift>, s: &Sweep) -> Result<(), ExperimentError> {
    let amax = f64::from(s.alphas.last().copied().unwrap_or(1.0).max(0.25));
    let mut chart = ChartBuilder::on(area)
        .caption("Best α per severity", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(45)
        .build_cartesian_2d(0.5f64..5.5f64, 0f64..amax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("severity")
        .y_desc("α")
        .x_labels(5)
        .draw()
        .map_err(plot_err)?;
    let series: [(&str, Vec<f64>); 2] = [
        (
            "best α of the mean curve",
            s.best_alpha_per_severity
                .iter()
                .map(|&a| f64::from(a))
                .collect(),
        ),
        ("mean of per-corruption best α", s.mean_best_alpha.clone()),
    ];
    for (k, (name, v)) in series.into_iter().enumerate() {
        let color = [PALETTE[5], RGBColor(0x99, 0x99, 0x99)][k];
        let points: Vec<(f64, f64)> = s
            .severities
            .iter()
            .zip(&v)
            .map(|(&x, &y)| (f64::from(x), y))
            .collect();
        dotted_line(&mut chart, points, color, (2, 4), name)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// A diverging colour for `v` in `-1..=1`: blue below 0, white at 0, red above.
fn diverging(v: f64) -> RGBColor {
    let t = v.clamp(-1.0, 1.0);
    let mix =
        |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    if t >= 0.0 {
        RGBColor(mix(255, 0xb2, t), mix(255, 0x18, t), mix(255, 0x2b, t))
    } else {
        RGBColor(mix(255, 0x21, -t), mix(255, 0x66, -t), mix(255, 0xac, -t))
    }
}

/// A sequential colour for `v` in `0..=1`: white to dark green.
fn sequential(v: f64) -> RGBColor {
    let t = v.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(0xf7, 0x41), mix(0xfc, 0xab), mix(0xf5, 0x5d))
}

/// A labelled grid of coloured cells; `cell(i, j)` gives the colour and the printed value of
/// row `i` (drawn top to bottom), column `j`.
fn grid(
    area: &DrawingArea<SVGBackend, Shift>,
    caption: &str,
    rows: &[String],
    cols: &[String],
    axes: (&str, &str),
    cell: &dyn Fn(usize, usize) -> (RGBColor, String),
) -> Result<(), ExperimentError> {
    let (nr, nc) = (rows.len(), cols.len());
    let label_size = if nr > 8 { 11 } else { 13 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(if nr > 8 { 190 } else { 50 })
        .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)
        .map_err(plot_err)?;
    let (rl, cl) = (rows.to_vec(), cols.to_vec());
    let xfmt = move |v: &f64| cl.get(v.floor() as usize).cloned().unwrap_or_default();
    let yfmt = move |v: &f64| {
        rl.get(nr.saturating_sub(1 + v.floor() as usize))
            .cloned()
            .unwrap_or_default()
    };
    // Labels at cell centres only (the mesh puts ticks at every half cell).
    let centre = |v: &f64| (v.fract() - 0.5).abs() < 1e-6;
    let xl = |v: &f64| if centre(v) { xfmt(v) } else { String::new() };
    let yl = |v: &f64| if centre(v) { yfmt(v) } else { String::new() };
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_labels(nc * 2 + 1)
        .y_labels(nr * 2 + 1)
        .x_label_formatter(&xl)
        .y_label_formatter(&yl)
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style(("sans-serif", label_size));
    mesh.draw().map_err(plot_err)?;
    for i in 0..nr {
        for j in 0..nc {
            let (color, text) = cell(i, j);
            let y = (nr - 1 - i) as f64;
            let (x0, y0) = (j as f64, y);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                    color.filled(),
                )))
                .map_err(plot_err)?;
            if !text.is_empty() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        text,
                        (x0 + 0.5, y0 + 0.5),
                        ("sans-serif", if nr > 8 { 8 } else { 12 })
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(plot_err)?;
            }
        }
    }
    Ok(())
}

/// §2.3: the gain of each signature (rows) on each corruption (columns), in points of RA.
pub fn cross(c: &Cross) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 860)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        // Rows carry the names, columns their numbers (19 names do not fit across).
        let names: Vec<String> = c
            .names
            .iter()
            .zip(&c.groups)
            .enumerate()
            .map(|(i, (n, g))| format!("{n} ({g}) {}", i + 1))
            .collect();
        let numbers: Vec<String> = (1..=c.names.len()).map(|i| i.to_string()).collect();
        let gain = |i: usize, j: usize| c.ra[i][j] - c.clean[j];
        let top = (0..c.names.len())
            .flat_map(|i| (0..c.names.len()).map(move |j| (i, j)))
            .map(|(i, j)| gain(i, j).abs())
            .fold(0.01, f64::max);
        grid(
            &root,
            &format!(
                "RA gain (points) of signature × corruption, severity {}, α = {}",
                c.severity, c.alpha
            ),
            &names,
            &numbers,
            (
                "corruption of the test images (numbered as the rows)",
                "signature applied",
            ),
            &|i, j| {
                let g = gain(i, j);
                (diverging(g / top), format!("{:+.0}", g * 100.0))
            },
        )?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Fig. 8: RA over (α₁, α₂) for each compound pair.
pub fn compose(c: &Compose) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let n = c.pairs.len().max(1);
        let root = SVGBackend::with_string(&mut svg, (360 * n as u32, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let alphas: Vec<String> = c.alphas.iter().map(|a| format!("{a}")).collect();
        let rows: Vec<String> = alphas.iter().rev().cloned().collect();
        for (area, p) in root.split_evenly((1, n)).iter().zip(&c.pairs) {
            let k = c.alphas.len();
            // Shaded from the pair's worst cell to its best.
            let (lo, hi) =
                p.ra.iter()
                    .flatten()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let span = (hi - lo).max(1e-9);
            grid(
                area,
                &format!("{} then {}: RA (%)", p.first, p.second),
                &rows,
                &alphas,
                (&format!("α {}", p.second), &format!("α {}", p.first)),
                // Rows top to bottom are α₁ from largest to 0.
                &|i, j| {
                    let v = p.ra[k - 1 - i][j];
                    let best = (c.alphas[k - 1 - i], c.alphas[j]) == p.best;
                    (
                        sequential((v - lo) / span),
                        format!("{:.0}{}", v * 100.0, if best { "*" } else { "" }),
                    )
                },
            )?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Fig. 2: ‖RWS‖ / ‖W‖ per layer, each signature thin and their mean bold.
pub fn layers(l: &Layers) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let top = l
            .ratio
            .iter()
            .flatten()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.1;
        let n = l.layers.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Signature norm relative to the layer's weight",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5f64..n as f64 + 0.5, 0f64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| format!("{}", v.round()))
            .x_desc("weight layer (1 = shallowest)")
            .y_desc("‖RWS‖ / ‖W‖")
            .draw()
            .map_err(plot_err)?;
        let grey = RGBColor(0xbb, 0xbb, 0xbb);
        for r in &l.ratio {
            let points = r.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v));
            chart
                .draw_series(LineSeries::new(points, grey.stroke_width(1)))
                .map_err(plot_err)?;
        }
        let mean: Vec<(f64, f64)> = l
            .mean_ratio
            .iter()
            .enumerate()
            .map(|(i, &v)| ((i + 1) as f64, v))
            .collect();
        dotted_line(
            &mut chart,
            mean,
            PALETTE[1],
            (3, 4),
            "mean over the signatures",
        )?;
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Fig. 4: cosine similarity of the signatures, ordered by group.
pub fn similarity(s: &Similarity) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 860)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let names: Vec<String> = s
            .names
            .iter()
            .zip(&s.groups)
            .enumerate()
            .map(|(i, (n, g))| format!("{n} ({g}) {}", i + 1))
            .collect();
        let numbers: Vec<String> = (1..=s.names.len()).map(|i| i.to_string()).collect();
        grid(
            &root,
            &format!(
                "Cosine similarity of the signatures (same group {:.2}, across groups {:.2})",
                s.mean_same_group, s.mean_cross_group
            ),
            &names,
            &numbers,
            ("signature (numbered as the rows)", "signature"),
            &|i, j| {
                let v = s.cosine[i][j];
                (diverging(v), format!("{:.2}", v))
            },
        )?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Fig. 6: mean RA and TA against the number of patched layers K.
pub fn ksweep(k: &Storage) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = k.variants.len().max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption("Patching the shallowest K layers", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.5f64..n as f64 + 0.5, 0f64..100f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| format!("{}", v.round()))
            .x_desc("K (weight layers patched, shallowest first)")
            .y_desc("accuracy (%)")
            .draw()
            .map_err(plot_err)?;
        let lines: [(&str, RGBColor, Vec<f64>); 3] = [
            (
                "mean RA with the signature",
                PALETTE[1],
                k.variants.iter().map(|v| v.mean_ra).collect(),
            ),
            (
                "mean TA with the signature",
                PALETTE[2],
                k.variants.iter().map(|v| v.mean_ta).collect(),
            ),
            (
                "mean RA of the clean model",
                PALETTE[5],
                vec![k.mean_ra_clean; n],
            ),
        ];
        for (name, color, v) in lines {
            let points: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .map(|(i, &y)| ((i + 1) as f64, y * 100.0))
                .collect();
            dotted_line(&mut chart, points, color, (2, 3), name)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Which figure of a lever row a bar shows.
type LeverValue = fn(&super::levers::Row) -> f64;

/// Issue 16's levers: per training run, mean RA of its clean model, with its signatures and of
/// its dedicated robust models (All Models), as grouped bars; the gain share above each group.
pub fn levers(l: &Levers) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let n = l.rows.len().max(1);
        let root =
            SVGBackend::with_string(&mut svg, (160 + 110 * n as u32, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Levers on the gain (severity {}, α = {})",
                    l.severity, l.alpha
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..105f64)
            .map_err(plot_err)?;
        let names: Vec<String> = l.rows.iter().map(|r| r.lever.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| {
                let i = v.round();
                // Only whole positions carry a name; plotters may ask for others.
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("training run")
            .y_desc("mean RA (%)")
            .draw()
            .map_err(plot_err)?;
        let bars: [(&str, RGBColor, LeverValue); 3] = [
            ("clean model", PALETTE[5], |r| r.mean_ra_clean),
            ("clean + int8 signatures (K = 5)", PALETTE[1], |r| {
                r.mean_ra_rws
            }),
            ("All Models (one robust model each)", PALETTE[0], |r| {
                r.mean_ra_all_models
            }),
        ];
        for (k, (label, color, value)) in bars.into_iter().enumerate() {
            let x0 = k as f64 * 0.27 - 0.4;
            chart
                .draw_series(l.rows.iter().enumerate().map(|(i, r)| {
                    let x = i as f64 + x0;
                    Rectangle::new([(x, 0.0), (x + 0.25, value(r) * 100.0)], color.filled())
                }))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        chart
            .draw_series(l.rows.iter().enumerate().map(|(i, r)| {
                let top = r.mean_ra_all_models.max(r.mean_ra_rws) * 100.0 + 2.0;
                Text::new(
                    format!("{:.0} %", r.gain_share * 100.0),
                    (i as f64, top),
                    ("sans-serif", 13)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))
            .map_err(plot_err)?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// `rws eval --oracle`: the oracle's confusion matrix (true class × predicted class), each row
/// as a share of its frames (clean test frames, corrupted ones at severities 3–5).
pub fn confusion(e: &super::oracle::OracleEval) -> Result<String, ExperimentError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 880)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let names: Vec<String> = e
            .classes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{n} {i}"))
            .collect();
        let numbers: Vec<String> = (0..e.classes.len()).map(|i| i.to_string()).collect();
        let share = |i: usize, j: usize| {
            let total: u32 = e.confusion[i].iter().sum();
            f64::from(e.confusion[i][j]) / f64::from(total.max(1))
        };
        grid(
            &root,
            &format!(
                "Oracle: predicted class per true class (% of frames; severities 3-5), group accuracy {:.1} %",
                e.group_accuracy * 100.0
            ),
            &names,
            &numbers,
            ("predicted class (numbered as the rows)", "true class"),
            &|i, j| {
                let s = share(i, j);
                let text = if s >= 0.005 { format!("{:.0}", s * 100.0) } else { String::new() };
                (sequential(s), text)
            },
        )?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
