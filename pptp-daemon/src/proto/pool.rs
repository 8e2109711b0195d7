//! The client address pool: ranges from the configuration, per-user static
//! addresses from the secrets file, no address handed out twice, each one
//! returned at teardown.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    net::Ipv4Addr,
};

use std::fmt;

use serde::{Deserialize, Serialize};

/// An inclusive range of pool addresses, written `"a.b.c.d"`,
/// `"a.b.c.d-e.f.g.h"` or `"a.b.c.d/len"` (a CIDR block without its network
/// and broadcast addresses when len < 31).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl PoolRange {
    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&addr)
    }
}

impl std::str::FromStr for PoolRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let addr = |a: &str| {
            a.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("`{a}` is not an IPv4 address: {e}"))
        };
        let range = if let Some((a, b)) = s.split_once('-') {
            PoolRange {
                first: addr(a)?,
                last: addr(b)?,
            }
        } else if let Some((a, len)) = s.split_once('/') {
            let base = u32::from(addr(a)?);
            let len: u32 = len
                .trim()
                .parse()
                .ok()
                .filter(|l| *l <= 32)
                .ok_or_else(|| format!("`{len}` is not a prefix length (0-32)"))?;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            if base & !mask != 0 {
                return Err(format!("`{s}` has host bits set"));
            }
            let (first, last) = match len {
                32 => (base, base),
                31 => (base, base | 1),
                _ => (base + 1, (base | !mask) - 1),
            };
            PoolRange {
                first: first.into(),
                last: last.into(),
            }
        } else {
            let a = addr(s)?;
            PoolRange { first: a, last: a }
        };
        if range.first > range.last {
            return Err(format!("`{s}`: the first address is above the last"));
        }
        Ok(range)
    }
}

impl fmt::Display for PoolRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PoolRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoolRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why no address could be assigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("address pool exhausted ({0} addresses, none free and allowed)")]
    Exhausted(usize),
    #[error("static address {0} is already in use by another session")]
    StaticInUse(Ipv4Addr),
    #[error("address {0} is not allowed for this user")]
    NotAllowed(Ipv4Addr),
    #[error("no such session")]
    UnknownSession,
    /// A Framed-Pool (RFC 2869 section 5.18) naming no configured pool.
    #[error("no address pool named {0:?} (RADIUS Framed-Pool; configure it in [ppp.pools])")]
    UnknownPool(String),
}

/// The named pools of `ppp.pools` (RADIUS Framed-Pool), each without
/// `exclude` (our own address).
pub fn named_pools(
    pools: &BTreeMap<String, Vec<PoolRange>>,
    exclude: &[Ipv4Addr],
) -> BTreeMap<String, AddressPool> {
    pools
        .iter()
        .map(|(name, ranges)| (name.clone(), AddressPool::new(ranges, exclude)))
        .collect()
}

/// How many dynamic addresses [`AddressPool::allocate_where`] examines at
/// most for one request: a restrictive `allowed` predicate over a huge pool
/// must not scan billions of addresses. A user whose allowed addresses lie
/// beyond this many free pool addresses gets [`PoolError::Exhausted`]; give
/// such a user a static address instead.
pub const MAX_SCAN: usize = 1 << 16;

/// Once this many released addresses wait for reuse, they are reused before
/// never-used ones, so the queue of released addresses stays bounded
/// however large the pool is.
pub const REUSE_AFTER: usize = 1 << 16;

/// Addresses for clients. Dynamic addresses are handed out
/// least-recently-released first (never-used addresses before released
/// ones), so a client that reconnects seldom gets the address another
/// client just left (stale flows, ARP caches).
///
/// Nothing is materialised per pool address: never-used addresses are kept
/// as sorted disjoint intervals, so a pool of `0.0.0.0/1` costs a few
/// bytes. Every pool address is in exactly one place: the never-used
/// intervals, the queue of released addresses, or the set in use.
#[derive(Debug)]
pub struct AddressPool {
    /// Never-used free addresses: first -> last (inclusive), disjoint.
    untouched: BTreeMap<u32, u32>,
    /// Released free addresses, least recently released first.
    released: VecDeque<Ipv4Addr>,
    in_use: HashSet<Ipv4Addr>,
    ranges: Vec<PoolRange>,
    exclude: Vec<Ipv4Addr>,
    size: u64,
}

impl AddressPool {
    /// A pool of every address in `ranges` (which the configuration has
    /// already checked for overlaps), minus `exclude` (our own address).
    /// Costs memory in the number of ranges and exclusions, not addresses.
    pub fn new(ranges: &[PoolRange], exclude: &[Ipv4Addr]) -> Self {
        let mut pool = Self {
            untouched: BTreeMap::new(),
            released: VecDeque::new(),
            in_use: HashSet::new(),
            ranges: ranges.to_vec(),
            exclude: exclude.to_vec(),
            size: 0,
        };
        for r in ranges {
            let (first, last) = (u32::from(r.first), u32::from(r.last));
            // Overlapping ranges (refused by the configuration) merge.
            pool.insert_untouched(first, last);
        }
        for &a in exclude {
            pool.take_untouched(u32::from(a));
        }
        pool.size = pool
            .untouched
            .iter()
            .map(|(&f, &l)| u64::from(l) - u64::from(f) + 1)
            .sum();
        pool
    }

    fn insert_untouched(&mut self, first: u32, last: u32) {
        let (mut first, mut last) = (first, last);
        // Absorb every interval that overlaps [first, last].
        let overlapping: Vec<(u32, u32)> = self
            .untouched
            .range(..=last)
            .rev()
            .take_while(|&(_, &l)| l >= first)
            .map(|(&f, &l)| (f, l))
            .collect();
        for (f, l) in overlapping {
            self.untouched.remove(&f);
            first = first.min(f);
            last = last.max(l);
        }
        self.untouched.insert(first, last);
    }

    /// Removes `a` from the never-used intervals; whether it was there.
    fn take_untouched(&mut self, a: u32) -> bool {
        let Some((&first, &last)) = self.untouched.range(..=a).next_back() else {
            return false;
        };
        if a > last {
            return false;
        }
        self.untouched.remove(&first);
        if first < a {
            self.untouched.insert(first, a - 1);
        }
        if a < last {
            self.untouched.insert(a + 1, last);
        }
        true
    }

    /// Whether `addr` belongs to the dynamic pool (in a range, not excluded).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.ranges.iter().any(|r| r.contains(addr)) && !self.exclude.contains(&addr)
    }

    /// Assigns an address: the user's static one when given (inside the
    /// pool or not), else the next free pool address.
    pub fn allocate(&mut self, static_address: Option<Ipv4Addr>) -> Result<Ipv4Addr, PoolError> {
        self.allocate_where(static_address, &|_| true)
    }

    /// As [`AddressPool::allocate`], but only an address for which
    /// `allowed` holds (the chap-secrets address column): a static address
    /// that is not allowed is refused, and dynamic allocation skips the
    /// addresses that are not (they stay free for other users). At most
    /// [`MAX_SCAN`] free addresses are examined.
    pub fn allocate_where(
        &mut self,
        static_address: Option<Ipv4Addr>,
        allowed: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Ipv4Addr, PoolError> {
        if let Some(addr) = static_address {
            if !allowed(addr) {
                return Err(PoolError::NotAllowed(addr));
            }
            if self.in_use.contains(&addr) {
                return Err(PoolError::StaticInUse(addr));
            }
            // A static address inside the pool leaves the free places.
            if !self.take_untouched(u32::from(addr))
                && let Some(i) = self.released.iter().position(|&a| a == addr)
            {
                self.released.remove(i);
            }
            self.in_use.insert(addr);
            return Ok(addr);
        }
        let mut budget = MAX_SCAN;
        let found = if self.released.len() >= REUSE_AFTER {
            self.next_released(allowed, &mut budget)
                .or_else(|| self.next_never_used(allowed, &mut budget))
        } else {
            self.next_never_used(allowed, &mut budget)
                .or_else(|| self.next_released(allowed, &mut budget))
        };
        match found {
            Some(addr) => {
                self.in_use.insert(addr);
                Ok(addr)
            }
            None => Err(PoolError::Exhausted(self.size())),
        }
    }

    fn next_never_used(
        &mut self,
        allowed: &dyn Fn(Ipv4Addr) -> bool,
        budget: &mut usize,
    ) -> Option<Ipv4Addr> {
        let mut hit = None;
        'outer: for (&first, &last) in &self.untouched {
            for a in first..=last {
                if *budget == 0 {
                    break 'outer;
                }
                *budget -= 1;
                if allowed(Ipv4Addr::from(a)) {
                    hit = Some(a);
                    break 'outer;
                }
            }
        }
        let a = hit?;
        self.take_untouched(a);
        Some(Ipv4Addr::from(a))
    }

    fn next_released(
        &mut self,
        allowed: &dyn Fn(Ipv4Addr) -> bool,
        budget: &mut usize,
    ) -> Option<Ipv4Addr> {
        let n = self.released.len().min(*budget);
        let i = self.released.iter().take(n).position(|&a| allowed(a));
        *budget -= i.map_or(n, |i| i + 1);
        self.released.remove(i?)
    }

    /// Returns an address. Releasing an address that is not in use is a
    /// no-op (teardown paths may run twice).
    pub fn release(&mut self, addr: Ipv4Addr) {
        if self.in_use.remove(&addr) && self.contains(addr) {
            self.released.push_back(addr);
        }
    }

    /// Addresses currently assigned.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Whether `addr` is assigned to a session.
    pub fn is_in_use(&self, addr: Ipv4Addr) -> bool {
        self.in_use.contains(&addr)
    }

    /// Number of dynamic addresses in the pool.
    pub fn size(&self) -> usize {
        usize::try_from(self.size).unwrap_or(usize::MAX)
    }

    /// Number of dynamic addresses free now.
    pub fn free(&self) -> u64 {
        let untouched: u64 = self
            .untouched
            .iter()
            .map(|(&f, &l)| u64::from(l) - u64::from(f) + 1)
            .sum();
        untouched + self.released.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: &str) -> PoolRange {
        a.parse().unwrap()
    }

    #[test]
    fn hands_out_each_address_once_and_exhausts() {
        let local: Ipv4Addr = "198.19.0.1".parse().unwrap();
        let mut p = AddressPool::new(&[range("198.19.0.0/29")], &[local]);
        assert_eq!(p.size(), 5);
        let got: HashSet<_> = (0..5).map(|_| p.allocate(None).unwrap()).collect();
        assert_eq!(got.len(), 5);
        assert!(!got.contains(&local));
        assert_eq!(p.allocate(None), Err(PoolError::Exhausted(5)));
        assert_eq!(p.in_use(), 5);
    }

    #[test]
    fn released_addresses_come_back_last() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.12")], &[]);
        let a = p.allocate(None).unwrap();
        p.release(a);
        assert_ne!(
            p.allocate(None).unwrap(),
            a,
            "least recently released first"
        );
        assert_ne!(p.allocate(None).unwrap(), a);
        assert_eq!(p.allocate(None).unwrap(), a);
        assert_eq!(p.in_use(), 3);
    }

    #[test]
    fn static_addresses_are_exclusive_and_skipped_by_dynamic_allocation() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.11")], &[]);
        let s: Ipv4Addr = "198.19.0.10".parse().unwrap();
        assert_eq!(p.allocate(Some(s)), Ok(s));
        assert_eq!(p.allocate(Some(s)), Err(PoolError::StaticInUse(s)));
        assert_eq!(
            p.allocate(None).unwrap(),
            "198.19.0.11".parse::<Ipv4Addr>().unwrap()
        );
        assert!(p.allocate(None).is_err());
        p.release(s);
        assert_eq!(p.allocate(None), Ok(s));
        // A static address outside the pool never joins it.
        let outside: Ipv4Addr = "198.18.9.9".parse().unwrap();
        assert_eq!(p.allocate(Some(outside)), Ok(outside));
        p.release(outside);
        p.release(outside);
        assert!(!p.is_in_use(outside));
        assert!(p.allocate(None).is_err());
    }

    #[test]
    fn double_release_does_not_duplicate() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.11")], &[]);
        let a = p.allocate(None).unwrap();
        p.release(a);
        p.release(a);
        let b = p.allocate(None).unwrap();
        let c = p.allocate(None).unwrap();
        assert_ne!(b, c);
        assert!(p.allocate(None).is_err());
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_huge_range_costs_nothing_per_address() {
        // 0.0.0.0/1 is two billion addresses: the old pool queued every one.
        let mut p = AddressPool::new(&[range("0.0.0.0/1")], &[ip("0.0.0.1")]);
        assert_eq!(p.size(), (1usize << 31) - 3);
        assert_eq!(
            p.untouched.len(),
            1,
            "one interval, not a queue of addresses"
        );
        assert_eq!(p.allocate(None), Ok(ip("0.0.0.2")));
        assert_eq!(p.allocate(None), Ok(ip("0.0.0.3")));
        assert_eq!(p.free(), (1u64 << 31) - 5);
    }

    #[test]
    fn allowed_predicate_skips_without_consuming() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.13")], &[]);
        let only_12 = |a: Ipv4Addr| a == ip("198.19.0.12");
        assert_eq!(p.allocate_where(None, &only_12), Ok(ip("198.19.0.12")));
        assert_eq!(
            p.allocate_where(None, &only_12),
            Err(PoolError::Exhausted(4))
        );
        // The skipped addresses are still there, in order, for others.
        assert_eq!(p.allocate(None), Ok(ip("198.19.0.10")));
        assert_eq!(p.allocate(None), Ok(ip("198.19.0.11")));
        assert_eq!(p.allocate(None), Ok(ip("198.19.0.13")));
        assert!(p.allocate(None).is_err());
        // Released addresses are subject to the predicate as well.
        p.release(ip("198.19.0.11"));
        p.release(ip("198.19.0.12"));
        assert_eq!(p.allocate_where(None, &only_12), Ok(ip("198.19.0.12")));
        assert_eq!(p.allocate(None), Ok(ip("198.19.0.11")));
    }

    #[test]
    fn static_address_must_be_allowed() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.11")], &[]);
        let s = ip("198.18.5.5");
        assert_eq!(
            p.allocate_where(Some(s), &|a| a != s),
            Err(PoolError::NotAllowed(s))
        );
        assert!(!p.is_in_use(s));
        assert_eq!(p.allocate_where(Some(s), &|a| a == s), Ok(s));
    }

    #[test]
    fn a_static_address_taken_from_the_released_queue_is_not_handed_out_twice() {
        let mut p = AddressPool::new(&[range("198.19.0.10-198.19.0.11")], &[]);
        let a = p.allocate(None).unwrap();
        p.release(a);
        assert_eq!(p.allocate(Some(a)), Ok(a));
        assert_eq!(p.allocate(None), Ok(ip("198.19.0.11")));
        assert_eq!(p.allocate(None), Err(PoolError::Exhausted(2)));
        p.release(a);
        assert_eq!(p.allocate(None), Ok(a));
    }

    #[test]
    fn the_scan_is_bounded() {
        let mut p = AddressPool::new(&[range("10.0.0.0/8")], &[]);
        let far = ip("10.200.0.1");
        let calls = std::cell::Cell::new(0usize);
        let only_far = |a: Ipv4Addr| {
            calls.set(calls.get() + 1);
            a == far
        };
        assert!(matches!(
            p.allocate_where(None, &only_far),
            Err(PoolError::Exhausted(_))
        ));
        assert!(calls.get() <= MAX_SCAN);
        assert_eq!(p.allocate_where(Some(far), &only_far), Ok(far));
    }

    #[test]
    fn released_addresses_are_reused_once_many_wait() {
        let mut p = AddressPool::new(&[range("10.0.0.0/8")], &[]);
        let first = p.allocate(None).unwrap();
        p.release(first);
        for _ in 1..REUSE_AFTER {
            let a = p.allocate(None).unwrap();
            p.release(a);
        }
        assert_eq!(p.released.len(), REUSE_AFTER);
        assert_eq!(p.allocate(None), Ok(first), "the queue stops growing");
        assert_eq!(p.released.len(), REUSE_AFTER - 1);
    }
}
