//! User-agent parsing: browser, browser version, OS, OS version and device type, refined by client hints
//! (`Sec-CH-UA*`) when the browser sends them, plus the bot verdict of [`crate::bots`]. [`UaClassifier`] is the one
//! entry point ingestion and `hub inspect-ua` share.
//!
//! Names are short and canonical ("Chrome", "Samsung Internet", "macOS", "iPadOS"). Versions are major.minor with
//! a zero minor dropped and later parts ignored: Chrome/131.0.6778.86 is "131", iOS 17_4_1 is "17.4", Android
//! 8.0.0 is "8", Mac OS X 10_15_7 is "10.15". Windows versions are the marketing names ("11", "10", "8.1", "7",
//! "Vista", "XP"). A frozen value is reported as sent: Chrome says Windows NT 10.0 on Windows 11 and Mac OS X
//! 10_15_7 on every recent Mac; only `Sec-CH-UA-Platform-Version` tells them apart.
//!
//! Real traffic repeats a small set of user agents, so verdicts are cached: a bounded map in front of the parse,
//! sharded to keep lock contention low on the hot path, each shard emptied when it fills so a flood of random user
//! agents costs parse time but never memory.

use crate::bots::{BotDetector, BotReason};
use crate::bounded_map::BoundedMap;
use actix_web::http::header::{HeaderMap, HeaderName};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use tidemark_shared::job::Agent;

/// The client hints of a request, borrowed from its headers. Chromium browsers send `Sec-CH-UA`,
/// `Sec-CH-UA-Mobile` and `Sec-CH-UA-Platform` on every request; the others only to sites that ask for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientHints<'a> {
    /// `Sec-CH-UA`: `"Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"`.
    pub brands: Option<&'a str>,
    /// `Sec-CH-UA-Full-Version-List`: the same brands with full versions.
    pub full_version_list: Option<&'a str>,
    /// `Sec-CH-UA-Mobile`: `?1` or `?0`.
    pub mobile: Option<&'a str>,
    /// `Sec-CH-UA-Platform`: `"Windows"`, `"macOS"`, `"Android"`...
    pub platform: Option<&'a str>,
    /// `Sec-CH-UA-Platform-Version`: `"15.0.0"` (Windows 11), `"14.5.0"` (macOS)...
    pub platform_version: Option<&'a str>,
    /// `Sec-CH-UA-Model`. Not used to classify (device type comes from `Sec-CH-UA-Mobile`), kept for callers.
    pub model: Option<&'a str>,
}

static SEC_CH_UA: HeaderName = HeaderName::from_static("sec-ch-ua");
static SEC_CH_UA_FULL_VERSION_LIST: HeaderName = HeaderName::from_static("sec-ch-ua-full-version-list");
static SEC_CH_UA_MOBILE: HeaderName = HeaderName::from_static("sec-ch-ua-mobile");
static SEC_CH_UA_PLATFORM: HeaderName = HeaderName::from_static("sec-ch-ua-platform");
static SEC_CH_UA_PLATFORM_VERSION: HeaderName = HeaderName::from_static("sec-ch-ua-platform-version");
static SEC_CH_UA_MODEL: HeaderName = HeaderName::from_static("sec-ch-ua-model");

impl<'a> ClientHints<'a> {
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let get = |name: &HeaderName| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
        };
        Self {
            brands: get(&SEC_CH_UA),
            full_version_list: get(&SEC_CH_UA_FULL_VERSION_LIST),
            mobile: get(&SEC_CH_UA_MOBILE),
            platform: get(&SEC_CH_UA_PLATFORM),
            platform_version: get(&SEC_CH_UA_PLATFORM_VERSION),
            model: get(&SEC_CH_UA_MODEL),
        }
    }

    pub fn none() -> Self {
        Self::default()
    }

    /// The values that change a verdict, in a fixed order: the cache key besides the user agent.
    fn key_parts(&self) -> [&'a str; 5] {
        [
            self.brands.unwrap_or(""),
            self.full_version_list.unwrap_or(""),
            self.mobile.unwrap_or(""),
            self.platform.unwrap_or(""),
            self.platform_version.unwrap_or(""),
        ]
    }
}

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

// ---------------------------------------------------------------------------------------------------------------
// Cache

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

// ---------------------------------------------------------------------------------------------------------------
// User-agent string

/// A user agent split once into what the parser asks about: its `Name/version` products and its first
/// parenthesised comment, where the platform lives. Looking names up in a handful of products is much cheaper than
/// searching the whole string for each of the few dozen browsers.
struct UaText<'u> {
    all: &'u str,
    /// The first comment, or the whole string when there is none.
    platform: &'u str,
    products: [(&'u str, &'u str); MAX_PRODUCTS],
    len: usize,
    words: Words<'u>,
}

/// The few space-separated tokens the parser needs, found in the same pass as the products.
#[derive(Default)]
struct Words<'u> {
    instagram: Option<&'u str>,
    msie: Option<&'u str>,
    opera: Option<&'u str>,
    opera_mini: Option<&'u str>,
    opera_mobi: bool,
    /// "Mobile", "Mobi" or "MIDP" starts a word: Android phones say so, tablets do not.
    mobile: bool,
    tablet: bool,
}

impl<'u> Words<'u> {
    /// Looks at a word that starts at `at`; only a handful of first letters can start one that matters.
    fn see(&mut self, all: &'u str, at: usize) {
        let rest = &all[at..];
        let after = |prefix: &str| rest.strip_prefix(prefix).map(version_prefix);
        match rest.as_bytes()[0] {
            b'I' => self.instagram = self.instagram.or(after("Instagram ")),
            b'M' => {
                self.msie = self.msie.or(after("MSIE "));
                self.mobile |= rest.starts_with("Mobi") || rest.starts_with("MIDP");
            }
            b'O' => {
                self.opera_mini = self.opera_mini.or(after("Opera Mini/"));
                self.opera_mobi |= rest.starts_with("Opera Mobi");
                self.opera = self.opera.or(after("Opera "));
            }
            b'T' => self.tablet |= rest.starts_with("Tablet"),
            _ => {}
        }
    }
}

/// Real user agents carry fewer than 15 products (Facebook's in-app browser is the longest); past this many the
/// rest is padding.
const MAX_PRODUCTS: usize = 24;

impl<'u> UaText<'u> {
    fn new(all: &'u str) -> Self {
        let bytes = all.as_bytes();
        let mut products = [("", ""); MAX_PRODUCTS];
        let mut len = 0;
        let mut words = Words::default();
        // Where the current product name started: after the last separator.
        let mut name_start = 0;
        let mut previous = b' ';
        for (i, &b) in bytes.iter().enumerate() {
            // Separators are ASCII, so every slice below starts and ends on a char boundary.
            if b == b'/' {
                if name_start < i && len < MAX_PRODUCTS {
                    products[len] = (&all[name_start..i], version_prefix(&all[i + 1..]));
                    len += 1;
                }
                name_start = i + 1;
            } else if matches!(b, b' ' | b'(' | b')' | b';' | b',' | b'[' | b']') {
                name_start = i + 1;
            } else if b.is_ascii_uppercase() && !previous.is_ascii_alphanumeric() {
                words.see(all, i);
            }
            previous = b;
        }
        let platform = match all.find('(') {
            Some(open) => {
                let inner = &all[open + 1..];
                &inner[..inner.find(')').unwrap_or(inner.len())]
            }
            None => all,
        };
        Self { all, platform, products, len, words }
    }

    fn products(&self) -> &[(&'u str, &'u str)] {
        &self.products[..self.len]
    }

    /// The version of product `name` (`"Chrome"` for `Chrome/131.0.0.0`); the whole name must match, so
    /// `HeadlessChrome/` is not Chrome.
    fn product(&self, name: &str) -> Option<&'u str> {
        self.products().iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.product(name).is_some()
    }
}

/// The digits, dots and underscores a version starts with.
fn version_prefix(s: &str) -> &str {
    let end = s.bytes().position(|b| !(b.is_ascii_digit() || b == b'.' || b == b'_')).unwrap_or(s.len());
    &s[..end]
}

/// Where `needle` first occurs in `hay`. Platform comments are a few dozen bytes: setting up std's two-way searcher
/// for each short needle would cost more than comparing at each candidate byte.
fn find_from(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let first = *needle.as_bytes().first()?;
    if !first.is_ascii() {
        return hay.get(from..)?.find(needle).map(|i| from + i);
    }
    let rest = &needle.as_bytes()[1..];
    let bytes = hay.as_bytes();
    let mut at = from;
    while at < bytes.len() {
        // An ASCII byte is a whole char, so every candidate is a char boundary; `find(char)` runs memchr.
        at += hay.get(at..)?.find(char::from(first))?;
        if bytes[at + 1..].starts_with(rest) {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn has(hay: &str, needle: &str) -> bool {
    find_from(hay, needle, 0).is_some()
}

/// The version after `name` (which ends with its separator, e.g. `"rv:"`) where `name` starts a word.
fn token<'u>(ua: &'u str, name: &str) -> Option<&'u str> {
    let bytes = ua.as_bytes();
    let mut from = 0;
    while let Some(at) = find_from(ua, name, from) {
        if at == 0 || !bytes[at - 1].is_ascii_alphanumeric() {
            // `name` is ASCII, so the byte after it starts a char.
            return Some(version_prefix(&ua[at + name.len()..]));
        }
        from = at + 1;
    }
    None
}

/// Major.minor of a dotted (or underscored) version, the minor dropped when zero: "131.0.6778.86" -> "131",
/// "17_4_1" -> "17.4", "10.15.7" -> "10.15". Empty when there is no leading number.
pub fn short_version(raw: &str) -> String {
    let mut parts = raw.split(['.', '_']).map(|p| &p[..p.bytes().take_while(u8::is_ascii_digit).count()]);
    let major = parts.next().unwrap_or("");
    if major.is_empty() || major.len() > 9 {
        return String::new();
    }
    let major = major.trim_start_matches('0');
    let major = if major.is_empty() { "0" } else { major };
    match parts.next() {
        Some(minor) if !minor.is_empty() && minor.len() <= 9 && minor.bytes().any(|b| b != b'0') => {
            format!("{major}.{minor}")
        }
        _ => major.to_owned(),
    }
}

/// Browsers known by a product of their own, with a rank: in-app browsers and Chromium derivatives also carry
/// `Chrome/` and `Safari/` (which the fallback in [`parse_browser`] reads), so the lowest rank present wins.
fn browser_product(name: &str) -> Option<(u8, &'static str)> {
    Some(match name {
        "FBAV" => (0, "Facebook"),
        "MicroMessenger" => (1, "WeChat"),
        "Line" => (2, "LINE"),
        "EdgA" | "EdgiOS" | "Edg" | "Edge" => (3, "Edge"),
        "OPR" => (4, "Opera"),
        "OPT" => (4, "Opera Touch"),
        "OPiOS" => (4, "Opera Mini"),
        "SamsungBrowser" => (5, "Samsung Internet"),
        "YaBrowser" | "YaSearchBrowser" => (6, "Yandex Browser"),
        "Vivaldi" => (7, "Vivaldi"),
        "UCBrowser" => (8, "UC Browser"),
        "MiuiBrowser" => (8, "MIUI Browser"),
        "HuaweiBrowser" => (8, "Huawei Browser"),
        "HeyTapBrowser" => (8, "HeyTap Browser"),
        "VivoBrowser" => (8, "Vivo Browser"),
        "Whale" => (8, "Whale"),
        "coc_coc_browser" => (8, "Coc Coc"),
        "QQBrowser" | "MQQBrowser" => (9, "QQ Browser"),
        "DuckDuckGo" => (10, "DuckDuckGo"),
        "Silk" => (10, "Silk"),
        "Focus" => (10, "Firefox Focus"),
        "GSA" => (10, "Google App"),
        "SeaMonkey" => (10, "SeaMonkey"),
        "PaleMoon" => (10, "Pale Moon"),
        "Waterfox" => (10, "Waterfox"),
        "NintendoBrowser" => (10, "Nintendo Browser"),
        "Electron" => (11, "Electron"),
        "CriOS" => (12, "Chrome"),
        "FxiOS" => (12, "Firefox"),
        _ => return None,
    })
}

fn parse_browser(ua: &UaText<'_>) -> (&'static str, String) {
    if ua.has("FBAN") || ua.has("FB_IAB") {
        return ("Facebook", ua.product("FBAV").map(short_version).unwrap_or_default());
    }
    if let Some(v) = ua.words.instagram {
        return ("Instagram", short_version(v));
    }
    if let Some(v) = ua.words.opera_mini {
        return ("Opera Mini", short_version(v));
    }
    let own = ua
        .products()
        .iter()
        .filter_map(|&(name, version)| browser_product(name).map(|(rank, browser)| (rank, browser, name, version)))
        .min_by_key(|&(rank, ..)| rank);
    if let Some((_, browser, name, version)) = own {
        // EdgeHTML's "18.17763" and Edge for iOS's "126.2592.56" put a build number second.
        let version = if matches!(name, "Edge" | "EdgiOS") { version.split('.').next().unwrap_or("") } else { version };
        return (browser, short_version(version));
    }
    if ua.has("Opera") || ua.words.opera.is_some() || ua.words.opera_mobi {
        // Presto froze "Opera/9.80" and moved the real version to "Version/".
        let version = ua.product("Version").or(ua.product("Opera")).or(ua.words.opera);
        return ("Opera", version.map(short_version).unwrap_or_default());
    }
    if let Some(v) = ua.words.msie {
        return ("Internet Explorer", short_version(v));
    }
    if ua.has("Trident") {
        let version = token(ua.platform, "rv:").or_else(|| ua.product("IEMobile"));
        return ("Internet Explorer", version.map(short_version).unwrap_or_default());
    }
    if let Some(v) = ua.product("Firefox") {
        return ("Firefox", short_version(v));
    }
    let android = has(ua.platform, "Android");
    if let Some(v) = ua.product("Chrome") {
        // WebViews add "; wv)" (Lollipop on) or, before that, the stock browser's "Version/4.0".
        if android && (has(ua.platform, "; wv") || ua.has("Version")) {
            return ("Android WebView", short_version(v));
        }
        if let Some(c) = ua.product("Chromium") {
            return ("Chromium", short_version(c));
        }
        return ("Chrome", short_version(v));
    }
    if let Some(v) = ua.product("Chromium") {
        return ("Chromium", short_version(v));
    }
    if android && ua.has("Safari") {
        return ("Android Browser", ua.product("Version").map(short_version).unwrap_or_default());
    }
    if has(ua.platform, "BlackBerry") || has(ua.platform, "BB10") || has(ua.platform, "PlayBook") {
        return ("BlackBerry Browser", ua.product("Version").map(short_version).unwrap_or_default());
    }
    let apple_mobile = ["iPhone", "iPad", "iPod"].iter().any(|d| has(ua.platform, d));
    if let Some(v) = ua.product("Version")
        && (ua.has("Safari") || apple_mobile)
    {
        return ("Safari", short_version(v));
    }
    if apple_mobile && ua.has("AppleWebKit") {
        // An app's embedded WKWebView: no Safari product, no version of its own.
        return ("iOS WebView", String::new());
    }
    ("", String::new())
}

const DESKTOP: &str = "desktop";
const MOBILE: &str = "mobile";
const TABLET: &str = "tablet";

struct Os {
    name: &'static str,
    version: String,
    device: &'static str,
}

impl Os {
    fn new(name: &'static str, version: String, device: &'static str) -> Self {
        Self { name, version, device }
    }
}

fn windows_version(nt: &str) -> &'static str {
    let mut parts = nt.split('.');
    match (parts.next().unwrap_or(""), parts.next().unwrap_or("")) {
        ("10", _) => "10",
        ("6", "3") => "8.1",
        ("6", "2") => "8",
        ("6", "1") => "7",
        ("6", "0") => "Vista",
        ("5", "1" | "2") => "XP",
        ("5", "0") => "2000",
        ("4", "0") => "NT 4.0",
        _ => "",
    }
}

/// What the `;`-separated parts of a platform comment say, read in one pass: "Windows NT 10.0", "Win64", "x64";
/// "Linux", "Android 14", "K"; "iPhone", "CPU iPhone OS 17_5 like Mac OS X".
#[derive(Default)]
struct Platform<'u> {
    windows_phone: Option<&'u str>,
    windows: Option<&'static str>,
    windows_ce: bool,
    ipad: bool,
    iphone: bool,
    ios_version: &'u str,
    mac: Option<&'u str>,
    android: Option<&'u str>,
    harmony: Option<&'u str>,
    tizen: Option<&'u str>,
    chromeos: bool,
    blackberry: bool,
    rim_tablet: Option<&'u str>,
    webos: bool,
    playstation: bool,
    nintendo: bool,
    bsd: Option<&'static str>,
    linux: bool,
    symbian: bool,
    /// Televisions, consoles and set-top boxes: a known OS but none of the three device types.
    tv: bool,
    kindle: bool,
    tablet: bool,
}

impl<'u> Platform<'u> {
    fn scan(text: &'u str) -> Self {
        const TV: &[&str] = &["SMART-TV", "SmartTV", "GoogleTV", "CrKey", "BRAVIA", "AFT", "Xbox"];
        let mut p = Self::default();
        for part in text.split([';', '(', ')', '[', ']']) {
            let part = part.trim();
            let Some(&first) = part.as_bytes().first() else { continue };
            let after = |prefix: &str| part.strip_prefix(prefix).map(|rest| version_prefix(rest.trim_start()));
            let starts = |prefix: &str| part.starts_with(prefix);
            // Dispatching on the first letter keeps this to a few comparisons a part.
            match first {
                b'W' => {
                    if let Some(rest) = part.strip_prefix("Windows Phone") {
                        let rest = rest.trim_start();
                        p.windows_phone = Some(version_prefix(rest.strip_prefix("OS").unwrap_or(rest).trim_start()));
                    } else if let Some(nt) = after("Windows NT") {
                        p.windows = Some(windows_version(nt));
                    } else if starts("Windows CE") {
                        p.windows_ce = true;
                    } else if starts("Web0S") {
                        p.webos = true;
                    } else if starts("Win") {
                        let version = match part {
                            "Win 9x 4.90" | "Windows ME" => "ME",
                            "Windows 98" | "Win98" => "98",
                            "Windows 95" | "Win95" => "95",
                            _ => "",
                        };
                        // Windows ME says "Windows 98; Win 9x 4.90": the later, more specific part wins.
                        let specific = version == "ME" || p.windows.is_none_or(str::is_empty);
                        if specific && (starts("Windows") || !version.is_empty()) {
                            p.windows = Some(version);
                        }
                    }
                }
                b'i' => {
                    p.ipad |= starts("iPad");
                    p.iphone |= starts("iPhone") || starts("iPod");
                }
                b'C' => {
                    if let Some(v) = after("CPU iPhone OS").or_else(|| after("CPU OS")) {
                        p.ios_version = v;
                    }
                    p.chromeos |= starts("CrOS ");
                    p.tv |= starts("CrKey");
                }
                b'I' | b'P' | b'M' => {
                    if let Some(v) =
                        after("Intel Mac OS X").or_else(|| after("PPC Mac OS X")).or_else(|| after("Mac OS X"))
                    {
                        p.mac = Some(v);
                    } else if part == "Macintosh" || part == "Mac_PowerPC" {
                        p.mac = p.mac.or(Some(""));
                    } else if part == "PlayBook" {
                        p.rim_tablet = p.rim_tablet.or(Some(""));
                    }
                    p.playstation |= starts("PlayStation");
                }
                b'A' => {
                    if let Some(v) = after("Android") {
                        p.android = Some(v);
                        p.tv |= starts("Android TV");
                    }
                    p.tv |= starts("AFT");
                }
                b'H' if part == "HarmonyOS" => p.harmony = p.harmony.or(Some("")),
                b'O' => {
                    if let Some(v) = after("OpenHarmony") {
                        p.harmony = Some(v);
                    } else if starts("OpenBSD") {
                        p.bsd = Some("OpenBSD");
                    }
                }
                b'T' => {
                    if let Some(v) = after("Tizen") {
                        p.tizen = Some(v);
                    }
                    p.tablet |= part == "Tablet";
                }
                b'B' => {
                    p.blackberry |= part == "BB10" || starts("BlackBerry");
                    p.tv |= starts("BRAVIA");
                }
                b'R' => p.rim_tablet = after("RIM Tablet OS").or(p.rim_tablet),
                b'w' => p.webos |= starts("webOS"),
                b'N' => {
                    p.nintendo |= starts("Nintendo");
                    if starts("NetBSD") {
                        p.bsd = Some("NetBSD");
                    }
                }
                b'F' if starts("FreeBSD") => p.bsd = Some("FreeBSD"),
                b'L' => p.linux |= starts("Linux"),
                b'X' => {
                    p.linux |= part == "X11";
                    p.tv |= starts("Xbox");
                }
                b'U' => p.linux |= starts("Ubuntu"),
                b'S' => {
                    p.symbian |= ["SymbianOS", "SymbOS", "Series60", "S60"].iter().any(|s| starts(s));
                    p.tv |= TV.iter().any(|t| starts(t));
                }
                b'G' => p.tv |= starts("GoogleTV"),
                b'K' => p.kindle |= starts("Kindle") || is_kindle_model(part.split(' ').next().unwrap_or("")),
                _ => {}
            }
        }
        p
    }

    fn found(&self) -> bool {
        self.windows_phone.is_some()
            || self.windows.is_some()
            || self.windows_ce
            || self.ipad
            || self.iphone
            || self.mac.is_some()
            || self.android.is_some()
            || self.harmony.is_some()
            || self.tizen.is_some()
            || self.chromeos
            || self.blackberry
            || self.rim_tablet.is_some()
            || self.webos
            || self.playstation
            || self.nintendo
            || self.bsd.is_some()
            || self.linux
            || self.symbian
    }
}

/// Kindle Fire models are "KF" plus capitals: KFTRWI, KFSUWI...
fn is_kindle_model(word: &str) -> bool {
    word.strip_prefix("KF")
        .is_some_and(|rest| (2..=6).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_uppercase()))
}

fn mobile_or_tablet(ua: &UaText<'_>, p: &Platform<'_>) -> &'static str {
    // Silk only ships on Kindle Fire tablets.
    if p.kindle || p.tablet || ua.has("Silk") {
        TABLET
    } else if ua.words.mobile {
        MOBILE
    } else {
        // Android phones always say Mobile; tablets leave it out.
        TABLET
    }
}

fn parse_os(ua: &UaText<'_>) -> Os {
    let mut p = Platform::scan(ua.platform);
    if !p.found() && ua.platform.len() != ua.all.len() {
        // Some apps and old phones put the platform outside the first comment, or have no comment.
        p = Platform::scan(ua.all);
    }
    let version = |v: Option<&str>| v.map(short_version).unwrap_or_default();
    let unless_tv = |device| if p.tv { "" } else { device };
    if let Some(v) = p.windows_phone {
        return Os::new("Windows Phone", short_version(v), MOBILE);
    }
    if p.ipad {
        let v = short_version(p.ios_version);
        // Apple renamed the iPad's system at 13; the device is the same either way.
        let major: u32 = v.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        return Os::new(if major >= 13 { "iPadOS" } else { "iOS" }, v, TABLET);
    }
    if p.iphone {
        return Os::new("iOS", short_version(p.ios_version), MOBILE);
    }
    if let Some(v) = ua.product("KAIOS").or(ua.product("KaiOS")) {
        return Os::new("KaiOS", short_version(v), MOBILE);
    }
    if p.harmony.is_some() {
        return Os::new("HarmonyOS", version(p.harmony), mobile_or_tablet(ua, &p));
    }
    if p.tizen.is_some() {
        return Os::new("Tizen", version(p.tizen), unless_tv(mobile_or_tablet(ua, &p)));
    }
    if p.android.is_some() {
        return Os::new("Android", version(p.android), unless_tv(mobile_or_tablet(ua, &p)));
    }
    if p.chromeos {
        return Os::new("ChromeOS", String::new(), DESKTOP);
    }
    if p.mac.is_some() {
        return Os::new("macOS", version(p.mac), DESKTOP);
    }
    if p.windows_ce {
        return Os::new("Windows Mobile", String::new(), MOBILE);
    }
    if let Some(v) = p.windows {
        return Os::new("Windows", v.to_owned(), unless_tv(DESKTOP));
    }
    if p.blackberry {
        return Os::new("BlackBerry", version(ua.product("Version")), MOBILE);
    }
    if p.rim_tablet.is_some() {
        return Os::new("BlackBerry", version(p.rim_tablet), TABLET);
    }
    if p.webos {
        return Os::new("webOS", String::new(), "");
    }
    if p.playstation {
        return Os::new("PlayStation", String::new(), "");
    }
    if p.nintendo {
        return Os::new("Nintendo", String::new(), "");
    }
    if let Some(bsd) = p.bsd {
        return Os::new(bsd, String::new(), DESKTOP);
    }
    if p.linux {
        return Os::new("Linux", String::new(), unless_tv(DESKTOP));
    }
    if p.symbian {
        return Os::new("Symbian", String::new(), MOBILE);
    }
    let device = if ua.words.mobile {
        MOBILE
    } else if ua.words.tablet {
        TABLET
    } else {
        ""
    };
    Os::new("", String::new(), device)
}

/// Browser, OS and device from the user-agent string alone.
pub fn parse_user_agent(ua: &str) -> Agent {
    let text = UaText::new(ua);
    let (browser, browser_version) = parse_browser(&text);
    let os = parse_os(&text);
    // Opera Mini's user agent rarely says Mobile; it ran on phones, and on iPads, which say so.
    let device = if browser == "Opera Mini" && !has(text.platform, "iPad") { MOBILE } else { os.device };
    Agent {
        browser: browser.to_owned(),
        browser_version,
        os: os.name.to_owned(),
        os_version: os.version,
        device: device.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Client hints

/// One `"Brand";v="version"` item of a `Sec-CH-UA` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brand<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// At most this many brands are read: browsers send three or four, and a hostile header costs nothing more.
const MAX_BRANDS: usize = 12;

/// The brands of a `Sec-CH-UA` or `Sec-CH-UA-Full-Version-List` value (a structured-field list of quoted strings
/// with a `v` parameter), GREASE brands left out. Malformed items are skipped, never fatal.
pub fn parse_brands(value: &str) -> Vec<Brand<'_>> {
    let mut brands = Vec::new();
    let mut rest = value;
    while brands.len() < MAX_BRANDS {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (item, tail) = split_item(rest);
        rest = tail;
        if let Some(brand) = parse_brand_item(item)
            && !is_grease(brand.name)
        {
            brands.push(brand);
        }
    }
    brands
}

/// Splits off one list item at the first comma outside quotes.
fn split_item(s: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return (&s[..i], &s[i + 1..]),
            _ => {}
        }
    }
    (s, "")
}

fn parse_brand_item(item: &str) -> Option<Brand<'_>> {
    let item = item.trim().strip_prefix('"')?;
    let close = item.find('"')?;
    let name = item[..close].trim();
    let mut version = "";
    for param in item[close + 1..].split(';') {
        if let Some((key, value)) = param.split_once('=')
            && key.trim() == "v"
        {
            version = value.trim().trim_matches('"');
        }
    }
    (!name.is_empty()).then_some(Brand { name, version })
}

/// Chromium adds a made-up brand ("Not?A_Brand", " Not A;Brand", "Not/A)Brand"...) so that servers do not match
/// the list exactly.
fn is_grease(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("not") && lower.contains("brand")
}

/// The canonical browser name of a brand, and whether it only names the engine; `None` when nothing printable is
/// left of it.
fn brand_browser(name: &str) -> Option<(std::borrow::Cow<'_, str>, bool)> {
    let known = match name.to_ascii_lowercase().as_str() {
        "chromium" => return Some(("Chromium".into(), true)),
        "google chrome" => "Chrome",
        "microsoft edge" | "microsoft edge webview2" => "Edge",
        "opera" | "opera gx" | "opera mobile" | "operamobile" => "Opera",
        "samsung internet" => "Samsung Internet",
        "brave" => "Brave",
        "yandex" | "yabrowser" => "Yandex Browser",
        "vivaldi" => "Vivaldi",
        "android webview" => "Android WebView",
        "duckduckgo" => "DuckDuckGo",
        "whale" => "Whale",
        _ => {
            // An unknown brand is kept as sent, within reason: it is attacker-controlled text bound for a dashboard.
            let clean: String = name.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(32).collect();
            let clean = clean.trim();
            return (!clean.is_empty()).then(|| (clean.to_owned().into(), false));
        }
    };
    Some((known.into(), false))
}

fn platform_os(platform: &str) -> Option<&'static str> {
    Some(match platform.trim().trim_matches('"') {
        "Windows" => "Windows",
        "macOS" => "macOS",
        "Android" => "Android",
        "iOS" => "iOS",
        "Chrome OS" | "Chromium OS" | "ChromeOS" => "ChromeOS",
        "Linux" => "Linux",
        _ => return None,
    })
}

fn platform_version(os: &str, raw: &str) -> String {
    let raw = raw.trim().trim_matches('"');
    match os {
        "Windows" => {
            // Chromium reports the UniversalApiContract version: 13 and up is Windows 11, 1 to 10 Windows 10 (11 and
            // 12 never shipped, so they count as 10 too), and 0.1 to 0.3 Windows 7, 8 and 8.1.
            let mut parts = raw.split('.').map(|p| p.parse::<u32>().ok());
            match (parts.next().flatten(), parts.next().flatten()) {
                (Some(major), _) if major >= 13 => "11".to_owned(),
                (Some(1..=12), _) => "10".to_owned(),
                (Some(0), Some(1)) => "7".to_owned(),
                (Some(0), Some(2)) => "8".to_owned(),
                (Some(0), Some(3)) => "8.1".to_owned(),
                _ => String::new(),
            }
        }
        "macOS" | "Android" | "iOS" => short_version(raw),
        // ChromeOS sends its build number and Linux its kernel: neither is what a person calls the version.
        _ => String::new(),
    }
}

/// Refines a parsed agent with client hints. Only Chromium browsers send them, so a user agent from another engine
/// keeps its own name: hints arriving with it are relayed or forged.
fn apply_client_hints(agent: &mut Agent, ua: &str, hints: &ClientHints<'_>) {
    let chromium = agent.browser.is_empty() || ua.contains("Chrome/") || ua.contains("Chromium/");
    if !chromium {
        return;
    }
    if let Some(brands) = hints.brands {
        let brands: Vec<_> =
            parse_brands(brands).into_iter().filter_map(|b| Some((b, brand_browser(b.name)?))).collect();
        // The product's own brand if there is one, else the engine's.
        let pick = brands.iter().find(|(_, (_, engine_only))| !engine_only).or_else(|| brands.first());
        // "Chromium" alone says less than a user agent naming its browser.
        if let Some((brand, (name, engine_only))) = pick
            && (!engine_only || agent.browser.is_empty())
        {
            let full = hints
                .full_version_list
                .map(parse_brands)
                .and_then(|list| list.into_iter().find(|b| b.name == brand.name))
                .map(|b| b.version);
            agent.browser = name.clone().into_owned();
            agent.browser_version = short_version(full.unwrap_or(brand.version));
        }
    }
    if let Some(os) = hints.platform.and_then(platform_os) {
        let version = hints.platform_version.map(|v| platform_version(os, v)).unwrap_or_default();
        if !version.is_empty() || agent.os != os {
            agent.os_version = version;
        }
        agent.os = os.to_owned();
    }
    match hints.mobile.map(str::trim) {
        Some("?1") => agent.device = MOBILE.to_owned(),
        Some("?0") => match agent.os.as_str() {
            // Chrome on an Android tablet says ?0.
            "Android" => agent.device = TABLET.to_owned(),
            "Windows" | "macOS" | "Linux" | "ChromeOS" => agent.device = DESKTOP.to_owned(),
            _ => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static CLASSIFIER: LazyLock<UaClassifier> = LazyLock::new(UaClassifier::new);

    const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const CHROME_ANDROID_REDUCED: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";

    fn agent(browser: &str, bv: &str, os: &str, ov: &str, device: &str) -> Agent {
        Agent {
            browser: browser.into(),
            browser_version: bv.into(),
            os: os.into(),
            os_version: ov.into(),
            device: device.into(),
        }
    }

    #[test]
    fn short_versions() {
        for (raw, want) in [
            ("131.0.6778.86", "131"),
            ("17_4_1", "17.4"),
            ("10_15_7", "10.15"),
            ("8.0.0", "8"),
            ("12.16", "12.16"),
            ("9.80", "9.80"),
            ("14", "14"),
            ("007.1", "7.1"),
            ("", ""),
            ("x1.2", ""),
            ("2.0b4pre", "2"),
            ("1234567890.1", ""),
        ] {
            assert_eq!(short_version(raw), want, "{raw}");
        }
    }

    #[test]
    fn products_match_whole_names() {
        let ua = UaText::new(
            "Mozilla/5.0 (X11; Linux) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.1 Safari/537.36 [FB_IAB/FB4A;FBAV/1.2;]",
        );
        assert_eq!(ua.product("Chrome"), None);
        assert_eq!(ua.product("HeadlessChrome"), Some("120.0.1"));
        assert_eq!(ua.product("FBAV"), Some("1.2"));
        assert_eq!(ua.product("Mozilla"), Some("5.0"));
        assert_eq!(ua.platform, "X11; Linux");
        assert_eq!(token("MSIE 9.0; xMSIE 1", "MSIE "), Some("9.0"));
        assert_eq!(token("xMSIE 1", "MSIE "), None);
        let crowded = format!("{} Chrome/99", "a/1 ".repeat(40));
        assert_eq!(UaText::new(&crowded).product("Chrome"), None, "past MAX_PRODUCTS the rest is ignored");
    }

    #[test]
    fn parses_user_agents_without_hints() {
        let cases = [
            (CHROME_WIN, agent("Chrome", "131", "Windows", "10", "desktop")),
            (CHROME_ANDROID_REDUCED, agent("Chrome", "131", "Android", "10", "mobile")),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                agent("Safari", "17.5", "iPadOS", "17.5", "tablet"),
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 9_3_5 like Mac OS X) AppleWebKit/601.1.46 (KHTML, like Gecko) Version/9.0 Mobile/13G36 Safari/601.1",
                agent("Safari", "9", "iOS", "9.3", "tablet"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 5.1.1; KFSUWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/80.5.3 like Chrome/80.0.3987.162 Safari/537.36",
                agent("Silk", "80.5", "Android", "5.1", "tablet"),
            ),
            (
                "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 650) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15254",
                agent("Edge", "15", "Windows Phone", "10", "mobile"),
            ),
            (
                "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
                agent("Internet Explorer", "11", "Windows", "7", "desktop"),
            ),
            (
                "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
                agent("Opera", "12.18", "Windows", "7", "desktop"),
            ),
        ];
        for (ua, want) in cases {
            assert_eq!(*CLASSIFIER.classify(ua, &ClientHints::none()).agent, want, "{ua}");
        }
    }

    #[test]
    fn brands_skip_grease_and_read_versions() {
        let brands = parse_brands(r#""Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99""#);
        assert_eq!(
            brands,
            [Brand { name: "Chromium", version: "130" }, Brand { name: "Google Chrome", version: "130" }]
        );
        assert_eq!(
            parse_brands(r#"" Not A;Brand";v="99", "Chromium";v="98""#),
            [Brand { name: "Chromium", version: "98" }]
        );
        assert_eq!(parse_brands(r#""Not)A;Brand";v="8", "Chromium";v="138", "Microsoft Edge";v="138""#).len(), 2);
        assert_eq!(parse_brands("garbage, ,,\"unterminated"), []);
        assert_eq!(parse_brands(r#""A, B";v="1""#), [Brand { name: "A, B", version: "1" }]);
    }

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
    fn full_version_list_wins_over_brands() {
        let hints = ClientHints {
            brands: Some(r#""Google Chrome";v="130""#),
            full_version_list: Some(r#""Google Chrome";v="130.1.6723.92""#),
            ..ClientHints::none()
        };
        assert_eq!(CLASSIFIER.classify(CHROME_WIN, &hints).agent.browser_version, "130.1");
    }

    #[test]
    fn brave_is_only_visible_in_hints() {
        let hints = ClientHints {
            brands: Some(r#""Brave";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
            ..ClientHints::none()
        };
        assert_eq!(CLASSIFIER.classify(CHROME_WIN, &hints).agent.browser, "Brave");
        // A brand list with only the engine keeps the user agent's more specific name.
        let engine = ClientHints { brands: Some(r#""Chromium";v="131""#), ..ClientHints::none() };
        assert_eq!(CLASSIFIER.classify(CHROME_WIN, &engine).agent.browser, "Chrome");
    }

    #[test]
    fn mobile_hint_sets_the_device() {
        let phone = ClientHints { mobile: Some("?1"), platform: Some(r#""Android""#), ..ClientHints::none() };
        assert_eq!(CLASSIFIER.classify(CHROME_ANDROID_REDUCED, &phone).agent.device, "mobile");
        let tablet = ClientHints { mobile: Some("?0"), ..phone };
        assert_eq!(CLASSIFIER.classify(CHROME_ANDROID_REDUCED, &tablet).agent.device, "tablet");
        let android14 = ClientHints { platform_version: Some(r#""14.0.0""#), ..phone };
        assert_eq!(CLASSIFIER.classify(CHROME_ANDROID_REDUCED, &android14).agent.os_version, "14");
        let mac = ClientHints { platform: Some(r#""macOS""#), platform_version: Some(r#""14.5.0""#), ..phone };
        let got = CLASSIFIER.classify(CHROME_WIN, &mac).agent;
        assert_eq!((got.os.as_str(), got.os_version.as_str(), got.device.as_str()), ("macOS", "14.5", "mobile"));
    }

    #[test]
    fn hints_do_not_override_other_engines() {
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let hints = ClientHints {
            brands: Some(r#""Google Chrome";v="130""#),
            platform: Some(r#""macOS""#),
            ..ClientHints::none()
        };
        assert_eq!(*CLASSIFIER.classify(firefox, &hints).agent, agent("Firefox", "133", "Windows", "10", "desktop"));
    }

    #[test]
    fn hints_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(SEC_CH_UA.clone(), HeaderValue::from_static(r#""Opera";v="115", "Chromium";v="130""#));
        headers.insert(SEC_CH_UA_MOBILE.clone(), HeaderValue::from_static("?0"));
        headers.insert(SEC_CH_UA_PLATFORM.clone(), HeaderValue::from_static(r#""Linux""#));
        headers.insert(SEC_CH_UA_MODEL.clone(), HeaderValue::from_static(""));
        let hints = ClientHints::from_headers(&headers);
        assert_eq!(hints.brands, Some(r#""Opera";v="115", "Chromium";v="130""#));
        assert_eq!(hints.mobile, Some("?0"));
        assert_eq!(hints.platform, Some(r#""Linux""#));
        assert_eq!(hints.model, None);
        assert_eq!(hints.full_version_list, None);
        let got = CLASSIFIER.classify(CHROME_WIN, &hints).agent;
        assert_eq!(*got, agent("Opera", "115", "Linux", "", "desktop"));
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

        #[test]
        fn short_version_is_major_or_major_minor(raw in "[0-9._a-z]{0,20}") {
            let v = short_version(&raw);
            let parts: Vec<&str> = v.split('.').collect();
            prop_assert!(v.is_empty() || (parts.len() <= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))));
            prop_assert!(!v.ends_with(".0"));
        }

        #[test]
        fn brand_lists_never_contain_grease(value in "[ -~]{0,120}") {
            for brand in parse_brands(&value) {
                prop_assert!(!is_grease(brand.name));
                prop_assert!(!brand.name.is_empty());
            }
        }
    }
}
