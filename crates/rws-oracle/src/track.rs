//! Over frames: exponential smoothing of the head's outputs and hysteresis on which class is
//! engaged, so a fixed camera's stream does not flap between signatures on one odd frame, and a
//! real onset engages within a few frames.
//!
//! A class engages when its smoothed probability has been at least `on` for `confirm`
//! consecutive frames (and it is the most probable class); the engaged class lets go when its
//! smoothed probability falls below `off` (< `on`), or when another class has met the engage
//! condition. `clean` is never "engaged": nothing engaged means the clean model. rwsd and
//! `rws eval --oracle`'s stream use this one type, so what is measured is what runs.

use crate::head::Prediction;

/// The tracker's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hysteresis {
    /// Weight of the newest frame in the smoothed outputs (1 = no smoothing).
    pub smoothing: f32,
    pub on: f32,
    pub off: f32,
    /// Consecutive frames a class must meet `on` before it engages.
    pub confirm: u32,
}

impl Hysteresis {
    /// The shipped constants: the newest frame weighs 0.5, engage at 0.6 held 2 frames,
    /// release below 0.4 (measured on the stream of `rws eval --oracle`).
    pub const DEFAULT: Hysteresis = Hysteresis {
        smoothing: 0.5,
        on: 0.6,
        off: 0.4,
        confirm: 2,
    };

    /// Why the constants are unusable, if they are.
    pub fn check(&self) -> Result<(), String> {
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(format!("smoothing {} must be in (0, 1]", self.smoothing));
        }
        if !(self.off >= 0.0 && self.off < self.on && self.on <= 1.0) {
            return Err(format!(
                "need 0 <= off < on <= 1 (off {}, on {})",
                self.off, self.on
            ));
        }
        if self.confirm == 0 || self.confirm > 1000 {
            return Err(format!("confirm {} must be 1 to 1000 frames", self.confirm));
        }
        Ok(())
    }
}

/// Smoothed outputs and the engaged class; buffers sized at construction.
#[derive(Clone, Debug)]
pub struct Tracker {
    h: Hysteresis,
    probs: Vec<f32>,
    severity: Vec<f32>,
    engaged: Option<usize>,
    candidate: Option<(usize, u32)>,
    frames: u64,
}

impl Tracker {
    /// A tracker for a head with `classes` classes (`clean` first).
    pub fn new(classes: usize, h: Hysteresis) -> Tracker {
        Tracker {
            h,
            probs: vec![0.0; classes],
            severity: vec![0.0; classes],
            engaged: None,
            candidate: None,
            frames: 0,
        }
    }

    /// Folds in one frame's prediction; returns the engaged class (never 0), if any.
    pub fn update(&mut self, p: &Prediction) -> Option<usize> {
        let a = if self.frames == 0 {
            1.0
        } else {
            self.h.smoothing
        };
        self.frames += 1;
        for (s, &x) in self.probs.iter_mut().zip(p.probs) {
            *s = (1.0 - a) * *s + a * x;
        }
        for (s, &x) in self.severity.iter_mut().zip(p.severity) {
            *s = (1.0 - a) * *s + a * x;
        }
        let (best, p_best) = self.best();
        // Count consecutive frames the leading non-clean class holds `on`.
        self.candidate = if best != 0 && p_best >= self.h.on {
            match self.candidate {
                Some((c, n)) if c == best => Some((c, n.saturating_add(1))),
                _ => Some((best, 1)),
            }
        } else {
            None
        };
        let confirmed = self
            .candidate
            .filter(|&(_, n)| n >= self.h.confirm)
            .map(|(c, _)| c);
        self.engaged = match (self.engaged, confirmed) {
            (_, Some(c)) => Some(c),
            (Some(e), None) if self.probs[e] >= self.h.off => Some(e),
            _ => None,
        };
        self.engaged
    }

    /// The tracker's constants.
    pub fn hysteresis(&self) -> Hysteresis {
        self.h
    }

    /// New constants from the next frame on, the smoothed state kept (a config reload).
    pub fn set_hysteresis(&mut self, h: Hysteresis) {
        self.h = h;
    }

    /// The engaged class, if any.
    pub fn engaged(&self) -> Option<usize> {
        self.engaged
    }

    /// Smoothed probabilities (index 0 = clean).
    pub fn probs(&self) -> &[f32] {
        &self.probs
    }

    /// Smoothed severities.
    pub fn severity(&self) -> &[f32] {
        &self.severity
    }

    fn best(&self) -> (usize, f32) {
        crate::head::argmax(&self.probs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(probs: &[f32]) -> Prediction<'_> {
        Prediction {
            probs,
            severity: &[0.0, 3.0, 3.0],
        }
    }

    #[test]
    fn one_odd_frame_does_not_engage_and_a_held_one_does() {
        let mut t = Tracker::new(3, Hysteresis::DEFAULT);
        let clean = [0.9, 0.05, 0.05];
        let fog = [0.05, 0.9, 0.05];
        for _ in 0..5 {
            assert_eq!(t.update(&frame(&clean)), None);
        }
        // A single foggy-looking frame among clean ones never engages.
        assert_eq!(t.update(&frame(&fog)), None);
        assert_eq!(t.update(&frame(&clean)), None);
        let mut first = None;
        for i in 0..6 {
            if t.update(&frame(&fog)).is_some() && first.is_none() {
                first = Some(i);
            }
        }
        assert_eq!(t.engaged(), Some(1));
        assert!(
            first.is_some_and(|i| i <= 3),
            "engaged after {first:?} frames"
        );
        // It holds through one clean frame (hysteresis), lets go when clean persists.
        assert_eq!(t.update(&frame(&clean)), Some(1));
        for _ in 0..5 {
            t.update(&frame(&clean));
        }
        assert_eq!(t.engaged(), None);
    }

    #[test]
    fn constants_are_checked() {
        assert!(Hysteresis::DEFAULT.check().is_ok());
        let bad = Hysteresis {
            off: 0.7,
            ..Hysteresis::DEFAULT
        };
        assert!(bad.check().unwrap_err().contains("off"));
        let bad = Hysteresis {
            smoothing: 0.0,
            ..Hysteresis::DEFAULT
        };
        assert!(bad.check().is_err());
    }
}
