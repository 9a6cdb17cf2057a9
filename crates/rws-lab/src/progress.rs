//! Progress bars for the long offline commands (train, extract, eval): on stderr, redrawn at
//! most 4 times a second, and hidden when stderr is not a terminal, so logs, pipes and `--json`
//! output are exactly what they would be without them.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` steps, labelled `what`.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, about {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

/// A bar made at the first report, when the total is known (as extraction reports `(i, n, name)`).
pub struct Lazy {
    what: &'static str,
    bar: Option<ProgressBar>,
}

impl Lazy {
    pub fn new(what: &'static str) -> Lazy {
        Lazy { what, bar: None }
    }

    /// Step `i` of `n` is under way on `name`.
    pub fn step(&mut self, i: usize, n: usize, name: &str) {
        let what = self.what;
        let bar = self.bar.get_or_insert_with(|| bar(n as u64, what));
        bar.set_position(i as u64);
        bar.set_message(name.to_string());
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
