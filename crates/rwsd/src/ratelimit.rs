//! Rate-limited reporting of recurring faults (bad sensor lines, output write failures): the
//! first few are logged each, then at most one summary a minute, so a sensor spewing garbage or
//! a full disk cannot flood the journal, and nothing goes unreported.

use std::time::{Duration, Instant};

/// Counts occurrences and says when one should be logged.
#[derive(Debug)]
pub struct RateLimit {
    first: u64,
    every: Duration,
    count: u64,
    since_last: u64,
    last: Option<Instant>,
}

/// What to log for one occurrence: the total so far and how many since the last report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub total: u64,
    pub since_last: u64,
}

impl RateLimit {
    /// Logs the first `first` occurrences, then one per `every`.
    pub fn new(first: u64, every: Duration) -> Self {
        RateLimit {
            first,
            every,
            count: 0,
            since_last: 0,
            last: None,
        }
    }

    /// The usual setting: the first five, then one a minute.
    pub fn standard() -> Self {
        Self::new(5, Duration::from_secs(60))
    }

    /// Counts one occurrence; `Some` when it should be logged.
    pub fn note(&mut self) -> Option<Report> {
        self.count += 1;
        self.since_last += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.every);
        if self.count <= self.first || due {
            let r = Report {
                total: self.count,
                since_last: self.since_last,
            };
            self.last = Some(Instant::now());
            self.since_last = 0;
            return Some(r);
        }
        None
    }

    /// Occurrences so far.
    pub fn total(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_few_then_one_per_period() {
        let mut r = RateLimit::new(3, Duration::from_secs(3600));
        let logged: Vec<bool> = (0..100).map(|_| r.note().is_some()).collect();
        assert_eq!(logged.iter().filter(|x| **x).count(), 3);
        assert_eq!(r.total(), 100);
        let mut r = RateLimit::new(1, Duration::ZERO);
        assert!(r.note().is_some() && r.note().is_some());
    }
}
