//! Bot detection: decides whether a user agent belongs to something other than a person browsing, and why.
//!
//! No single source is enough (woothee misses HeadlessChrome and python-requests, isbot has no notion of why it
//! matched), so the checks run from the most specific reason to the most general and the first hit names the reason:
//! empty or malformed strings, headless and automated browsers, command-line clients, HTTP libraries, then isbot's
//! maintained list extended with `data/bot_patterns.txt` as one compiled regex, where woothee's crawler category
//! tells crawlers from other bots, and woothee's own guesses for strings nobody recognises.
//! Every matcher is compiled once, when [`BotDetector::new`] runs at start-up.
//!
//! Speculative loads (prefetch, prerender) are not bots but are not page views either: [`prefetch_reason`] reads the
//! headers browsers set on them.

use crate::client_hints::ClientHints;
use crate::user_agent::parse_user_agent;
use actix_web::http::header::{HeaderMap, HeaderName};
use isbot::Bots;
use tidemark_shared::job::Agent;

/// Why a request is not counted as a person. The labels of [`BotReason::as_str`] are Prometheus label values and
/// appear in `hub inspect-ua` output: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BotReason {
    /// No user agent, or only whitespace.
    EmptyUa,
    /// Control characters, no letters at all, or a bare `Mozilla/x` without the platform every browser sends.
    MalformedUa,
    /// A headless or automated browser: HeadlessChrome, PhantomJS, jsdom, Cypress...
    Headless,
    /// A command-line client: curl, Wget, HTTPie, PowerShell...
    Cli,
    /// An HTTP library used from code: python-requests, Go-http-client, okhttp, axios...
    HttpLibrary,
    /// woothee's crawler category: search engines and the big link-preview fetchers.
    Crawler,
    /// Any other known bot, monitor, scanner, feed reader or preview fetcher.
    KnownBot,
}

impl BotReason {
    pub const ALL: [BotReason; 7] = [
        BotReason::EmptyUa,
        BotReason::MalformedUa,
        BotReason::Headless,
        BotReason::Cli,
        BotReason::HttpLibrary,
        BotReason::Crawler,
        BotReason::KnownBot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BotReason::EmptyUa => "empty_ua",
            BotReason::MalformedUa => "malformed_ua",
            BotReason::Headless => "headless",
            BotReason::Cli => "cli",
            BotReason::HttpLibrary => "http_library",
            BotReason::Crawler => "crawler",
            BotReason::KnownBot => "known_bot",
        }
    }
}

impl std::fmt::Display for BotReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Patterns are case-insensitive regular expressions (isbot lowercases both sides). Most are anchored at the start:
// a library's name leads its user agent, while the same word later in a string is usually a crawler quoting the
// library it is built on, which the crawler checks name better.

const HEADLESS: &[&str] = &[
    "headless", // HeadlessChrome, HeadlessEdg, and the Sec-CH-UA brand of the same
    "phantomjs",
    "slimerjs",
    "jsdom/",
    "htmlunit",
    "cypress/",
    r"gecko\) splash ", // Scrapy's Splash renderer
    r"zombie\.js",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
];

const CLI: &[&str] = &[
    "^curl(/|$)",
    "^wget2?/",
    "^httpie/",
    "powershell/", // PowerShell's Invoke-WebRequest claims Mozilla/5.0 first
    "^lwp-request/",
    "^aria2/",
    "^xh/",
    "^hurl/",
    "^fetch libfetch/",
    "^libfetch/",
    "^apachebench/",
    "^hey/",
    "^k6/",
    "^siege/",
];

const HTTP_LIBRARIES: &[&str] = &[
    "^python-requests/",
    "^python-urllib",
    "^python-httpx/",
    "^python/[0-9.]+ aiohttp/",
    "^aiohttp/",
    "^urllib3/",
    "^pycurl/",
    "^go-http-client/",
    "^go-resty/",
    "^okhttp/",
    "^java/",
    "^apache-httpclient/",
    "^jakarta commons-httpclient/",
    "httpurlconnection",
    "^reactornetty/",
    "^jersey/",
    "^vert.x-webclient/",
    "^google-http-java-client/",
    "^ahc/",
    "^node-fetch",
    "^axios/",
    "^undici",
    "^node$",
    r"^got \(",
    "^node-superagent/",
    "^needle/",
    "^guzzlehttp/",
    "^guzzle/",
    "^php/",
    "^wordpress/",
    "^zend_http_client",
    "^http_request2/",
    "^ruby$",
    "^ruby/",
    "^faraday v",
    "^rest-client/",
    "^typhoeus",
    "^mechanize/",
    "^www-mechanize/",
    "^libwww-perl/",
    "^lwp::simple",
    "^postmanruntime/",
    "^insomnia/",
    "^dart/",
    "^deno/",
    "^bun/",
    "^reqwest/",
    "^hyper/",
    "^ureq/",
    "^isahc/",
    "^restsharp/",
    "^libcurl/",
    "^winhttp",
];

/// Patterns isbot 0.1.3 lacks, one regular expression a line, `#` starts a comment line.
const EXTRA_BOT_PATTERNS: &str = include_str!("../data/bot_patterns.txt");

/// The compiled bot matchers. Building one compiles several regular expressions (a few milliseconds): build it once
/// and share it.
pub struct BotDetector {
    /// Headless browsers, command-line clients and HTTP libraries together: one search clears a browser of all
    /// three, and only a hit pays for the three searches that name the reason.
    tools: Bots,
    headless: Bots,
    cli: Bots,
    /// isbot's list plus `data/bot_patterns.txt`, one regular expression.
    known: Bots,
    woothee: woothee::parser::Parser,
}

impl Default for BotDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl BotDetector {
    pub fn new() -> Self {
        let mut known = Bots::default();
        let extra: Vec<&str> = pattern_lines(EXTRA_BOT_PATTERNS).collect();
        known.append(&extra);
        let tools: Vec<&str> = HEADLESS.iter().chain(CLI).chain(HTTP_LIBRARIES).copied().collect();
        Self {
            tools: Bots::new(&tools.join("\n")),
            headless: Bots::new(&HEADLESS.join("\n")),
            cli: Bots::new(&CLI.join("\n")),
            known,
            woothee: woothee::parser::Parser::new(),
        }
    }

    /// The first reason, most specific first, for which `user_agent` is not a person; `None` for a browser.
    pub fn detect(&self, user_agent: &str, hints: &ClientHints<'_>) -> Option<BotReason> {
        self.detect_parsed(user_agent, hints, &parse_user_agent(user_agent))
    }

    /// [`detect`](Self::detect) for a user agent already parsed (without client hints) by [`parse_user_agent`].
    pub fn detect_parsed(&self, user_agent: &str, hints: &ClientHints<'_>, parsed: &Agent) -> Option<BotReason> {
        if user_agent.trim().is_empty() {
            return Some(BotReason::EmptyUa);
        }
        if is_garbage(user_agent) {
            return Some(BotReason::MalformedUa);
        }
        if hints.brands.is_some_and(|b| self.headless.is_bot(b)) {
            return Some(BotReason::Headless);
        }
        if self.tools.is_bot(user_agent) {
            if self.headless.is_bot(user_agent) {
                return Some(BotReason::Headless);
            }
            if self.cli.is_bot(user_agent) {
                return Some(BotReason::Cli);
            }
            return Some(BotReason::HttpLibrary);
        }
        // isbot's list knows every crawler woothee's crawler list names (checked against isbot's and
        // crawler-user-agents' fixtures), so woothee only tells crawlers from other bots, and a person's browser
        // costs one regular-expression search rather than woothee's few dozen substring searches as well.
        if self.known.is_bot(user_agent) {
            let crawler = self.woothee.try_crawler(user_agent, &mut woothee::parser::WootheeResult::new());
            return Some(if crawler { BotReason::Crawler } else { BotReason::KnownBot });
        }
        // A string neither parser recognises gets woothee's full parse, whose last resorts (anything saying bot,
        // crawler or spider, HTTP libraries, feed readers) only run when it finds no browser and no OS either.
        if parsed.browser.is_empty()
            && parsed.os.is_empty()
            && let Some(woothee) = self.woothee.parse(user_agent)
        {
            match (woothee.category, woothee.name) {
                ("crawler", _) => return Some(BotReason::Crawler),
                // woothee names the library in `version`: curl and wget are the command-line tools.
                ("misc", "HTTP Library") if matches!(woothee.version, "curl" | "wget") => return Some(BotReason::Cli),
                ("misc", "HTTP Library") => return Some(BotReason::HttpLibrary),
                // Feed readers poll on a schedule; no person is looking at the page.
                ("misc", name) if name.contains("RSSReader") => return Some(BotReason::KnownBot),
                _ => {}
            }
        }
        if lacks_platform(user_agent) {
            return Some(BotReason::MalformedUa);
        }
        None
    }
}

fn pattern_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Nothing a browser sends: control characters (a browser's user agent is visible ASCII), the replacement character
/// left by invalid UTF-8, or not a single letter.
fn is_garbage(ua: &str) -> bool {
    let control = if ua.is_ascii() {
        ua.bytes().any(|b| b.is_ascii_control())
    } else {
        ua.chars().any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
    };
    control || !ua.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Every browser since the 1990s puts its platform in parentheses after `Mozilla/x`; scripts that fake a browser
/// with the bare product token do not.
fn lacks_platform(ua: &str) -> bool {
    ua.trim_start().get(..8).is_some_and(|p| p.eq_ignore_ascii_case("mozilla/")) && !ua.contains('(')
}

static SEC_PURPOSE: HeaderName = HeaderName::from_static("sec-purpose");
static PURPOSE: HeaderName = HeaderName::from_static("purpose");
static X_PURPOSE: HeaderName = HeaderName::from_static("x-purpose");
static X_MOZ: HeaderName = HeaderName::from_static("x-moz");

/// `Some("prerender")` or `Some("prefetch")` when the request announces a speculative load rather than a person
/// opening the page: `Sec-Purpose` (current Chromium and Firefox: `prefetch`, `prefetch;prerender`), `Purpose`
/// (older Chromium), `X-Moz` (older Firefox) and `X-Purpose` (Safari's `preview` of Top Sites thumbnails, counted as
/// a prefetch since nobody is on the page yet). A prerender wins over a prefetch when both appear.
pub fn prefetch_reason(headers: &HeaderMap) -> Option<&'static str> {
    let mut reason = None;
    for name in [&SEC_PURPOSE, &PURPOSE, &X_PURPOSE, &X_MOZ] {
        for value in headers.get_all(name) {
            let value = value.as_bytes();
            if contains_ignore_case(value, b"prerender") {
                return Some("prerender");
            }
            if contains_ignore_case(value, b"prefetch") || contains_ignore_case(value, b"preview") {
                reason = Some("prefetch");
            }
        }
    }
    reason
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static DETECTOR: LazyLock<BotDetector> = LazyLock::new(BotDetector::new);

    fn reason(ua: &str) -> Option<BotReason> {
        DETECTOR.detect(ua, &ClientHints::none())
    }

    #[test]
    fn labels_are_stable_and_distinct() {
        let labels: Vec<&str> = BotReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["empty_ua", "malformed_ua", "headless", "cli", "http_library", "crawler", "known_bot"]);
        assert_eq!(BotReason::Cli.to_string(), "cli");
    }

    #[test]
    fn each_reason_is_reached() {
        assert_eq!(reason(""), Some(BotReason::EmptyUa));
        assert_eq!(reason("   "), Some(BotReason::EmptyUa));
        assert_eq!(reason("Mozilla/5.0 (X11; Linux)\u{0}"), Some(BotReason::MalformedUa));
        assert_eq!(reason("12345 / 678"), Some(BotReason::MalformedUa));
        assert_eq!(reason("Mozilla/5.0"), Some(BotReason::MalformedUa));
        assert_eq!(
            reason(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36"
            ),
            Some(BotReason::Headless)
        );
        assert_eq!(reason("curl/8.5.0"), Some(BotReason::Cli));
        assert_eq!(reason("curl"), Some(BotReason::Cli));
        assert_eq!(reason("Wget/1.21.4"), Some(BotReason::Cli));
        assert_eq!(reason("python-requests/2.31.0"), Some(BotReason::HttpLibrary));
        assert_eq!(reason("Go-http-client/2.0"), Some(BotReason::HttpLibrary));
        assert_eq!(
            reason("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            Some(BotReason::Crawler)
        );
        // woothee takes this for Chrome on Linux; isbot knows WebPageTest's PTST token.
        assert_eq!(
            reason(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PTST/240201.190318"
            ),
            Some(BotReason::KnownBot)
        );
    }

    #[test]
    fn vendored_patterns_are_in_the_matcher() {
        // Neither woothee nor isbot's own list knows these two.
        assert_eq!(reason("anthropic-ai"), Some(BotReason::KnownBot));
        assert_eq!(reason("Chrome Privacy Preserving Prefetch Proxy"), Some(BotReason::KnownBot));
        assert!(pattern_lines(EXTRA_BOT_PATTERNS).all(|p| !p.starts_with('#') && !p.is_empty()));
    }

    #[test]
    fn headless_brand_in_client_hints_is_caught() {
        let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(reason(ua), None);
        let hints = ClientHints {
            brands: Some(r#""Not_A Brand";v="8", "Chromium";v="120", "HeadlessChrome";v="120""#),
            ..ClientHints::none()
        };
        assert_eq!(DETECTOR.detect(ua, &hints), Some(BotReason::Headless));
    }

    #[test]
    fn browsers_are_not_bots() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
            "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1; .NET CLR 1.1.4322)",
            "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
            // Android apps calling the network through the platform stack are people using an app.
            "Dalvik/2.1.0 (Linux; U; Android 9; SM-G965U Build/PPR1.180610.011)",
        ] {
            assert_eq!(reason(ua), None, "{ua}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn prefetch_headers() {
        assert_eq!(prefetch_reason(&headers(&[])), None);
        assert_eq!(prefetch_reason(&headers(&[("sec-purpose", "prefetch")])), Some("prefetch"));
        assert_eq!(prefetch_reason(&headers(&[("sec-purpose", "prefetch;prerender")])), Some("prerender"));
        assert_eq!(prefetch_reason(&headers(&[("sec-purpose", "prefetch;anonymous-client-ip")])), Some("prefetch"));
        assert_eq!(prefetch_reason(&headers(&[("purpose", "Prefetch")])), Some("prefetch"));
        assert_eq!(prefetch_reason(&headers(&[("x-moz", "prefetch")])), Some("prefetch"));
        assert_eq!(prefetch_reason(&headers(&[("x-purpose", "preview")])), Some("prefetch"));
        assert_eq!(
            prefetch_reason(&headers(&[("purpose", "prefetch"), ("sec-purpose", "prerender")])),
            Some("prerender")
        );
        assert_eq!(prefetch_reason(&headers(&[("sec-purpose", "navigate")])), None);
        assert_eq!(prefetch_reason(&headers(&[("x-prefetch", "prefetch")])), None);
    }

    proptest! {
        #[test]
        fn detect_never_panics_and_is_deterministic(ua in any::<String>(), brands in proptest::option::of(any::<String>())) {
            let hints = ClientHints { brands: brands.as_deref(), ..ClientHints::none() };
            let first = DETECTOR.detect(&ua, &hints);
            prop_assert_eq!(first, DETECTOR.detect(&ua, &hints));
            if ua.trim().is_empty() {
                prop_assert_eq!(first, Some(BotReason::EmptyUa));
            }
        }

        #[test]
        fn control_characters_are_malformed(prefix in "[ -~]{0,40}", control in "[\u{1}-\u{1f}\u{7f}]", suffix in "[ -~]{0,40}") {
            let ua = format!("a{prefix}{control}{suffix}");
            prop_assert_eq!(reason(&ua), Some(BotReason::MalformedUa));
        }

        #[test]
        fn prefetch_reason_never_panics(value in "[ -~]{0,60}") {
            let mut map = HeaderMap::new();
            map.insert(SEC_PURPOSE.clone(), HeaderValue::from_str(&value).unwrap());
            let got = prefetch_reason(&map);
            let lower = value.to_ascii_lowercase();
            let expected = if lower.contains("prerender") {
                Some("prerender")
            } else if lower.contains("prefetch") || lower.contains("preview") {
                Some("prefetch")
            } else {
                None
            };
            prop_assert_eq!(got, expected);
        }
    }
}
