//! The demo's accuracy: with `frames.label_from_name`, each frame's file name ends in its true
//! label (`0011-fog-3.png` is a 3), so its line can say whether the top class was right and the
//! log can give the top-1 count at the end. It exists only when a config asks for it; a
//! production frame loop has no scorer and does none of this.

use super::output;
use crate::frames::FrameName;

/// Right and seen labelled frames.
#[derive(Debug, Default)]
pub struct Score {
    pub right: u64,
    pub seen: u64,
}

impl Score {
    /// The label `name` gives and whether `top` (class index, probability) got it; counted.
    /// Frames without a file name (raw, V4L2) carry no label.
    pub fn judge<'n>(
        &mut self,
        name: &'n FrameName,
        top: &[(usize, f32)],
        labels: &[String],
    ) -> Option<(&'n str, bool)> {
        let FrameName::File(file) = name else {
            return None;
        };
        let expected = output::label_from_name(file)?;
        let correct = output::is_correct(top, labels, expected);
        self.seen += 1;
        self.right += u64::from(correct);
        Some((expected, correct))
    }
}
