//! Patch kernel vs memcpy on VGG-16's five shallow convolutions (555,328 parameters).
//!
//! Run with `cargo bench -p rws-lab --bench patch`. Prints the median time per full patch and its ratio to
//! copying the same output bytes, measured interleaved in this process. Targets (docs/design.md §4,
//! issue 2): ≤ 1.3× memcpy for one signature, ≤ 1.6× for four.

fn main() {
    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(31);
    let params: usize = rws_lab::bench::vgg16_shallow_layers()
        .iter()
        .map(|(_, _, s)| s.iter().product::<usize>())
        .sum();
    println!(
        "patch kernel, VGG-16 features.0/2/5/7/10 ({params} params, {:.2} MiB f32 out), median of {rounds} interleaved rounds",
        params as f64 * 4.0 / (1 << 20) as f64
    );
    println!(
        "{:28} {:>10} {:>10} {:>8}",
        "config", "patch µs", "memcpy µs", "ratio"
    );
    for r in rws_lab::bench::patch_kernel_suite(rounds) {
        println!(
            "{:28} {:>10.1} {:>10.1} {:>7.2}x",
            r.label, r.patch_us, r.memcpy_us, r.ratio
        );
    }
}
