//! Failed sign-ins per client address, on top of the per-e-mail lock in `throttle`: a client spraying one password
//! over many e-mails stays under every e-mail's limit, so failures also count against the address they come from.
//!
//! The address is the TCP peer's: the app has no trusted-proxy setting (the hub's `trusted_proxies` logic lives in
//! the hub), and a forwarding header from an untrusted peer is whatever the client wants it to be. Behind a
//! reverse proxy every client therefore shares the proxy's address and this limit applies to all of them together.
//!
//! Counts live in this process only (one limit per app replica, reset by a restart), keyed by a keyed hash of the
//! address (std's SipHash with a random per-process key), so no address is stored, in memory or anywhere else.
//! An IPv6 client is counted by its /64, which a single client usually holds whole.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked; beyond it (after dropping lapsed entries) new addresses are not counted, and only the
/// per-e-mail lock applies to them.
pub const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Attempts begun in this window that did not succeed (in-flight ones included).
    failures: u32,
    window_started: Instant,
    locked_until: Option<Instant>,
}

pub struct AddressLimit {
    pub max_failures: u32,
    pub window: Duration,
    pub lock: Duration,
    key: std::hash::RandomState,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Default for AddressLimit {
    /// 20 failures in 15 minutes: four times the per-e-mail limit, so an office behind one address is not locked
    /// out by a few people mistyping, while a sprayer gets 20 guesses per address per 15 minutes.
    fn default() -> Self {
        Self::new(20, Duration::from_secs(15 * 60), Duration::from_secs(15 * 60))
    }
}

/// An attempt let through; report how it ended with [`AddressLimit::succeeded`] or [`AddressLimit::failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(Option<u64>);

impl AddressLimit {
    pub fn new(max_failures: u32, window: Duration, lock: Duration) -> Self {
        Self { max_failures, window, lock, key: std::hash::RandomState::new(), entries: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, address: IpAddr) -> u64 {
        match address {
            IpAddr::V4(v4) => self.key.hash_one((4u8, v4.octets())),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.key.hash_one((4u8, v4.octets())),
                None => self.key.hash_one((6u8, v6.segments()[..4].to_vec())),
            },
        }
    }

    /// Counts an attempt from `address` before its password is checked (so parallel guesses cannot slip past the
    /// limit), or refuses it with how long the address stays locked.
    pub fn begin(&self, address: IpAddr, now: Instant) -> Result<Attempt, Duration> {
        let slot = self.slot(address);
        let mut entries = self.entries.lock().expect("address limit lock");
        if !entries.contains_key(&slot) && entries.len() >= MAX_ADDRESSES {
            entries.retain(|_, e| e.locked_until.is_some_and(|t| t > now) || now - e.window_started < self.window);
            if entries.len() >= MAX_ADDRESSES {
                return Ok(Attempt(None));
            }
        }
        let entry = entries.entry(slot).or_insert(Entry { failures: 0, window_started: now, locked_until: None });
        if let Some(until) = entry.locked_until {
            if until > now {
                return Err(until - now);
            }
            *entry = Entry { failures: 0, window_started: now, locked_until: None };
        }
        if now.saturating_duration_since(entry.window_started) >= self.window {
            *entry = Entry { failures: 0, window_started: now, locked_until: None };
        }
        if entry.failures >= self.max_failures {
            entry.locked_until = Some(now + self.lock);
            return Err(self.lock);
        }
        entry.failures += 1;
        Ok(Attempt(Some(slot)))
    }

    /// The attempt failed: locks the address once its failures reach the limit.
    pub fn failed(&self, attempt: Attempt, now: Instant) {
        let Attempt(Some(slot)) = attempt else { return };
        let mut entries = self.entries.lock().expect("address limit lock");
        if let Some(entry) = entries.get_mut(&slot)
            && entry.failures >= self.max_failures
            && entry.locked_until.is_none()
        {
            entry.locked_until = Some(now + self.lock);
        }
    }

    /// The attempt signed in: it does not count. (Earlier failures still do, or a sprayer holding one valid
    /// account could clear its count between guesses.)
    pub fn succeeded(&self, attempt: Attempt) {
        let Attempt(Some(slot)) = attempt else { return };
        let mut entries = self.entries.lock().expect("address limit lock");
        if let Some(entry) = entries.get_mut(&slot) {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }

    /// How many addresses are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.entries.lock().expect("address limit lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> AddressLimit {
        AddressLimit::new(3, Duration::from_secs(60), Duration::from_secs(600))
    }

    #[test]
    fn failures_lock_the_address_and_the_lock_lapses() {
        let l = limit();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            let a = l.begin(ip, t0).expect("under the limit");
            l.failed(a, t0);
        }
        assert_eq!(l.begin(ip, t0 + Duration::from_secs(1)), Err(Duration::from_secs(599)));
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        assert!(l.begin(other, t0).is_ok(), "other addresses are not affected");
        assert!(l.begin(ip, t0 + Duration::from_secs(600)).is_ok(), "the lock lapses");
    }

    #[test]
    fn successes_do_not_count_and_windows_start_over() {
        let l = limit();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            let a = l.begin(ip, t0).unwrap();
            l.succeeded(a);
        }
        for _ in 0..2 {
            let a = l.begin(ip, t0).unwrap();
            l.failed(a, t0);
        }
        let later = t0 + Duration::from_secs(61);
        for _ in 0..3 {
            let a = l.begin(ip, later).expect("a new window");
            l.failed(a, later);
        }
        assert!(l.begin(ip, later).is_err());
    }

    #[test]
    fn parallel_attempts_cannot_pass_the_limit() {
        let l = limit();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let begun: Vec<_> = (0..10).map(|_| l.begin(ip, t0)).collect();
        assert_eq!(begun.iter().filter(|r| r.is_ok()).count(), 3);
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let l = limit();
        let t0 = Instant::now();
        for i in 0..3 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            let a = l.begin(ip, t0).unwrap();
            l.failed(a, t0);
        }
        assert!(l.begin("2001:db8:1:2:ffff::1".parse().unwrap(), t0).is_err());
        assert!(l.begin("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
        assert_eq!(l.slot("::ffff:192.0.2.9".parse().unwrap()), l.slot("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn the_hash_is_keyed_per_limit() {
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_ne!(limit().slot(ip), limit().slot(ip), "a hash without a secret key could be reversed");
        let l = limit();
        l.begin(ip, Instant::now()).unwrap();
        assert_eq!(l.tracked(), 1);
    }
}
