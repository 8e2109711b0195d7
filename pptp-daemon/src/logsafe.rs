//! Log hygiene for what peers send us: [`Escaped`] shows client-supplied
//! bytes (user names, SCCRQ host and vendor names) on one bounded line,
//! and [`WarnLimiter`] keeps one source from flooding the log with the
//! same warning.
//!
//! Both are sans-IO: `Escaped` only formats, `WarnLimiter` takes `now`.

use std::{
    collections::{HashMap, VecDeque},
    fmt::{self, Write as _},
    net::IpAddr,
    time::{Duration, Instant},
};

/// Characters of the input shown by default before the ellipsis.
pub const DEFAULT_MAX_CHARS: usize = 64;

/// Client-supplied bytes or text, made safe to log: control characters
/// (`\n`, `\r`, `\t`, ESC and the rest of C0, DEL, C1), the Unicode line
/// separators and bidirectional overrides, and the backslash are escaped,
/// bytes that are not UTF-8 show as `\xNN`, and at most `max_chars`
/// characters of the input are shown, then `…`. The output never contains
/// a line break or a terminal escape sequence.
///
/// ```
/// use pptp_daemon::logsafe::Escaped;
/// assert_eq!(Escaped::new("bob\nFAKE").to_string(), "bob\\nFAKE");
/// assert_eq!(Escaped::new(b"a\xffb").to_string(), "a\\xffb");
/// ```
#[derive(Clone, Copy)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    max_chars: usize,
}

impl<'a> Escaped<'a> {
    /// At most [`DEFAULT_MAX_CHARS`] characters.
    pub fn new<T: AsRef<[u8]> + ?Sized>(value: &'a T) -> Escaped<'a> {
        Escaped {
            bytes: value.as_ref(),
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// Shows at most `max_chars` characters of the input (each invalid byte
    /// counts as one).
    pub fn max_chars(self, max_chars: usize) -> Escaped<'a> {
        Escaped { max_chars, ..self }
    }
}

/// Whether a valid character must be escaped.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        // Line and paragraph separators.
        || matches!(c, '\u{2028}' | '\u{2029}')
        // Bidirectional embeddings, overrides and isolates (they reorder
        // what follows on the line).
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    if !needs_escape(c) {
        return f.write_char(c);
    }
    match c {
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\\' => f.write_str("\\\\"),
        c if u32::from(c) < 0x80 => write!(f, "\\x{:02x}", u32::from(c)),
        c => write!(f, "\\u{{{:04x}}}", u32::from(c)),
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = 0usize;
        for chunk in self.bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if shown == self.max_chars {
                    return f.write_char('…');
                }
                write_char(f, c)?;
                shown += 1;
            }
            for b in chunk.invalid() {
                if shown == self.max_chars {
                    return f.write_char('…');
                }
                write!(f, "\\x{b:02x}")?;
                shown += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.to_string().replace('"', "\\\""))
    }
}

/// The limits of a [`WarnLimiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarnLimits {
    /// One line per key per `interval` once the burst is spent.
    pub interval: Duration,
    /// Lines a key may log back to back.
    pub burst: u32,
    /// All keys together: one line per `global_interval`...
    pub global_interval: Duration,
    /// ...after a burst of this many.
    pub global_burst: u32,
    /// Keys tracked at most; past that the oldest is forgotten.
    pub max_keys: usize,
}

impl Default for WarnLimits {
    /// One line per source per 10 s after a burst of 3; 10 lines per
    /// second in all after a burst of 50; 4096 sources tracked.
    fn default() -> Self {
        WarnLimits {
            interval: Duration::from_secs(10),
            burst: 3,
            global_interval: Duration::from_millis(100),
            global_burst: 50,
            max_keys: 4096,
        }
    }
}

/// What [`WarnLimiter::check`] decided.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// Log this one now.
    pub log: bool,
    /// When `log`: lines of this key suppressed since its last logged one
    /// (say so in the line). Otherwise 0.
    pub suppressed: u64,
}

/// A token bucket with whole tokens: `tokens` of `burst`, one more per
/// `interval` since `refilled`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            refilled: now,
        }
    }

    fn take(&mut self, now: Instant, interval: Duration, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled);
        if interval.is_zero() {
            self.tokens = burst;
        } else {
            let earned = elapsed.as_nanos() / interval.as_nanos();
            if earned > 0 {
                let earned = u32::try_from(earned).unwrap_or(u32::MAX);
                self.tokens = self.tokens.saturating_add(earned).min(burst);
                // Keep the fraction of an interval already elapsed, unless
                // the bucket is full anyway.
                self.refilled = if self.tokens == burst {
                    now
                } else {
                    self.refilled + interval * earned
                };
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[derive(Clone, Copy, Debug)]
struct KeyState {
    bucket: Bucket,
    suppressed: u64,
}

/// Rate limit for repeated warnings, keyed by source address: a token
/// bucket per source and one for all sources together (so that many
/// sources cannot flood the log either). Memory is bounded: at most
/// [`WarnLimits::max_keys`] sources are tracked; a new source past that
/// evicts the one tracked longest (its suppressed count goes into
/// [`WarnLimiter::suppressed_evicted`]).
///
/// ```
/// # use std::{net::{IpAddr, Ipv4Addr}, time::Instant};
/// use pptp_daemon::logsafe::{WarnLimiter, WarnLimits};
/// let mut limiter = WarnLimiter::new(WarnLimits::default());
/// let source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// let permit = limiter.check(Instant::now(), source);
/// if permit.log {
///     // tracing::warn!(%source, suppressed = permit.suppressed, "refused");
/// }
/// ```
#[derive(Debug)]
pub struct WarnLimiter {
    limits: WarnLimits,
    keys: HashMap<IpAddr, KeyState>,
    /// Insertion order, for eviction: exactly the keys of `keys`.
    order: VecDeque<IpAddr>,
    global: Option<Bucket>,
    evicted_suppressed: u64,
}

impl WarnLimiter {
    pub fn new(limits: WarnLimits) -> WarnLimiter {
        WarnLimiter {
            limits,
            keys: HashMap::new(),
            order: VecDeque::new(),
            global: None,
            evicted_suppressed: 0,
        }
    }

    pub fn limits(&self) -> WarnLimits {
        self.limits
    }

    /// A warning about `key` is about to be logged: whether to log it now,
    /// and how many of this key's were suppressed since the last logged one.
    pub fn check(&mut self, now: Instant, key: IpAddr) -> Permit {
        let limits = self.limits;
        if !self.keys.contains_key(&key) {
            if limits.max_keys == 0 {
                // Nothing tracked per source: only the global cap applies.
                return Permit {
                    log: self.check_global(now),
                    suppressed: 0,
                };
            }
            while self.keys.len() >= limits.max_keys {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(state) = self.keys.remove(&oldest) {
                    self.evicted_suppressed =
                        self.evicted_suppressed.saturating_add(state.suppressed);
                }
            }
            self.keys.insert(
                key,
                KeyState {
                    bucket: Bucket::full(limits.burst, now),
                    suppressed: 0,
                },
            );
            self.order.push_back(key);
        }
        let allowed_by_key = match self.keys.get_mut(&key) {
            Some(state) => state.bucket.take(now, limits.interval, limits.burst),
            None => false,
        };
        let allowed = allowed_by_key && self.check_global(now);
        let Some(state) = self.keys.get_mut(&key) else {
            return Permit {
                log: false,
                suppressed: 0,
            };
        };
        if allowed {
            Permit {
                log: true,
                suppressed: std::mem::take(&mut state.suppressed),
            }
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
            Permit {
                log: false,
                suppressed: 0,
            }
        }
    }

    fn check_global(&mut self, now: Instant) -> bool {
        let limits = self.limits;
        self.global
            .get_or_insert_with(|| Bucket::full(limits.global_burst, now))
            .take(now, limits.global_interval, limits.global_burst)
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }

    /// Suppressed lines of sources forgotten before they logged again.
    pub fn suppressed_evicted(&self) -> u64 {
        self.evicted_suppressed
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn injected_lines_stay_on_one_line() {
        let user = "alice\nFAKE LOG LINE";
        let shown = Escaped::new(user).to_string();
        assert_eq!(shown, "alice\\nFAKE LOG LINE");
        assert!(!shown.contains('\n'));
        let host = b"host\r\n2026-12-01T00:00:00Z  INFO fake\t\x1b[31mred\x7f\\";
        let shown = Escaped::new(host).max_chars(200).to_string();
        assert_eq!(
            shown,
            "host\\r\\n2026-12-01T00:00:00Z  INFO fake\\t\\x1b[31mred\\x7f\\\\"
        );
        assert!(shown.chars().all(|c| !c.is_control()), "{shown}");
        // Line separators, bidi overrides and C1 controls.
        assert_eq!(
            Escaped::new("a\u{2028}b\u{202e}c\u{85}d").to_string(),
            "a\\u{2028}b\\u{202e}c\\u{0085}d"
        );
        // Printable Unicode stays as it is.
        assert_eq!(Escaped::new("José 東京").to_string(), "José 東京");
    }

    #[test]
    fn invalid_utf8_shows_as_hex() {
        assert_eq!(
            Escaped::new(b"\xff\xfeab\xc3").to_string(),
            "\\xff\\xfeab\\xc3"
        );
        assert_eq!(
            format!("{:?}", Escaped::new(b"say \"hi\"\n")),
            "\"say \\\"hi\\\"\\n\""
        );
    }

    #[test]
    fn long_input_is_truncated() {
        let long = "x".repeat(1000);
        let shown = Escaped::new(&long).to_string();
        assert_eq!(shown, format!("{}…", "x".repeat(DEFAULT_MAX_CHARS)));
        assert_eq!(Escaped::new("abcdef").max_chars(3).to_string(), "abc…");
        assert_eq!(Escaped::new("abc").max_chars(3).to_string(), "abc");
        // Escapes count as one character of the input.
        assert_eq!(
            Escaped::new(&b"\n".repeat(100)).max_chars(2).to_string(),
            "\\n\\n…"
        );
    }

    fn addr(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc000_0200 + n))
    }

    fn limits() -> WarnLimits {
        WarnLimits {
            interval: Duration::from_secs(10),
            burst: 1,
            global_interval: Duration::from_millis(1),
            global_burst: 1000,
            max_keys: 1024,
        }
    }

    #[test]
    fn first_passes_then_suppressed_then_counted() {
        let t0 = Instant::now();
        let mut l = WarnLimiter::new(limits());
        assert_eq!(
            l.check(t0, addr(1)),
            Permit {
                log: true,
                suppressed: 0
            }
        );
        for i in 1..=5 {
            let p = l.check(t0 + Duration::from_secs(i), addr(1));
            assert!(!p.log, "{i}");
        }
        // Another source is not affected.
        assert!(l.check(t0 + Duration::from_secs(5), addr(2)).log);
        // The window has passed: logged, with the count of the others.
        assert_eq!(
            l.check(t0 + Duration::from_secs(10), addr(1)),
            Permit {
                log: true,
                suppressed: 5
            }
        );
        assert!(!l.check(t0 + Duration::from_secs(11), addr(1)).log);
        assert_eq!(
            l.check(t0 + Duration::from_secs(25), addr(1)),
            Permit {
                log: true,
                suppressed: 1
            }
        );
    }

    #[test]
    fn burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut l = WarnLimiter::new(WarnLimits {
            burst: 3,
            ..limits()
        });
        let logged: Vec<bool> = (0..6).map(|_| l.check(t0, addr(1)).log).collect();
        assert_eq!(logged, [true, true, true, false, false, false]);
        // 25 s later: two intervals earned two lines.
        let t = t0 + Duration::from_secs(25);
        let logged: Vec<bool> = (0..3).map(|_| l.check(t, addr(1)).log).collect();
        assert_eq!(logged, [true, true, false]);
    }

    #[test]
    fn global_cap_bounds_many_sources() {
        let t0 = Instant::now();
        let mut l = WarnLimiter::new(WarnLimits {
            global_interval: Duration::from_secs(1),
            global_burst: 10,
            ..limits()
        });
        let logged = (0..1000).filter(|&i| l.check(t0, addr(i)).log).count();
        assert_eq!(logged, 10);
        // One second later, one more line in all.
        let t = t0 + Duration::from_secs(1);
        let logged = (1000..2000).filter(|&i| l.check(t, addr(i)).log).count();
        assert_eq!(logged, 1);
    }

    #[test]
    fn memory_is_bounded_with_100k_sources() {
        let t0 = Instant::now();
        let mut l = WarnLimiter::new(limits());
        for i in 0..100_000u32 {
            let _ = l.check(t0 + Duration::from_micros(u64::from(i)), addr(i));
            assert!(l.tracked() <= 1024);
        }
        assert_eq!(l.tracked(), 1024);
        assert!(l.keys.capacity() < 4096 && l.order.len() == 1024);
        // The newest are tracked; the oldest were forgotten.
        assert!(l.keys.contains_key(&addr(99_999)));
        assert!(!l.keys.contains_key(&addr(0)));
    }

    #[test]
    fn eviction_keeps_the_suppressed_count() {
        let t0 = Instant::now();
        let mut l = WarnLimiter::new(WarnLimits {
            max_keys: 2,
            ..limits()
        });
        assert!(l.check(t0, addr(1)).log);
        assert!(!l.check(t0, addr(1)).log);
        assert!(!l.check(t0, addr(1)).log);
        assert!(l.check(t0, addr(2)).log);
        assert!(l.check(t0, addr(3)).log, "evicts source 1");
        assert_eq!(l.tracked(), 2);
        assert_eq!(l.suppressed_evicted(), 2);
    }
}
