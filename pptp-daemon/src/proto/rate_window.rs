//! Events per second over a sliding minute (`ctl stat`'s setups per
//! second), without I/O: the caller passes `now`.
//!
//! Sixty one-second buckets in a ring: constant memory whatever the rate,
//! and a count exact to the second.

use std::time::Instant;

/// Seconds the window covers.
pub const WINDOW_SECS: u64 = 60;

/// Counts events in the last [`WINDOW_SECS`] seconds.
#[derive(Clone, Debug)]
pub struct RateWindow {
    /// The instant second 0 starts at (the first event or query).
    base: Option<Instant>,
    /// Events per second, indexed by second modulo the window.
    buckets: [u64; WINDOW_SECS as usize],
    /// The newest second a bucket was written or cleared for.
    head: u64,
}

impl Default for RateWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl RateWindow {
    pub fn new() -> Self {
        Self {
            base: None,
            buckets: [0; WINDOW_SECS as usize],
            head: 0,
        }
    }

    /// The second `now` falls in (an instant before the base counts as the
    /// base's second: the clock given to us never goes back by much).
    fn second(&mut self, now: Instant) -> u64 {
        let base = *self.base.get_or_insert(now);
        now.saturating_duration_since(base).as_secs()
    }

    /// Moves the head to `second`, clearing the buckets of the seconds in
    /// between (all of them after a pause longer than the window).
    fn advance(&mut self, second: u64) {
        if second <= self.head {
            return;
        }
        let gap = (second - self.head).min(WINDOW_SECS);
        for s in (second + 1 - gap)..=second {
            self.buckets[(s % WINDOW_SECS) as usize] = 0;
        }
        self.head = second;
    }

    /// One event at `now`.
    pub fn record(&mut self, now: Instant) {
        let second = self.second(now);
        self.advance(second);
        // An event older than the head (out of order) still lands in its
        // own second when that second is inside the window.
        if self.head - second < WINDOW_SECS {
            self.buckets[(second % WINDOW_SECS) as usize] += 1;
        }
    }

    /// Events in the last [`WINDOW_SECS`] seconds up to `now` (the current,
    /// partial second included).
    pub fn count(&mut self, now: Instant) -> u64 {
        let second = self.second(now);
        self.advance(second);
        self.buckets.iter().sum()
    }

    /// Events per second, averaged over the window.
    pub fn per_second(&mut self, now: Instant) -> f64 {
        self.count(now) as f64 / WINDOW_SECS as f64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    #[test]
    fn counts_events_of_the_last_minute() {
        let t0 = Instant::now();
        let mut w = RateWindow::new();
        for i in 0..30 {
            w.record(at(t0, f64::from(i)));
        }
        assert_eq!(w.count(at(t0, 29.5)), 30);
        assert!((w.per_second(at(t0, 29.5)) - 0.5).abs() < 1e-9);
        // At 65 s the events of seconds 0..=5 have left the window.
        assert_eq!(w.count(at(t0, 65.0)), 24);
        // Several events in one second.
        for _ in 0..5 {
            w.record(at(t0, 65.2));
        }
        assert_eq!(w.count(at(t0, 65.9)), 29);
    }

    #[test]
    fn a_long_pause_empties_the_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new();
        for i in 0..100 {
            w.record(at(t0, f64::from(i) / 10.0));
        }
        assert_eq!(w.count(at(t0, 10.0)), 100);
        assert_eq!(w.count(at(t0, 3600.0)), 0);
        w.record(at(t0, 3600.5));
        assert_eq!(w.count(at(t0, 3601.0)), 1);
    }

    #[test]
    fn an_event_older_than_the_window_is_not_counted() {
        let t0 = Instant::now();
        let mut w = RateWindow::new();
        w.record(at(t0, 0.0));
        w.count(at(t0, 200.0));
        // A stale instant (before the head by more than the window).
        w.record(at(t0, 100.0));
        assert_eq!(w.count(at(t0, 200.0)), 0);
        // Within the window, out of order: counted in its own second.
        w.record(at(t0, 170.0));
        assert_eq!(w.count(at(t0, 200.0)), 1);
        assert_eq!(w.count(at(t0, 231.0)), 0);
    }
}
