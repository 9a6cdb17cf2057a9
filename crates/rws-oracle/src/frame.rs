//! The oracle's whole per-frame step, as rwsd runs it and `rws bench` times it: the model input
//! (`[3, h, w]` planes, normalized) back to pixels, the features, the head and the tracker. It
//! owns the image and feature planes the step needs (sized on the first frame), so a steady
//! stream allocates nothing.

use rws_image::tensor::Normalize;
use rws_image::Image;

use crate::features::Extractor;
use crate::head::Head;
use crate::track::{Hysteresis, Tracker};

/// A head, its tracker and the frame buffer, at one input size.
#[derive(Clone, Debug)]
pub struct FrameOracle {
    head: Head,
    tracker: Tracker,
    image: Image,
    extractor: Extractor,
}

impl FrameOracle {
    /// An oracle for model inputs of `(height, width)`.
    pub fn new(head: Head, (height, width): (usize, usize), h: Hysteresis) -> FrameOracle {
        FrameOracle {
            tracker: Tracker::new(head.classes().len(), h),
            head,
            image: Image::new(height, width),
            extractor: Extractor::default(),
        }
    }

    /// Folds in the frame whose model input is `input` (normalized by `norm`); returns the
    /// engaged class (never 0, `clean`), if any. An input of another size than the oracle's
    /// is not read, and the tracker keeps its state (it cannot come from rwsd, which sizes the
    /// input to the model).
    pub fn observe(&mut self, input: &[f32], norm: &Normalize) -> Option<usize> {
        if planes_to_image(input, norm, &mut self.image) {
            let features = self.extractor.extract(&self.image);
            self.tracker.update(&self.head.predict(&features));
        }
        self.tracker.engaged()
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.tracker
    }
}

/// Undoes the model input's normalization into `image` (already the input's size): the pixels
/// the model sees, interleaved RGB in [0, 1] as the head's training images were. `false` when
/// the sizes do not fit.
pub fn planes_to_image(input: &[f32], norm: &Normalize, image: &mut Image) -> bool {
    let plane = image.height * image.width;
    if input.len() != 3 * plane || image.data.len() != 3 * plane {
        return false;
    }
    for (i, px) in image.data.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = input[c * plane + i] * norm.std[c] + norm.mean[c];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_go_back_to_the_pixels_they_came_from() {
        let mut img = Image::new(2, 3);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = i as f32 / 17.0;
        }
        let norm = Normalize {
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 2.0, 1.0],
        };
        let mut planes = Vec::new();
        rws_image::tensor::to_input(&img, (2, 3), &norm, &mut planes).unwrap();
        let mut back = Image::new(2, 3);
        assert!(planes_to_image(&planes, &norm, &mut back));
        for (a, b) in back.data.iter().zip(&img.data) {
            assert!((a - b).abs() < 1e-6, "{a} {b}");
        }
        assert!(!planes_to_image(&planes[1..], &norm, &mut back));
    }
}
