//! Bot detection: decides whether a user agent belongs to something other than a person browsing, and why.
//!
//! No single source is enough (woothee misses HeadlessChrome and python-requests, isbot has no notion of why it
//! matched), so the checks run from the most specific reason to the most general and the first hit names the reason:
//! empty or malformed strings, headless and automated browsers, command-line clients, HTTP libraries, then isbot's
//! maintained list extended with `data/bot_patterns.txt` as one compiled regex, where woothee's crawler category
//! tells crawlers from other bots, and woothee's own guesses for strings nobody recognises. Two generic rules
//! catch the long tail no list names: a user agent with no browser in it at all ([`BotReason::NoBrowser`]), and a
//! browser's user agent with an unknown product appended after the browser's own ([`BotReason::AppendedProduct`]).
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
    /// Nothing of a browser: no browser, rendering engine, operating system or app stack the parser knows
    /// (`SiteMonitor/2.1`, `Mozilla/5.0 (compatible; SiteMonitor)`). A person's browser or app
    /// always names one of them.
    NoBrowser,
    /// A browser's user agent with a product the browser never sends appended after its own last token
    /// (`... Chrome/120.0.0.0 Safari/537.36 SomeCrawler/1.0`): how many crawlers and monitors dress up. Browsers,
    /// forks and in-app browsers that append their own token are known by name.
    AppendedProduct,
}

impl BotReason {
    pub const ALL: [BotReason; 9] = [
        BotReason::EmptyUa,
        BotReason::MalformedUa,
        BotReason::Headless,
        BotReason::Cli,
        BotReason::HttpLibrary,
        BotReason::Crawler,
        BotReason::KnownBot,
        BotReason::NoBrowser,
        BotReason::AppendedProduct,
    ];

    /// The reason a label names: the inverse of [`as_str`](Self::as_str).
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == label)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BotReason::EmptyUa => "empty_ua",
            BotReason::MalformedUa => "malformed_ua",
            BotReason::Headless => "headless",
            BotReason::Cli => "cli",
            BotReason::HttpLibrary => "http_library",
            BotReason::Crawler => "crawler",
            BotReason::KnownBot => "known_bot",
            BotReason::NoBrowser => "no_browser",
            BotReason::AppendedProduct => "appended_product",
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
        if parsed.browser.is_empty() && parsed.os.is_empty() && !names_a_browser(user_agent) {
            return Some(BotReason::NoBrowser);
        }
        if !parsed.browser.is_empty() && appends_unknown_product(user_agent) {
            return Some(BotReason::AppendedProduct);
        }
        None
    }
}

/// Tokens of browsers and of the platforms' own app stacks that the user-agent parser does not report as a
/// browser or an operating system. Lower case; a match anywhere in the string counts.
/// `Mozilla/x` is not one: `Mozilla/5.0 (compatible; SomeMonitor)` names no browser.
const BROWSER_TOKENS: &[&str] = &[
    "opera/",
    "opera mini",
    "applewebkit/",
    "gecko/",
    // Feature phones: WAP browsers and the Java ME profile.
    "profile/midp",
    "up.browser",
    "netfront",
    "obigo",
    // iOS and macOS apps calling through Apple's URL loading system, Android apps through the platform's stack.
    "cfnetwork/",
    "dalvik/",
];

fn names_a_browser(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    BROWSER_TOKENS.iter().any(|t| lower.contains(t))
}

/// Products that browsers, their forks, extensions, distributions and apps' in-app browsers append after
/// `Safari/x` or `Firefox/x`, lower case, separated by white space. From the browsers' and apps' published user
/// agents, tests/data/ua/browsers.tsv and the browser fixtures of the isbot crate (the last lines); a name missing
/// here drops that browser's visitors as bots, so add it (and a line to browsers.tsv) rather than loosen the rule.
const APPENDED_BY_BROWSERS: &str = "
edg edga edgios edge opr opt opx oprgx yabrowser yowser yasearchbrowser yaapp_ios yaapp_android vivaldi
samsungbrowser ucbrowser ubrowser uws ucturbo whale brave crios fxios focus klar ddg duckduckgo ecosia ghostery
puffin phx alohabrowser avastsecurebrowser avgsecurebrowser ccleanerbrowser nortonsecurebrowser avast avg mint
quark huaweibrowser heytapbrowser oppobrowser vivobrowser miuibrowser xiaomi qqbrowser qqbrowserlite mqqbrowser
core metasr lbbrowser 2345explorer mb2345browser sogoumobilebrowser baidubrowser bidubrowser coc_coc_browser
sznprohlizec maxthon mxbrowser iron comodo_dragon chromium slimjet silk kaios seamonkey palemoon waterfox
librewolf thunderbird basilisk goanna icecat iceweasel k-meleon mobile safari version chrome firefox gecko
applewebkit crkey devicetype oculusbrowser nintendobrowser nf electron atomshell slack slack_ssb discord teams
skype spotify notion obsidian webview gsa googleapp
line naver kakaotalk daumapps micromessenger wechat weixin nettype language qq abi process miniprogramenv xweb
mmwebsdk mmwebid baiduboxapp alipayclient aliapp dingtalk weibo instagram fbav snapchat pinterest twitter
linkedinapp reddit flipboard jssdk channel appname app_version appversion bytelocale bytefulllocale region spark
bytedancewebview musical_ly trill tiktok zalo zalotheme viber telegram outlook
acheetahi osmeta asw mailapp mailmaster_android_mobile goodaccess mttcustomua mcent qbwebviewtype wktype windvane
gcanvas t7 t5 bdbrowser bdbrowser_i18n lebrowser nokiabrowser amazonwebappplatform cordova-amazon-fireos bingweb
avirascout build browser smarttv
cyberfox icedragon coolnovo chromeplus cometbird epiphany midori sleipnir fennec lightning firephp mnenhy
raftbrowser swing suse debian ubuntu fedora centos mandriva gentoo cyanogenmod
";

/// Whether a browser's user agent carries a `Name/version` product that no browser sends after its own last token
/// (`Safari/x` for WebKit and Chromium, `Firefox/x` for Gecko). Comments in parentheses or brackets are skipped
/// (in-app browsers put their details there), and so are words without a version: only a product that announces
/// a version of itself counts. A string without either token is left alone: iOS in-app browsers end in
/// `Mobile/x` and their apps append free-form text after it.
fn appends_unknown_product(ua: &str) -> bool {
    let Some(tail) = after_last_browser_token(ua) else { return false };
    let mut depth = 0usize;
    for word in tail.split_ascii_whitespace() {
        let opens = word.starts_with(['(', '[']);
        if depth > 0 || opens {
            depth = (depth + word.matches(['(', '[']).count()).saturating_sub(word.matches([')', ']']).count());
            continue;
        }
        let Some((name, version)) = word.split_once('/') else { continue };
        let is_product = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && version.bytes().next().is_some_and(|b| b.is_ascii_digit());
        if is_product && !APPENDED_BY_BROWSERS.split_ascii_whitespace().any(|known| name.eq_ignore_ascii_case(known)) {
            return true;
        }
    }
    false
}

/// What follows the last `Safari/x` or `Firefox/x` token, or `None` when there is neither.
fn after_last_browser_token(ua: &str) -> Option<&str> {
    let lower = ua.to_ascii_lowercase();
    let at = ["safari/", "firefox/"].iter().filter_map(|t| lower.rfind(t)).max()?;
    let rest = &ua[at..];
    Some(rest.find(char::is_whitespace).map_or("", |end| &rest[end..]))
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
        assert_eq!(
            labels,
            [
                "empty_ua",
                "malformed_ua",
                "headless",
                "cli",
                "http_library",
                "crawler",
                "known_bot",
                "no_browser",
                "appended_product"
            ]
        );
        assert_eq!(BotReason::Cli.to_string(), "cli");
        for reason in BotReason::ALL {
            assert_eq!(BotReason::from_label(reason.as_str()), Some(reason));
        }
        assert_eq!(BotReason::from_label("crawler|known_bot"), None);
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

    #[test]
    fn agents_without_any_browser_are_bots() {
        for ua in
            ["Quillon/3.2", "SiteSentinel/1.0 (compatible)", "Mozilla/5.0 (compatible; SiteSentinel)", "Zeitgeist 4.1"]
        {
            assert_eq!(reason(ua), Some(BotReason::NoBrowser), "{ua}");
        }
        // Apps calling through the platform's own network stack name it; old phones name their WAP browser.
        for ua in [
            "Dalvik/2.1.0 (Linux; U; Android 9; SM-G965U Build/PPR1.180610.011)",
            "Weather/1.2 CFNetwork/1410.0.3 Darwin/22.6.0",
            "SAMSUNG-SGH-E250/1.0 Profile/MIDP-2.0 Configuration/CLDC-1.1 UP.Browser/6.2.3.3.c.1.101 (GUI) MMP/2.0",
        ] {
            assert_ne!(reason(ua), Some(BotReason::NoBrowser), "{ua}");
        }
    }

    #[test]
    fn an_unknown_product_after_the_browser_is_a_bot() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
        for ua in [
            format!("{chrome} Quillon/3.2"),
            format!("{chrome} Edg/120.0.0.0 SiteSentinel/1.0 (+support@example.org)"),
            format!("{firefox} Zeitgeist/4.1"),
        ] {
            assert_eq!(reason(&ua), Some(BotReason::AppendedProduct), "{ua}");
        }
        // Browsers, forks and in-app browsers that append their own token, or text without a version.
        for ua in [
            format!("{chrome} Edg/120.0.2210.91"),
            format!("{chrome} OPR/106.0.0.0 (Edition Yx GX)"),
            format!("{firefox} SeaMonkey/2.53.18"),
            "Mozilla/5.0 (Linux; Android 13; SM-S911B; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/442.0.0.33.113;]".into(),
            "Mozilla/5.0 (Linux; Android 13; Pixel 7; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.43 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; panther; en_US; 541635890)".into(),
            "Mozilla/5.0 (Linux; Android 12; SM-A525F; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 Line/13.19.1/IAB".into(),
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36 GSA/15.3.35.29.arm64".into(),
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/443.0.0.34.109;FBBV/552021546;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.2;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]".into(),
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 311.0.2.19.114 (iPhone14,5; iOS 17_1_2; en_US; en; scale=3.00; 1170x2532; 547474733)".into(),
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/297.0.595545739 Mobile/15E148 Safari/604.1".into(),
            "Mozilla/5.0 (Linux; Android 10; SM-G973F; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/85.0.4183.101 Mobile Safari/537.36 trill_2021806060 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/trill app_version/18.6.6 ByteLocale/en ByteFullLocale/en Region/US BytedanceWebview/d8a21c6".into(),
            "Mozilla/5.0 (Linux; Android 13; V2207; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MMWEBID/2196 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64".into(),
        ] {
            assert_eq!(reason(&ua), None, "{ua}");
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
