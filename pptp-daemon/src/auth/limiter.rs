//! Brute-force defence across sessions: a per-source-address count of
//! failed authentications within a window (`auth.source_max_failures` per
//! `auth.source_window_secs`). A source over the limit is refused without
//! a check ([`Rejection::RateLimited`]) until its window ends.
//!
//! [`SourceLimiter`] is sans-IO (`now` is an argument) with bounded memory:
//! windows expire, and at most [`SourceLimits::max_sources`] addresses are
//! tracked (past that, expired entries go first, then the oldest).
//! [`LimitedVerifier`] wraps any [`Verifier`] with it, for the daemon.
//!
//! The per-session limit (`auth.max_attempts`) and the delay after a
//! failure (`auth.failure_delay_ms`) live in the server engine
//! (`super::server`).
//!
//! Only [`Rejection::BadCredentials`] counts as a failure. A success does
//! not clear the count: behind a shared NAT address an attacker with one
//! valid account could otherwise reset it at will.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{Credentials, Rejection, Verdict, Verifier};

/// The limits of a [`SourceLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLimits {
    /// Failures from one address within `window` before it is refused.
    pub max_failures: u32,
    /// Length of the window, from the first failure counted in it.
    pub window: Duration,
    /// Addresses tracked at most.
    pub max_sources: usize,
}

impl SourceLimits {
    /// Default cap on tracked addresses.
    pub const DEFAULT_MAX_SOURCES: usize = 16_384;
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Failures per source address, in fixed windows that start at the first
/// failure.
#[derive(Debug)]
pub struct SourceLimiter {
    limits: SourceLimits,
    windows: HashMap<IpAddr, Window>,
}

impl SourceLimiter {
    pub fn new(limits: SourceLimits) -> SourceLimiter {
        SourceLimiter {
            limits,
            windows: HashMap::new(),
        }
    }

    pub fn limits(&self) -> SourceLimits {
        self.limits
    }

    /// Whether `source` has used up its failures in the current window.
    /// A limit of 0 failures disables the limiter.
    pub fn is_blocked(&self, source: IpAddr, now: Instant) -> bool {
        self.limits.max_failures > 0
            && self
                .windows
                .get(&source)
                .is_some_and(|w| !self.expired(w, now) && w.failures >= self.limits.max_failures)
    }

    /// Counts a failed authentication from `source`.
    pub fn record_failure(&mut self, source: IpAddr, now: Instant) {
        if let Some(w) = self.windows.get_mut(&source) {
            if now.saturating_duration_since(w.start) >= self.limits.window {
                *w = Window {
                    start: now,
                    failures: 1,
                };
            } else {
                w.failures = w.failures.saturating_add(1);
            }
            return;
        }
        if self.windows.len() >= self.limits.max_sources {
            self.purge(now);
        }
        if self.windows.len() >= self.limits.max_sources {
            let oldest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.start)
                .map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.windows.remove(&oldest);
            }
        }
        if self.limits.max_sources > 0 {
            self.windows.insert(
                source,
                Window {
                    start: now,
                    failures: 1,
                },
            );
        }
    }

    /// Forgets the windows that have ended.
    pub fn purge(&mut self, now: Instant) {
        let window = self.limits.window;
        self.windows
            .retain(|_, w| now.saturating_duration_since(w.start) < window);
    }

    /// Number of addresses tracked.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    fn expired(&self, w: &Window, now: Instant) -> bool {
        now.saturating_duration_since(w.start) >= self.limits.window
    }
}

/// A [`Verifier`] behind a [`SourceLimiter`]: refuses a blocked source with
/// [`Rejection::RateLimited`] without asking the inner verifier, and counts
/// its [`Rejection::BadCredentials`] answers.
pub struct LimitedVerifier<V> {
    inner: V,
    limiter: Mutex<SourceLimiter>,
    clock: Box<dyn Fn() -> Instant + Send + Sync>,
}

impl<V: Verifier> LimitedVerifier<V> {
    /// With the system's monotonic clock.
    pub fn new(inner: V, limits: SourceLimits) -> LimitedVerifier<V> {
        LimitedVerifier::with_clock(inner, limits, Instant::now)
    }

    /// With a clock of the caller's (tests: a simulated one).
    pub fn with_clock(
        inner: V,
        limits: SourceLimits,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> LimitedVerifier<V> {
        LimitedVerifier {
            inner,
            limiter: Mutex::new(SourceLimiter::new(limits)),
            clock: Box::new(clock),
        }
    }

    pub fn inner(&self) -> &V {
        &self.inner
    }

    /// Forgets ended windows (the daemon may call it now and then; the
    /// limiter also purges by itself when full).
    pub fn purge(&self) {
        let now = (self.clock)();
        self.lock().purge(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SourceLimiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V: Verifier> LimitedVerifier<V> {
    /// The inner check unless `source` is blocked; failures recorded.
    fn limited(&self, source: IpAddr, check: impl FnOnce(&V) -> Verdict) -> Verdict {
        let now = (self.clock)();
        if self.lock().is_blocked(source, now) {
            return Verdict::Reject(Rejection::RateLimited);
        }
        let verdict = check(&self.inner);
        if verdict == Verdict::Reject(Rejection::BadCredentials) {
            self.lock().record_failure(source, now);
        }
        verdict
    }
}

impl<V: Verifier> Verifier for LimitedVerifier<V> {
    fn verify(&self, source: IpAddr, credentials: &Credentials) -> Verdict {
        self.limited(source, |v| v.verify(source, credentials))
    }

    fn verify_call(&self, source: IpAddr, call_id: u16, credentials: &Credentials) -> Verdict {
        self.limited(source, |v| v.verify_call(source, call_id, credentials))
    }

    fn radius(&self) -> Option<&super::radius::RadiusVerifier> {
        self.inner.radius()
    }
}

/// A shared verifier (e.g. `Arc<SecretsFile>`, which the daemon also keeps
/// to reload it) is a verifier.
impl<V: Verifier + ?Sized> Verifier for Arc<V> {
    fn verify(&self, source: IpAddr, credentials: &Credentials) -> Verdict {
        (**self).verify(source, credentials)
    }

    fn verify_call(&self, source: IpAddr, call_id: u16, credentials: &Credentials) -> Verdict {
        (**self).verify_call(source, call_id, credentials)
    }

    fn radius(&self) -> Option<&super::radius::RadiusVerifier> {
        (**self).radius()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::Ipv4Addr,
        sync::atomic::{AtomicU64, Ordering},
    };

    use super::*;
    use crate::auth::{Accepted, secrets::SecretsFile};

    fn addr(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn limits(max_failures: u32, max_sources: usize) -> SourceLimits {
        SourceLimits {
            max_failures,
            window: Duration::from_secs(300),
            max_sources,
        }
    }

    #[test]
    fn blocks_after_max_failures_within_the_window() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(limits(3, 100));
        for i in 0..3 {
            assert!(!l.is_blocked(addr(1), t0), "{i}");
            l.record_failure(addr(1), t0 + Duration::from_secs(i));
        }
        assert!(l.is_blocked(addr(1), t0 + Duration::from_secs(10)));
        assert!(
            !l.is_blocked(addr(2), t0 + Duration::from_secs(10)),
            "per source"
        );
        // The window runs from the first failure.
        assert!(l.is_blocked(addr(1), t0 + Duration::from_secs(299)));
        assert!(!l.is_blocked(addr(1), t0 + Duration::from_secs(300)));
        // A failure after the window starts a new one.
        l.record_failure(addr(1), t0 + Duration::from_secs(301));
        assert!(!l.is_blocked(addr(1), t0 + Duration::from_secs(302)));
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(limits(2, 4));
        for i in 0..4 {
            l.record_failure(addr(i), t0 + Duration::from_secs(u64::from(i)));
            l.record_failure(addr(i), t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(l.tracked(), 4);
        // A fifth source evicts the oldest window (source 0).
        l.record_failure(addr(9), t0 + Duration::from_secs(10));
        assert_eq!(l.tracked(), 4);
        assert!(!l.is_blocked(addr(0), t0 + Duration::from_secs(10)));
        assert!(l.is_blocked(addr(1), t0 + Duration::from_secs(10)));
        // Expired windows go first.
        l.record_failure(addr(8), t0 + Duration::from_secs(303));
        assert_eq!(l.tracked(), 2, "sources 1 to 3 expired; 9 and 8 remain");
        l.purge(t0 + Duration::from_secs(1000));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn zero_disables() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(limits(0, 10));
        l.record_failure(addr(1), t0);
        assert!(!l.is_blocked(addr(1), t0));
    }

    #[test]
    fn limited_verifier_counts_bad_credentials_only() {
        let secrets = Arc::new(SecretsFile::from_text(b"alice * pw *\n", "f", "s").unwrap());
        let clock = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let c = clock.clone();
        let v = LimitedVerifier::with_clock(secrets, limits(2, 10), move || {
            t0 + Duration::from_secs(c.load(Ordering::Relaxed))
        });
        let pap = |pw: &str| Credentials::Pap {
            user: "alice".into(),
            password: pw.as_bytes().to_vec(),
        };
        let ok = Verdict::Accept(Accepted {
            user: "alice".into(),
            static_address: None,
            addresses: crate::auth::AddressPolicy::any(),
            authenticator_response: None,
            mppe: None,
            session: Default::default(),
        });
        assert_eq!(v.verify(addr(1), &pap("pw")), ok);
        assert_eq!(
            v.verify(addr(1), &pap("x")),
            Verdict::Reject(Rejection::BadCredentials)
        );
        assert_eq!(v.verify(addr(1), &pap("pw")), ok, "successes do not count");
        assert_eq!(
            v.verify(addr(1), &pap("y")),
            Verdict::Reject(Rejection::BadCredentials)
        );
        // Now blocked, even with the right password.
        assert_eq!(
            v.verify(addr(1), &pap("pw")),
            Verdict::Reject(Rejection::RateLimited)
        );
        assert_eq!(v.verify(addr(2), &pap("pw")), ok);
        clock.store(300, Ordering::Relaxed);
        assert_eq!(v.verify(addr(1), &pap("pw")), ok);
        v.purge();
        assert_eq!(v.lock().tracked(), 0);
    }
}
