//! The client address pool: ranges from the configuration, per-user static
//! addresses from the secrets file, no address handed out twice, each one
//! returned at teardown.

use std::{
    collections::{HashSet, VecDeque},
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
    #[error("address pool exhausted ({0} addresses, all in use)")]
    Exhausted(usize),
    #[error("static address {0} is already in use by another session")]
    StaticInUse(Ipv4Addr),
}

/// Addresses for clients. Dynamic addresses are handed out
/// least-recently-released first, so a client that reconnects seldom gets
/// the address another client just left (stale flows, ARP caches).
#[derive(Debug)]
pub struct AddressPool {
    free: VecDeque<Ipv4Addr>,
    in_use: HashSet<Ipv4Addr>,
    ranges: Vec<PoolRange>,
    size: usize,
}

impl AddressPool {
    /// A pool of every address in `ranges` (which the configuration has
    /// already checked for overlaps), minus `exclude` (our own address).
    pub fn new(ranges: &[PoolRange], exclude: &[Ipv4Addr]) -> Self {
        let mut free = VecDeque::new();
        for r in ranges {
            for a in u32::from(r.first)..=u32::from(r.last) {
                let a = Ipv4Addr::from(a);
                if !exclude.contains(&a) {
                    free.push_back(a);
                }
            }
        }
        let size = free.len();
        Self {
            free,
            in_use: HashSet::new(),
            ranges: ranges.to_vec(),
            size,
        }
    }

    /// Assigns an address: the user's static one when given (inside the
    /// pool or not), else the next free pool address.
    pub fn allocate(&mut self, static_address: Option<Ipv4Addr>) -> Result<Ipv4Addr, PoolError> {
        if let Some(addr) = static_address {
            if !self.in_use.insert(addr) {
                return Err(PoolError::StaticInUse(addr));
            }
            // A static address inside the pool stays in the free queue; it
            // is skipped there while in use.
            return Ok(addr);
        }
        for _ in 0..self.free.len() {
            let Some(addr) = self.free.pop_front() else {
                break;
            };
            if self.in_use.insert(addr) {
                return Ok(addr);
            }
            // Taken as someone's static address: keep it for later.
            self.free.push_back(addr);
        }
        Err(PoolError::Exhausted(self.size))
    }

    /// Returns an address. Releasing an address that is not in use is a
    /// no-op (teardown paths may run twice).
    pub fn release(&mut self, addr: Ipv4Addr) {
        if self.in_use.remove(&addr)
            && self.ranges.iter().any(|r| r.contains(addr))
            && !self.free.contains(&addr)
        {
            self.free.push_back(addr);
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
        self.size
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
}
