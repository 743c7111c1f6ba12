//! The one entry point ingestion and `hub inspect-ua` share: [`UaClassifier`] parses a user agent
//! ([`crate::user_agent`]), asks [`crate::bots`] whether it is a person, and refines the agent with client hints
//! ([`crate::client_hints`]).
//!
//! Real traffic repeats a small set of user agents, so verdicts are cached: a bounded map in front of the parse,
//! sharded to keep lock contention low on the hot path, each shard emptied when it fills so a flood of random user
//! agents costs parse time but never memory.

use crate::bots::{BotDetector, BotReason};
use crate::bounded_map::BoundedMap;
use crate::client_hints::{ClientHints, apply_client_hints};
use crate::user_agent::parse_user_agent;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use tidemark_shared::job::Agent;

/// What the hub concludes from a user agent and its client hints.
#[derive(Debug, Clone, PartialEq)]
pub struct UaVerdict {
    /// `Some(reason)` when the request does not come from a person browsing.
    pub bot: Option<BotReason>,
    /// Browser, OS and device, parsed for bots too. Shared: every event of a cached user agent carries the same
    /// one, and copying its strings per request would cost more than the cache saves.
    pub agent: Arc<Agent>,
}

/// Ingestion keeps this many characters of a user agent; classifying the same prefix keeps `hub inspect-ua` and
/// ingestion in agreement on longer strings.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// 16 shards of 1,792 verdicts, each shard's map exactly filling 2,048 buckets: about 15 MB when full, and more
/// distinct user agents than a busy site sees in a day.
const DEFAULT_CACHE_ENTRIES: usize = 28 * 1024;
/// Longer keys (user agent plus hints, in bytes) are classified without caching, so one cache entry stays small.
const MAX_CACHED_KEY_BYTES: usize = 2048;

/// The bot matchers, the parser and the verdict cache. `Send + Sync`; build one at start and share it.
pub struct UaClassifier {
    bots: BotDetector,
    cache: VerdictCache,
}

impl Default for UaClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl UaClassifier {
    pub fn new() -> Self {
        Self::with_cache_capacity(DEFAULT_CACHE_ENTRIES)
    }

    /// A classifier whose cache holds at most about `entries` verdicts; 0 disables the cache.
    pub fn with_cache_capacity(entries: usize) -> Self {
        Self { bots: BotDetector::new(), cache: VerdictCache::new(entries) }
    }

    pub fn classify(&self, user_agent: &str, hints: &ClientHints<'_>) -> UaVerdict {
        let user_agent = truncate_chars(user_agent, MAX_USER_AGENT_CHARS);
        let Some(key) = self.cache.key(user_agent, hints) else {
            return self.classify_uncached(user_agent, hints);
        };
        if let Some(verdict) = self.cache.get(&key) {
            return verdict;
        }
        let verdict = self.classify_uncached(user_agent, hints);
        self.cache.insert(&key, &verdict);
        verdict
    }

    /// The verdict without the cache: what [`classify`](Self::classify) computes on a miss.
    pub fn classify_uncached(&self, user_agent: &str, hints: &ClientHints<'_>) -> UaVerdict {
        let user_agent = truncate_chars(user_agent, MAX_USER_AGENT_CHARS);
        let mut agent = parse_user_agent(user_agent);
        let bot = self.bots.detect_parsed(user_agent, hints, &agent);
        apply_client_hints(&mut agent, user_agent, hints);
        UaVerdict { bot, agent: Arc::new(agent) }
    }

    /// Verdicts currently cached.
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    // A char is at least one byte, so a short string needs no walk.
    if s.len() <= max {
        return s;
    }
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// The user agent and the hint values that change a verdict, with their hash under the cache's seed.
struct CacheKey<'a> {
    parts: [&'a str; 6],
    hash: u64,
}

struct CacheEntry {
    /// The key's parts concatenated; `lens` splits them again, so "ab" + "" never equals "a" + "b".
    key: Box<str>,
    lens: [u16; 6],
    verdict: UaVerdict,
}

impl CacheEntry {
    fn matches(&self, parts: &[&str; 6]) -> bool {
        let mut rest = &*self.key;
        for (part, &len) in parts.iter().zip(&self.lens) {
            let Some((head, tail)) = rest.split_at_checked(len as usize) else { return false };
            if head != *part {
                return false;
            }
            rest = tail;
        }
        rest.is_empty()
    }
}

struct VerdictCache {
    /// Keyed by the keyed hash of the cache key; an entry also holds the key, so a collision is a miss.
    map: BoundedMap<CacheEntry>,
    /// Random per process, so nobody can craft user agents that all land in one shard.
    seed: RandomState,
}

impl VerdictCache {
    fn new(entries: usize) -> Self {
        Self { map: BoundedMap::new(entries), seed: RandomState::new() }
    }

    /// `None` when the cache is off or the key too long to be worth keeping.
    fn key<'a>(&self, user_agent: &'a str, hints: &ClientHints<'a>) -> Option<CacheKey<'a>> {
        let [a, b, c, d, e] = hints.key_parts();
        let parts = [user_agent, a, b, c, d, e];
        if self.map.is_disabled() || parts.iter().map(|p| p.len()).sum::<usize>() > MAX_CACHED_KEY_BYTES {
            return None;
        }
        let mut h = self.seed.build_hasher();
        for part in &parts {
            h.write_usize(part.len());
            h.write(part.as_bytes());
        }
        Some(CacheKey { parts, hash: h.finish() })
    }

    fn get(&self, key: &CacheKey<'_>) -> Option<UaVerdict> {
        self.map.get(key.hash, |e| e.matches(&key.parts).then(|| e.verdict.clone()))
    }

    fn insert(&self, key: &CacheKey<'_>, verdict: &UaVerdict) {
        // MAX_CACHED_KEY_BYTES keeps every part below u16::MAX.
        let lens = key.parts.map(|p| p.len() as u16);
        let entry = CacheEntry { key: key.parts.concat().into_boxed_str(), lens, verdict: verdict.clone() };
        self.map.insert(key.hash, entry);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_agent::tests::{CHROME_WIN, agent};
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static CLASSIFIER: LazyLock<UaClassifier> = LazyLock::new(UaClassifier::new);

    #[test]
    fn client_hints_name_the_browser_and_windows_11() {
        let hints = ClientHints {
            brands: Some(r#""Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
            full_version_list: Some(r#""Microsoft Edge";v="131.0.2903.86", "Chromium";v="131.0.6778.140""#),
            mobile: Some("?0"),
            platform: Some(r#""Windows""#),
            platform_version: Some(r#""15.0.0""#),
            model: Some(r#""""#),
        };
        let verdict = CLASSIFIER.classify(CHROME_WIN, &hints);
        assert_eq!(*verdict.agent, agent("Edge", "131", "Windows", "11", "desktop"));
        assert_eq!(verdict.bot, None);

        let win10 = ClientHints { platform_version: Some(r#""10.0.0""#), ..hints };
        assert_eq!(CLASSIFIER.classify(CHROME_WIN, &win10).agent.os_version, "10");
        let win7 = ClientHints { platform_version: Some(r#""0.1.0""#), ..hints };
        assert_eq!(CLASSIFIER.classify(CHROME_WIN, &win7).agent.os_version, "7");
    }

    #[test]
    fn cache_returns_the_same_verdict_and_keys_on_hints() {
        let classifier = UaClassifier::with_cache_capacity(64);
        let none = ClientHints::none();
        let first = classifier.classify(CHROME_WIN, &none);
        assert_eq!(classifier.cached_entries(), 1);
        assert_eq!(classifier.classify(CHROME_WIN, &none), first);
        assert_eq!(classifier.cached_entries(), 1);
        let hinted = ClientHints { platform_version: Some("15.0.0"), platform: Some("Windows"), ..none };
        assert_eq!(classifier.classify(CHROME_WIN, &hinted).agent.os_version, "11");
        assert_eq!(classifier.classify(CHROME_WIN, &none).agent.os_version, "10");
        assert_eq!(classifier.cached_entries(), 2);
    }

    #[test]
    fn cache_stays_bounded_under_a_flood() {
        let classifier = UaClassifier::with_cache_capacity(160);
        for i in 0..5_000 {
            let ua = format!("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/{i}.0");
            let verdict = classifier.classify(&ua, &ClientHints::none());
            assert_eq!(verdict.agent.browser_version, i.to_string());
        }
        assert!(classifier.cached_entries() <= 160, "{}", classifier.cached_entries());
        assert!(classifier.cached_entries() > 0);
        let uncached = UaClassifier::with_cache_capacity(0);
        uncached.classify(CHROME_WIN, &ClientHints::none());
        assert_eq!(uncached.cached_entries(), 0);
    }

    #[test]
    fn cache_entries_do_not_confuse_split_points() {
        let e = CacheEntry {
            key: "ab".into(),
            lens: [2, 0, 0, 0, 0, 0],
            verdict: UaVerdict { bot: None, agent: Arc::default() },
        };
        assert!(e.matches(&["ab", "", "", "", "", ""]));
        assert!(!e.matches(&["a", "b", "", "", "", ""]));
        assert!(!e.matches(&["ab", "", "", "", "", "x"]));
    }

    #[test]
    fn long_user_agents_are_classified_by_their_first_512_characters() {
        let long = format!("{CHROME_WIN} {}", "é".repeat(600));
        let prefix: String = long.chars().take(MAX_USER_AGENT_CHARS).collect();
        let none = ClientHints::none();
        assert_eq!(CLASSIFIER.classify(&long, &none), CLASSIFIER.classify(&prefix, &none));
        assert_eq!(CLASSIFIER.classify(&long, &none).agent.browser, "Chrome");
    }

    fn hint_strategy() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
            any::<String>(),
            "[ -~]{0,80}",
            Just(r#""Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99""#.to_owned()),
            Just("?1".to_owned()),
            Just(r#""Windows""#.to_owned()),
            Just("15.0.0".to_owned()),
        ])
    }

    /// User agents shaped like real ones, with random pieces where parsers tend to slip. With `named`, the product
    /// token is one that names a browser on its own.
    fn ua_like(named: bool) -> impl Strategy<Value = String> {
        let mut products = vec!["Chrome/", "Firefox/", "Edg/", "OPR/", "SamsungBrowser/", "MSIE ", "CriOS/", "FBAV/"];
        if !named {
            products.extend(["Version/", "rv:", "Safari/", "Trident/", "Mobile/"]);
        }
        let product = proptest::sample::select(products);
        let platform = prop_oneof![
            Just("Windows NT "),
            Just("Macintosh; Intel Mac OS X "),
            Just("iPhone; CPU iPhone OS "),
            Just("iPad; CPU OS "),
            Just("Linux; Android "),
            Just("X11; CrOS x86_64 "),
            Just("Windows Phone "),
            Just("KAIOS/"),
        ];
        (platform, "[0-9._]{0,12}", "[ -~]{0,20}", product, "[0-9._a-z]{0,14}", "[ -~]{0,30}").prop_map(
            |(platform, pv, mid, product, bv, tail)| format!("Mozilla/5.0 ({platform}{pv}{mid}) {product}{bv} {tail}"),
        )
    }

    fn assert_well_formed(agent: &Agent) -> Result<(), TestCaseError> {
        let version =
            |v: &str| v.is_empty() || v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        prop_assert!(version(&agent.browser_version), "browser version {:?}", agent.browser_version);
        prop_assert!(agent.browser_version.split('.').count() <= 2);
        prop_assert!(["", "desktop", "mobile", "tablet"].contains(&agent.device.as_str()), "device {:?}", agent.device);
        prop_assert!(agent.browser.chars().count() <= 32);
        prop_assert!(!agent.browser.chars().any(char::is_control));
        if agent.os != "Windows" {
            prop_assert!(version(&agent.os_version), "os version {:?}", agent.os_version);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn classify_never_panics_and_is_stable(
            ua in prop_oneof![any::<String>(), ua_like(false)],
            brands in hint_strategy(),
            full in hint_strategy(),
            mobile in hint_strategy(),
            platform in hint_strategy(),
            platform_version in hint_strategy(),
        ) {
            let hints = ClientHints {
                brands: brands.as_deref(),
                full_version_list: full.as_deref(),
                mobile: mobile.as_deref(),
                platform: platform.as_deref(),
                platform_version: platform_version.as_deref(),
                model: None,
            };
            let first = CLASSIFIER.classify(&ua, &hints);
            prop_assert_eq!(&first, &CLASSIFIER.classify(&ua, &hints));
            prop_assert_eq!(&first, &CLASSIFIER.classify_uncached(&ua, &hints));
            assert_well_formed(&first.agent)?;
        }

        #[test]
        fn ua_shaped_strings_parse_to_well_formed_agents(ua in ua_like(true)) {
            let verdict = CLASSIFIER.classify(&ua, &ClientHints::none());
            assert_well_formed(&verdict.agent)?;
            prop_assert!(!verdict.agent.browser.is_empty(), "every product token above names a browser: {}", ua);
        }
    }
}
