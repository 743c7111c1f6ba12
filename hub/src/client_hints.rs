//! Client hints (`Sec-CH-UA*`): read from the request headers, and applied to an agent parsed from the user agent.
//! Chromium browsers send them; they name the browser behind a reduced user agent (Brave, Edge), the real Windows
//! and macOS versions, and whether the device is a phone.

use crate::user_agent::{DESKTOP, MOBILE, TABLET, short_version};
use actix_web::http::header::{HeaderMap, HeaderName};
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
    pub(crate) fn key_parts(&self) -> [&'a str; 5] {
        [
            self.brands.unwrap_or(""),
            self.full_version_list.unwrap_or(""),
            self.mobile.unwrap_or(""),
            self.platform.unwrap_or(""),
            self.platform_version.unwrap_or(""),
        ]
    }
}

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
pub fn apply_client_hints(agent: &mut Agent, ua: &str, hints: &ClientHints<'_>) {
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
    use crate::user_agent::parse_user_agent;
    use crate::user_agent::tests::{CHROME_ANDROID_REDUCED, CHROME_WIN, agent};
    use actix_web::http::header::HeaderValue;
    use proptest::prelude::*;

    /// What classification makes of a user agent and its hints, bot verdict aside.
    fn hinted(ua: &str, hints: &ClientHints<'_>) -> Agent {
        let mut agent = parse_user_agent(ua);
        apply_client_hints(&mut agent, ua, hints);
        agent
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
    fn full_version_list_wins_over_brands() {
        let hints = ClientHints {
            brands: Some(r#""Google Chrome";v="130""#),
            full_version_list: Some(r#""Google Chrome";v="130.1.6723.92""#),
            ..ClientHints::none()
        };
        assert_eq!(hinted(CHROME_WIN, &hints).browser_version, "130.1");
    }

    #[test]
    fn brave_is_only_visible_in_hints() {
        let hints = ClientHints {
            brands: Some(r#""Brave";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
            ..ClientHints::none()
        };
        assert_eq!(hinted(CHROME_WIN, &hints).browser, "Brave");
        // A brand list with only the engine keeps the user agent's more specific name.
        let engine = ClientHints { brands: Some(r#""Chromium";v="131""#), ..ClientHints::none() };
        assert_eq!(hinted(CHROME_WIN, &engine).browser, "Chrome");
    }

    #[test]
    fn mobile_hint_sets_the_device() {
        let phone = ClientHints { mobile: Some("?1"), platform: Some(r#""Android""#), ..ClientHints::none() };
        assert_eq!(hinted(CHROME_ANDROID_REDUCED, &phone).device, "mobile");
        let tablet = ClientHints { mobile: Some("?0"), ..phone };
        assert_eq!(hinted(CHROME_ANDROID_REDUCED, &tablet).device, "tablet");
        let android14 = ClientHints { platform_version: Some(r#""14.0.0""#), ..phone };
        assert_eq!(hinted(CHROME_ANDROID_REDUCED, &android14).os_version, "14");
        let mac = ClientHints { platform: Some(r#""macOS""#), platform_version: Some(r#""14.5.0""#), ..phone };
        let got = hinted(CHROME_WIN, &mac);
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
        assert_eq!(hinted(firefox, &hints), agent("Firefox", "133", "Windows", "10", "desktop"));
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
        let got = hinted(CHROME_WIN, &hints);
        assert_eq!(got, agent("Opera", "115", "Linux", "", "desktop"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn brand_lists_never_contain_grease(value in "[ -~]{0,120}") {
            for brand in parse_brands(&value) {
                prop_assert!(!is_grease(brand.name));
                prop_assert!(!brand.name.is_empty());
            }
        }
    }
}
