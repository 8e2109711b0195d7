//! Per-session rate limits: where they come from (the configuration's
//! `[shaping]`, RADIUS Filter-Id as accel-ppp's shaper reads it,
//! Mikrotik-Rate-Limit) and the token bucket that enforces them on the
//! userspace data path, with the same arithmetic as the XDP program
//! ([`pptp_common::rate`]: GCRA, policing by drop).
//!
//! Directions are named from the concentrator's side of the client's
//! link, as MikroTik does: **up** (MikroTik's rx, the client's upload) is
//! what the client sends, decapsulated towards the network; **down**
//! (MikroTik's tx, the client's download) is what is sent to the client,
//! encapsulated. accel-ppp's Filter-Id gives them in the other order,
//! "down/up".

use std::time::Instant;

use pptp_common::rate;

/// The rate limit of one session, bits per second of inner IPv4 bytes in
/// each direction; 0: no limit that way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// What the client sends (its upload; MikroTik's rx).
    pub up_bps: u64,
    /// What is sent to the client (its download; MikroTik's tx).
    pub down_bps: u64,
}

/// Why a rate string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("empty rate")]
    Empty,
    #[error("rate is not a number with an optional k, M or G suffix: {0:?}")]
    BadNumber(String),
    #[error("rate has more than two values (expected \"up/down\")")]
    TooManyValues,
    #[error("rate string too long ({0} bytes, at most {MAX_RATE_LEN})")]
    TooLong(usize),
}

/// Longest rate string read (a RADIUS attribute holds at most 253 bytes).
pub const MAX_RATE_LEN: usize = 253;

/// Highest rate accepted, bits per second (1 Tbit/s).
pub const MAX_RATE_BPS: u64 = 1_000_000_000_000;

impl RateLimit {
    /// No limit either way.
    pub const NONE: RateLimit = RateLimit {
        up_bps: 0,
        down_bps: 0,
    };

    /// Whether neither direction is limited.
    pub fn is_none(&self) -> bool {
        self.up_bps == 0 && self.down_bps == 0
    }

    /// MikroTik's format (Mikrotik-Rate-Limit, vendor 14988 type 8, and
    /// our configuration): `rx-rate[/tx-rate] [burst fields...]`, rates in
    /// bit/s with an optional `k` (1000), `M` (10^6) or `G` (10^9) suffix;
    /// rx is the client's upload, tx its download, tx defaults to rx. The
    /// burst fields after the first space are not applied (our burst is
    /// `shaping.burst_ms`).
    pub fn parse_mikrotik(text: &str) -> Result<RateLimit, RateError> {
        if text.len() > MAX_RATE_LEN {
            return Err(RateError::TooLong(text.len()));
        }
        let first = text.split_whitespace().next().ok_or(RateError::Empty)?;
        let (rx, tx) = split_pair(first, &['/'])?;
        let up_bps = parse_bps(rx, 1)?;
        let down_bps = tx.map_or(Ok(up_bps), |t| parse_bps(t, 1))?;
        Ok(RateLimit { up_bps, down_bps })
    }

    /// accel-ppp's shaper format of Filter-Id (its `attr=Filter-Id`
    /// default): `down/up` (also `down\up` or `down:up`) in kbit/s, or one
    /// number for both; suffixes as in MikroTik's format are accepted, then
    /// counting in bit/s. A Filter-Id that is not a rate (a filter's name)
    /// gives an error, and the caller ignores it.
    pub fn parse_filter_id(text: &str) -> Result<RateLimit, RateError> {
        if text.len() > MAX_RATE_LEN {
            return Err(RateError::TooLong(text.len()));
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(RateError::Empty);
        }
        let (down, up) = split_pair(text, &['/', '\\', ':'])?;
        let down_bps = parse_bps(down, 1000)?;
        let up_bps = up.map_or(Ok(down_bps), |u| parse_bps(u, 1000))?;
        Ok(RateLimit { up_bps, down_bps })
    }

    /// The rate of one direction as the XDP map holds it: kbit/s, rounded
    /// up (a limit never becomes "none" by rounding), saturating.
    pub fn kbps(bps: u64) -> u32 {
        u32::try_from(bps.div_ceil(1000)).unwrap_or(u32::MAX)
    }
}

impl std::fmt::Display for RateLimit {
    /// MikroTik's form, `up/down` in bit/s with k/M/G where exact; `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn one(bps: u64) -> String {
            match bps {
                0 => "0".into(),
                b if b % 1_000_000_000 == 0 => format!("{}G", b / 1_000_000_000),
                b if b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
                b if b % 1000 == 0 => format!("{}k", b / 1000),
                b => b.to_string(),
            }
        }
        if self.is_none() {
            return f.write_str("none");
        }
        write!(f, "{}/{}", one(self.up_bps), one(self.down_bps))
    }
}

/// `a` or `a<sep>b`, refusing a third value.
fn split_pair<'a>(text: &'a str, seps: &[char]) -> Result<(&'a str, Option<&'a str>), RateError> {
    let mut parts = text.split(seps);
    let first = parts.next().ok_or(RateError::Empty)?;
    let second = parts.next();
    if parts.next().is_some() {
        return Err(RateError::TooManyValues);
    }
    Ok((first, second))
}

/// A number with an optional k/M/G suffix, times `unit` when it has none,
/// in bit/s; at most [`MAX_RATE_BPS`].
fn parse_bps(text: &str, unit: u64) -> Result<u64, RateError> {
    let bad = || RateError::BadNumber(text.chars().take(32).collect());
    let (digits, multiplier) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1000),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1_000_000),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 1_000_000_000),
        Some(_) => (text, unit),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = digits.parse().map_err(|_| bad())?;
    value
        .checked_mul(multiplier)
        .filter(|v| *v <= MAX_RATE_BPS)
        .ok_or_else(bad)
}

/// The rate a RADIUS Access-Accept (or CoA-Request) sets, from the raw
/// values of Filter-Id and Mikrotik-Rate-Limit: MikroTik's wins when both
/// are valid; an invalid one is ignored.
pub fn from_radius(filter_id: Option<&[u8]>, mikrotik: Option<&[u8]>) -> Option<RateLimit> {
    let text = |v: &[u8]| std::str::from_utf8(v).ok().map(str::to_owned);
    mikrotik
        .and_then(text)
        .and_then(|t| RateLimit::parse_mikrotik(&t).ok())
        .or_else(|| {
            filter_id
                .and_then(text)
                .and_then(|t| RateLimit::parse_filter_id(&t).ok())
        })
}

/// One direction's token bucket, in the XDP program's units (kbit/s, ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    kbps: u32,
    /// Theoretical arrival time, ns since [`Shaper`]'s origin.
    tat: u64,
}

impl Bucket {
    fn new(bps: u64) -> Self {
        Bucket {
            kbps: if bps == 0 { 0 } else { RateLimit::kbps(bps) },
            tat: 0,
        }
    }

    fn admit(&mut self, len: usize, now: u64, tolerance: u64) -> bool {
        if self.kbps == 0 {
            return true;
        }
        let cost = rate::cost_ns(len.min(usize::from(u16::MAX)) as u64, self.kbps);
        match rate::admit(self.tat, now, cost, tolerance) {
            Some(tat) => {
                self.tat = tat;
                true
            }
            None => false,
        }
    }
}

/// The rate limit of one session on the userspace data path: a token
/// bucket per direction over inner IPv4 bytes, with the XDP program's
/// arithmetic. Time comes in as `now`; buckets start full.
#[derive(Clone, Debug)]
pub struct Shaper {
    limit: RateLimit,
    origin: Instant,
    /// Burst tolerance, ns.
    tolerance: u64,
    up: Bucket,
    down: Bucket,
}

impl Shaper {
    /// A shaper for `limit` with a burst of `burst_ns` (the time the rate
    /// takes to send a burst).
    pub fn new(limit: RateLimit, burst_ns: u32, now: Instant) -> Self {
        Shaper {
            limit,
            origin: now,
            tolerance: u64::from(burst_ns),
            up: Bucket::new(limit.up_bps),
            down: Bucket::new(limit.down_bps),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Changes the limit; both buckets start full again.
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
        self.up = Bucket::new(limit.up_bps);
        self.down = Bucket::new(limit.down_bps);
    }

    fn ns(&self, now: Instant) -> u64 {
        // Starts at 1 ms so that a tat of 0 is a full bucket, as in the map.
        let d = now.saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX / 2)
            .saturating_add(1_000_000)
    }

    /// Whether `len` inner bytes from the client fit the up bucket (taken
    /// from it when they do).
    pub fn admit_up(&mut self, len: usize, now: Instant) -> bool {
        let now = self.ns(now);
        self.up.admit(len, now, self.tolerance)
    }

    /// Whether `len` inner bytes to the client fit the down bucket.
    pub fn admit_down(&mut self, len: usize, now: Instant) -> bool {
        let now = self.ns(now);
        self.down.admit(len, now, self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rl(up_bps: u64, down_bps: u64) -> RateLimit {
        RateLimit { up_bps, down_bps }
    }

    #[test]
    fn mikrotik_rx_is_up_and_tx_is_down() {
        assert_eq!(
            RateLimit::parse_mikrotik("10M/20M"),
            Ok(rl(10_000_000, 20_000_000))
        );
        assert_eq!(
            RateLimit::parse_mikrotik("256k/512k"),
            Ok(rl(256_000, 512_000))
        );
        // tx defaults to rx.
        assert_eq!(RateLimit::parse_mikrotik("512k"), Ok(rl(512_000, 512_000)));
        assert_eq!(RateLimit::parse_mikrotik("1500"), Ok(rl(1500, 1500)));
        assert_eq!(
            RateLimit::parse_mikrotik("1G/2g"),
            Ok(rl(1_000_000_000, 2_000_000_000))
        );
        // Burst fields are read past and not applied.
        assert_eq!(
            RateLimit::parse_mikrotik("256k/512k 1M/2M 192k/384k 8/8 5 64k/128k"),
            Ok(rl(256_000, 512_000))
        );
    }

    #[test]
    fn malformed_mikrotik_rates_are_refused() {
        assert_eq!(RateLimit::parse_mikrotik(""), Err(RateError::Empty));
        assert_eq!(RateLimit::parse_mikrotik("   "), Err(RateError::Empty));
        for bad in ["k", "10X", "-1", "1.5M", "10M/", "/10M", "0x10", "+5"] {
            assert!(
                matches!(RateLimit::parse_mikrotik(bad), Err(RateError::BadNumber(_))),
                "{bad}"
            );
        }
        assert_eq!(
            RateLimit::parse_mikrotik("1M/2M/3M"),
            Err(RateError::TooManyValues)
        );
        assert!(RateLimit::parse_mikrotik("99999999999999999999").is_err());
        assert!(RateLimit::parse_mikrotik("2000G").is_err());
        assert!(matches!(
            RateLimit::parse_mikrotik(&"1".repeat(300)),
            Err(RateError::TooLong(300))
        ));
    }

    #[test]
    fn filter_id_is_down_then_up_in_kbit() {
        assert_eq!(
            RateLimit::parse_filter_id("1000/500"),
            Ok(rl(500_000, 1_000_000))
        );
        assert_eq!(
            RateLimit::parse_filter_id("2048"),
            Ok(rl(2_048_000, 2_048_000))
        );
        assert_eq!(
            RateLimit::parse_filter_id("1000\\500"),
            Ok(rl(500_000, 1_000_000))
        );
        assert_eq!(
            RateLimit::parse_filter_id("1000:500"),
            Ok(rl(500_000, 1_000_000))
        );
        assert_eq!(
            RateLimit::parse_filter_id("8M/2M"),
            Ok(rl(2_000_000, 8_000_000))
        );
        assert!(RateLimit::parse_filter_id("acl-users").is_err());
        assert!(RateLimit::parse_filter_id("").is_err());
    }

    #[test]
    fn radius_prefers_mikrotik_and_ignores_what_is_not_a_rate() {
        assert_eq!(
            from_radius(Some(b"1000/500"), Some(b"4M/8M")),
            Some(rl(4_000_000, 8_000_000))
        );
        assert_eq!(
            from_radius(Some(b"1000/500"), None),
            Some(rl(500_000, 1_000_000))
        );
        assert_eq!(
            from_radius(Some(b"1000/500"), Some(b"garbage")),
            Some(rl(500_000, 1_000_000))
        );
        assert_eq!(from_radius(Some(b"users-acl"), None), None);
        assert_eq!(from_radius(Some(&[0xff, 0xfe]), None), None);
        assert_eq!(from_radius(None, None), None);
    }

    #[test]
    fn display_is_mikrotik_form() {
        assert_eq!(rl(10_000_000, 20_000_000).to_string(), "10M/20M");
        assert_eq!(rl(1500, 256_000).to_string(), "1500/256k");
        assert_eq!(RateLimit::NONE.to_string(), "none");
        let r = rl(4_000_000, 1_000_000_000);
        assert_eq!(RateLimit::parse_mikrotik(&r.to_string()), Ok(r));
    }

    #[test]
    fn kbps_rounds_up_and_saturates() {
        assert_eq!(RateLimit::kbps(4_000_000), 4000);
        assert_eq!(RateLimit::kbps(1), 1);
        assert_eq!(RateLimit::kbps(1001), 2);
        assert_eq!(RateLimit::kbps(MAX_RATE_BPS), 1_000_000_000);
    }

    const MS: u32 = 1_000_000;

    /// 4 Mbit/s with a 10 ms burst: 1500-byte packets cost 3 ms each.
    #[test]
    fn the_bucket_passes_a_burst_then_holds_the_rate() {
        let t0 = Instant::now();
        let mut s = Shaper::new(rl(4_000_000, 0), 10 * MS, t0);
        let burst = (0..10).take_while(|_| s.admit_up(1500, t0)).count();
        assert_eq!(burst, 4);
        assert!(!s.admit_up(1500, t0));
        // The other direction is unlimited.
        assert!((0..1000).all(|_| s.admit_down(1500, t0)));
        // Over one simulated second of packets offered every 1 ms, the
        // rate lets through 4 Mbit/s: 333 packets plus the burst.
        let mut passed = 0;
        for ms in 1..=1000u64 {
            if s.admit_up(1500, t0 + Duration::from_millis(ms)) {
                passed += 1;
            }
        }
        assert!((333..=338).contains(&passed), "{passed}");
    }

    #[test]
    fn a_new_limit_applies_at_once_with_full_buckets() {
        let t0 = Instant::now();
        let mut s = Shaper::new(rl(0, 1_000_000), 0, t0);
        assert!(s.admit_down(125, t0));
        assert!(!s.admit_down(125, t0));
        s.set_limit(rl(0, 1_000_000_000));
        assert_eq!(s.limit(), rl(0, 1_000_000_000));
        assert!(s.admit_down(125, t0));
        assert!(!s.admit_down(125, t0 + Duration::from_nanos(1)));
        assert!(s.admit_down(125, t0 + Duration::from_micros(1)));
        s.set_limit(RateLimit::NONE);
        assert!((0..100).all(|_| s.admit_down(1500, t0)));
    }
}
