//! From sensor signals to signature coefficients: piecewise-linear rules, staleness, hysteresis,
//! a ramp rate, a cap on the total and manual overrides.
//!
//! The engine is a pure function of its inputs and the times it is given: the daemon feeds it
//! wall-clock seconds, replay tests feed it log timestamps, and the same log always gives the
//! same coefficient trace. Per evaluation at time `t`:
//! 1. each rule reads its signal if the sensor that last reported it is fresh (reported within
//!    its `stale_after_s`), else contributes 0, and maps it through its curve (or code list),
//!    times its `alpha`, and the optional `and` condition (the minimum of both);
//! 2. per signature the target is the largest of its rules;
//! 3. hysteresis: the held target moves only when the new target differs by at least
//!    `hysteresis` (a target of exactly 0 always applies, so "off" is exact);
//! 4. a manual override replaces the held target;
//! 5. the coefficient moves toward the held target at no more than `ramp_per_s`;
//! 6. if the coefficients sum to more than `max_total_alpha`, all are scaled down to it.

use std::collections::BTreeMap;

/// The largest coefficient a rule, a config override or a socket override may set.
pub const MAX_ALPHA: f64 = 4.0;

/// The one α range rule: finite and in `0..=MAX_ALPHA`. Returns the value or why not.
pub fn check_alpha(a: f64) -> Result<f64, String> {
    if a.is_finite() && (0.0..=MAX_ALPHA).contains(&a) {
        Ok(a)
    } else {
        Err(format!("α = {a} is outside 0..={MAX_ALPHA}"))
    }
}

/// A piecewise-linear curve through points `(x, y)`, kept sorted by `x` (a config may list
/// them either way: a falling visibility curve reads best from high to low); constant beyond the
/// ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve(Vec<(f64, f64)>);

impl Curve {
    /// Builds a curve; points are sorted by x, which must be finite and distinct.
    pub fn new(mut points: Vec<(f64, f64)>) -> Result<Self, String> {
        if points.is_empty() {
            return Err("a curve needs at least one point".into());
        }
        if points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return Err("curve points must be finite numbers".into());
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if points.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("curve points need distinct x values".into());
        }
        Ok(Curve(points))
    }

    /// The curve at `x`: exactly a point's y at its x, and between the two neighbours' y
    /// values elsewhere. Both matter: a curve that ends at 0 must give 0, not 1e-17, or the
    /// signature is never exactly off and the clean model never exactly restored.
    pub fn eval(&self, x: f64) -> f64 {
        let p = &self.0;
        if x <= p[0].0 {
            return p[0].1;
        }
        for w in p.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            if x == x1 {
                return y1;
            }
            if x < x1 {
                let t = (x - x0) / (x1 - x0);
                return (y0 + (y1 - y0) * t).clamp(y0.min(y1), y0.max(y1));
            }
        }
        p[p.len() - 1].1
    }
}

/// How a rule turns a signal value into a strength in [0, 1] (before `alpha`).
#[derive(Clone, Debug, PartialEq)]
pub enum Map {
    Curve(Curve),
    /// 1 when the value (rounded) is one of the codes, else 0.
    Codes(Vec<i64>),
}

impl Map {
    fn eval(&self, x: f64) -> f64 {
        match self {
            Map::Curve(c) => c.eval(x),
            Map::Codes(codes) => f64::from(u8::from(codes.contains(&(x.round() as i64)))),
        }
    }
}

/// One rule, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub signature: String,
    pub signal: String,
    pub map: Map,
    pub alpha: f64,
    /// A second condition on another signal; the rule gives the minimum of both.
    pub and: Option<(String, Map)>,
}

/// Policy settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub max_total_alpha: f64,
    pub ramp_per_s: f64,
    pub hysteresis: f64,
    /// Overrides from the config file (the control socket adds its own at run time).
    pub overrides: BTreeMap<String, f64>,
}

/// A manual override: a fixed α for a signature, until an optional time.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub alpha: f64,
    pub until: Option<f64>,
}

#[derive(Clone, Debug, Default)]
struct SignalValue {
    value: f64,
    sensor: usize,
}

/// The engine's state between evaluations.
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    /// Signature names in first-mention order (the output order).
    signatures: Vec<String>,
    signals: BTreeMap<String, SignalValue>,
    /// Per sensor: last time it reported a good reading, and its staleness limit.
    last_seen: Vec<Option<f64>>,
    stale_after: Vec<f64>,
    held: Vec<f64>,
    alpha: Vec<f64>,
    last_t: Option<f64>,
    overrides: BTreeMap<String, Override>,
}

impl Engine {
    /// `stale_after[i]` is sensor i's staleness limit in seconds.
    pub fn new(policy: Policy, stale_after: Vec<f64>) -> Self {
        let mut signatures: Vec<String> = Vec::new();
        for r in &policy.rules {
            if !signatures.contains(&r.signature) {
                signatures.push(r.signature.clone());
            }
        }
        for s in policy.overrides.keys() {
            if !signatures.contains(s) {
                signatures.push(s.clone());
            }
        }
        let overrides = policy
            .overrides
            .iter()
            .map(|(k, &a)| {
                (
                    k.clone(),
                    Override {
                        alpha: a,
                        until: None,
                    },
                )
            })
            .collect();
        let n = signatures.len();
        Engine {
            last_seen: vec![None; stale_after.len()],
            stale_after,
            signatures,
            signals: BTreeMap::new(),
            held: vec![0.0; n],
            alpha: vec![0.0; n],
            last_t: None,
            overrides,
            policy,
        }
    }

    /// Takes over another engine's state (after a config reload): signal values, sensor times
    /// (when the sensor count is unchanged), coefficients and overrides of signatures both
    /// policies share, so a reload does not make coefficients jump.
    pub fn carry_from(&mut self, old: &Engine) {
        self.signals = old.signals.clone();
        if old.last_seen.len() == self.last_seen.len() {
            self.last_seen = old.last_seen.clone();
        }
        self.last_t = old.last_t;
        for (i, s) in self.signatures.iter().enumerate() {
            if let Some(j) = old.signatures.iter().position(|o| o == s) {
                self.alpha[i] = old.alpha[j];
                self.held[i] = old.held[j];
            }
            if let Some(o) = old.overrides.get(s) {
                self.overrides.entry(s.clone()).or_insert_with(|| o.clone());
            }
        }
    }

    /// The signatures the policy can switch on, in output order.
    pub fn signatures(&self) -> &[String] {
        &self.signatures
    }

    /// Records a good reading from `sensor` at time `t`.
    pub fn observe(&mut self, sensor: usize, t: f64, signals: &[(String, f64)]) {
        if let Some(s) = self.last_seen.get_mut(sensor) {
            *s = Some(t);
        }
        for (name, value) in signals {
            let v = SignalValue {
                value: *value,
                sensor,
            };
            // In place when the signal is known: the oracle reports every frame, and a steady
            // frame allocates nothing.
            match self.signals.get_mut(name) {
                Some(slot) => *slot = v,
                None => {
                    self.signals.insert(name.clone(), v);
                }
            }
        }
    }

    /// Seconds since `sensor`'s last good reading at time `t` (`None`: none yet).
    pub fn reading_age(&self, sensor: usize, t: f64) -> Option<f64> {
        let seen = self.last_seen.get(sensor).copied().flatten()?;
        Some((t - seen).max(0.0))
    }

    /// Whether `sensor` has reported within its staleness limit at time `t`.
    pub fn fresh(&self, sensor: usize, t: f64) -> bool {
        match (
            self.last_seen.get(sensor).copied().flatten(),
            self.stale_after.get(sensor),
        ) {
            (Some(seen), Some(&limit)) => t - seen <= limit,
            _ => false,
        }
    }

    /// Sets or clears (`alpha = None`) a manual override; unknown signatures are refused.
    pub fn set_override(
        &mut self,
        signature: &str,
        alpha: Option<f64>,
        until: Option<f64>,
    ) -> Result<(), String> {
        if !self.signatures.iter().any(|s| s == signature) {
            return Err(format!(
                "'{signature}' is not a signature of this policy ({})",
                self.signatures.join(", ")
            ));
        }
        match alpha {
            Some(a) => {
                let alpha = check_alpha(a)?;
                self.overrides
                    .insert(signature.to_string(), Override { alpha, until });
                Ok(())
            }
            None => {
                self.overrides.remove(signature);
                Ok(())
            }
        }
    }

    /// Clears every override (including the config file's).
    pub fn clear_overrides(&mut self) {
        self.overrides.clear();
    }

    /// The policy's cap on the sum of coefficients.
    pub fn max_total_alpha(&self) -> f64 {
        self.policy.max_total_alpha
    }

    /// Active overrides.
    pub fn overrides(&self) -> &BTreeMap<String, Override> {
        &self.overrides
    }

    fn signal(&self, name: &str, t: f64) -> Option<f64> {
        let s = self.signals.get(name)?;
        self.fresh(s.sensor, t).then_some(s.value)
    }

    fn rule_value(&self, r: &Rule, t: f64) -> f64 {
        let Some(x) = self.signal(&r.signal, t) else {
            return 0.0;
        };
        let mut v = r.map.eval(x);
        if let Some((sig, map)) = &r.and {
            v = v.min(self.signal(sig, t).map_or(0.0, |y| map.eval(y)));
        }
        (v * r.alpha).max(0.0)
    }

    /// The coefficients at time `t`, one per [`Self::signatures`] entry.
    pub fn evaluate(&mut self, t: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.signatures.len());
        self.evaluate_into(t, &mut out);
        out
    }

    /// [`Self::evaluate`] into `out` (the frame loop reuses one buffer).
    pub fn evaluate_into(&mut self, t: f64, out: &mut Vec<f64>) {
        let dt = self.last_t.map_or(0.0, |l| (t - l).max(0.0));
        self.last_t = Some(t);
        self.overrides.retain(|_, o| o.until.is_none_or(|u| t < u));
        let p = &self.policy;
        for (i, sig) in self.signatures.iter().enumerate() {
            let target = p
                .rules
                .iter()
                .filter(|r| &r.signature == sig)
                .map(|r| self.rule_value(r, t))
                .fold(0.0, f64::max);
            if target == 0.0 || (target - self.held[i]).abs() >= p.hysteresis {
                self.held[i] = target;
            }
            if let Some(o) = self.overrides.get(sig) {
                self.held[i] = o.alpha;
                self.alpha[i] = o.alpha;
                continue;
            }
            let step = p.ramp_per_s * dt;
            let d = (self.held[i] - self.alpha[i]).clamp(-step, step);
            self.alpha[i] += d;
        }
        let total: f64 = self.alpha.iter().sum();
        let scale = if total > p.max_total_alpha && total > 0.0 {
            p.max_total_alpha / total
        } else {
            1.0
        };
        out.clear();
        out.extend(self.alpha.iter().map(|a| a * scale));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One fog rule on visibility (1000 m → α 0, 200 m → α 1); also the control tests' policy.
    pub(crate) fn fog_policy() -> Policy {
        Policy {
            rules: vec![Rule {
                signature: "fog".into(),
                signal: "visibility_m".into(),
                map: Map::Curve(Curve::new(vec![(1000.0, 0.0), (200.0, 1.0)]).unwrap()),
                alpha: 1.0,
                and: None,
            }],
            max_total_alpha: 1.5,
            ramp_per_s: 0.5,
            hysteresis: 0.05,
            overrides: BTreeMap::new(),
        }
    }

    #[test]
    fn a_curve_gives_its_points_exactly_and_stays_between_them() {
        let c = Curve::new(vec![(0.7, 0.0), (0.65, 0.2), (0.6, 0.2), (0.55, 0.8)]).unwrap();
        // (0.2 − 0.2)·0.05/0.05 style arithmetic once gave −3.5e-17 here.
        assert_eq!(c.eval(0.7).to_bits(), 0f64.to_bits());
        assert_eq!(c.eval(0.65), 0.2);
        assert_eq!(c.eval(0.55), 0.8);
        for k in 0..=1000 {
            let y = c.eval(0.5 + 0.25 * f64::from(k) / 1000.0);
            assert!((0.0..=0.8).contains(&y), "{y}");
        }
    }

    #[test]
    fn curve_interpolates_and_clamps() {
        let c = Curve::new(vec![(1000.0, 0.0), (200.0, 1.0)]).unwrap();
        assert_eq!(c.eval(2000.0), 0.0);
        assert_eq!(c.eval(600.0), 0.5);
        assert_eq!(c.eval(100.0), 1.0);
        assert!(Curve::new(vec![(1.0, 0.0), (1.0, 1.0)]).is_err());
    }

    #[test]
    fn ramp_staleness_and_override() {
        let mut e = Engine::new(fog_policy(), vec![10.0]);
        e.observe(0, 0.0, &[("visibility_m".into(), 200.0)]);
        assert_eq!(e.evaluate(0.0), vec![0.0]);
        assert_eq!(e.evaluate(1.0), vec![0.5]);
        assert_eq!(e.evaluate(2.0), vec![1.0]);
        // Silent past stale_after: the target drops to 0 and α ramps down.
        assert_eq!(e.evaluate(10.0), vec![1.0]);
        assert_eq!(e.evaluate(10.5), vec![0.75]);
        assert_eq!(e.evaluate(12.0), vec![0.0]);
        e.set_override("fog", Some(0.3), Some(20.0)).unwrap();
        assert_eq!(e.evaluate(13.0), vec![0.3]);
        assert_eq!(e.evaluate(21.0), vec![0.0]);
        assert!(e.set_override("snow", Some(1.0), None).is_err());
    }

    #[test]
    fn total_is_capped_proportionally() {
        let mut p = fog_policy();
        p.rules.push(Rule {
            signature: "snow".into(),
            signal: "wmo_code".into(),
            map: Map::Codes(vec![73]),
            alpha: 1.0,
            and: None,
        });
        p.ramp_per_s = 100.0;
        let mut e = Engine::new(p, vec![100.0]);
        e.observe(
            0,
            0.0,
            &[("visibility_m".into(), 200.0), ("wmo_code".into(), 73.0)],
        );
        e.evaluate(0.0);
        assert_eq!(e.evaluate(1.0), vec![0.75, 0.75]);
    }

    #[test]
    fn hysteresis_holds_small_moves() {
        let mut p = fog_policy();
        p.ramp_per_s = 100.0;
        p.hysteresis = 0.1;
        let mut e = Engine::new(p, vec![100.0]);
        e.observe(0, 0.0, &[("visibility_m".into(), 600.0)]);
        e.evaluate(0.0);
        assert_eq!(e.evaluate(1.0), vec![0.5]);
        e.observe(0, 1.0, &[("visibility_m".into(), 570.0)]); // target 0.5375
        assert_eq!(e.evaluate(2.0), vec![0.5]);
        e.observe(0, 2.0, &[("visibility_m".into(), 440.0)]); // target 0.7
        assert_eq!(e.evaluate(3.0), vec![0.7]);
    }
}
