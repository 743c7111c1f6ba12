//! User-agent parsing: browser, browser version, OS, OS version and device type from the `User-Agent` string alone.
//! Client hints refine the result afterwards ([`crate::client_hints`]).
//!
//! Names are short and canonical ("Chrome", "Samsung Internet", "macOS", "iPadOS"). Versions are major.minor with
//! a zero minor dropped and later parts ignored: Chrome/131.0.6778.86 is "131", iOS 17_4_1 is "17.4", Android
//! 8.0.0 is "8", Mac OS X 10_15_7 is "10.15". Windows versions are the marketing names ("11", "10", "8.1", "7",
//! "Vista", "XP"). A frozen value is reported as sent: Chrome says Windows NT 10.0 on Windows 11 and Mac OS X
//! 10_15_7 on every recent Mac; only `Sec-CH-UA-Platform-Version` tells them apart.

use tidemark_shared::job::Agent;

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

pub(crate) const DESKTOP: &str = "desktop";
pub(crate) const MOBILE: &str = "mobile";
pub(crate) const TABLET: &str = "tablet";

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    pub(crate) const CHROME_ANDROID_REDUCED: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";

    pub(crate) fn agent(browser: &str, bv: &str, os: &str, ov: &str, device: &str) -> Agent {
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
            assert_eq!(parse_user_agent(ua), want, "{ua}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn short_version_is_major_or_major_minor(raw in "[0-9._a-z]{0,20}") {
            let v = short_version(&raw);
            let parts: Vec<&str> = v.split('.').collect();
            prop_assert!(v.is_empty() || (parts.len() <= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))));
            prop_assert!(!v.ends_with(".0"));
        }
    }
}
