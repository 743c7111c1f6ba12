//! Where a visit came from: direct, search, social, email, paid or referral, from the referrer, the page's UTM
//! parameters and ad click ids. The list of known sites is `data/referrers.tsv` (its header explains the format),
//! compiled in and indexed once at start-up.
//!
//! Precedence, strongest first:
//! 1. Paid: a paid `utm_medium` (cpc, ppc, paid*, display, cpm...), an ad click id on the page URL (gclid, gbraid,
//!    wbraid, dclid, msclkid, ttclid, twclid, li_fat_id, yclid, sccid, epik, rdt_cid), or an ad network referrer.
//!    `fbclid` is not one: Meta adds it to every outbound link, organic ones included.
//! 2. Email: an email `utm_medium` (email, e-mail, newsletter, mail) or a webmail referrer.
//! 3. Any other explicit `utm_medium`: social, organic (search), referral or affiliate.
//! 4. The referrer: its listed type, else "referral" under its own host. A referrer from the page's own host is
//!    a self-referral and counts as no referrer.
//! 5. Without a referrer: a known `utm_source` gives its type, any other UTM tag makes it a referral, an `fbclid`
//!    makes it Facebook (in-app browsers often send no referrer), and nothing at all is direct.
//!
//! The name is the referrer's listed name, else the `utm_source`'s, else the click id's network.

use crate::url_parts::normalize_host;
use std::collections::HashMap;
use url::Url;

const DATA: &str = include_str!("../data/referrers.tsv");

/// The longest a DNS name can be; anything longer is not a real site and is not worth indexing by suffix.
const MAX_HOST: usize = 253;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceType {
    Direct,
    Search,
    Social,
    Email,
    Paid,
    Referral,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Direct => "direct",
            SourceType::Search => "search",
            SourceType::Social => "social",
            SourceType::Email => "email",
            SourceType::Paid => "paid",
            SourceType::Referral => "referral",
        }
    }

    fn from_data(word: &str) -> Option<Self> {
        Some(match word {
            "search" => SourceType::Search,
            "social" => SourceType::Social,
            "email" => SourceType::Email,
            "paid" => SourceType::Paid,
            "referral" => SourceType::Referral,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub source_type: SourceType,
    /// The site or network, e.g. "Google"; empty when unknown.
    pub name: String,
    /// The normalized referrer host; empty for direct visits and self-referrals.
    pub host: String,
}

#[derive(Debug)]
struct Entry {
    source_type: SourceType,
    name: String,
}

pub struct Referrers {
    entries: Vec<Entry>,
    /// `facebook.com`: the host and its subdomains.
    hosts: HashMap<String, usize>,
    /// `google` for `google.*`: followed by a top-level domain.
    wildcards: HashMap<String, usize>,
    /// utm_source values: aliases, lower-case names, one-label wildcard keys.
    aliases: HashMap<String, usize>,
}

impl Default for Referrers {
    fn default() -> Self {
        Self::new()
    }
}

impl Referrers {
    pub fn new() -> Self {
        // The file is part of the binary and the tests parse it, so an error here is a build that never passed.
        Self::parse(DATA).unwrap_or_else(|e| panic!("hub/data/referrers.tsv: {e}"))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut table =
            Self { entries: Vec::new(), hosts: HashMap::new(), wildcards: HashMap::new(), aliases: HashMap::new() };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [kind, name, hosts] = fields[..] else {
                return Err(format!("line {line_no}: expected type, name and hosts separated by tabs"));
            };
            let source_type = SourceType::from_data(kind.trim()).ok_or_else(|| {
                format!("line {line_no}: unknown type {kind:?} (search, social, email, paid, referral)")
            })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("line {line_no}: a rule needs a name"));
            }
            let entry = table.entries.len();
            table.entries.push(Entry { source_type, name: name.to_owned() });
            for token in hosts.split_whitespace() {
                if let Some(first) = seen.insert(token.to_owned(), line_no) {
                    return Err(format!("line {line_no}: {token:?} is already on line {first}"));
                }
                let valid_chars =
                    token.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.*".contains(&b));
                if !valid_chars || token.starts_with("www.") || token.starts_with('.') || token.ends_with('.') {
                    return Err(format!("line {line_no}: {token:?} is not a lower-case host without www."));
                }
                match token.strip_suffix(".*") {
                    Some(key) if !key.is_empty() && !key.contains('*') => {
                        table.wildcards.insert(key.to_owned(), entry);
                        if !key.contains('.') {
                            table.aliases.insert(key.to_owned(), entry);
                        }
                    }
                    _ if token.contains('*') => {
                        return Err(format!("line {line_no}: {token:?}: a wildcard is only allowed as a final \".*\""));
                    }
                    _ if token.contains('.') => {
                        table.hosts.insert(token.to_owned(), entry);
                    }
                    _ => {
                        table.aliases.insert(token.to_owned(), entry);
                    }
                }
            }
        }
        for (entry, e) in table.entries.iter().enumerate() {
            table.aliases.entry(e.name.to_lowercase()).or_insert(entry);
        }
        Ok(table)
    }

    pub fn classify(&self, page: Option<&Url>, referrer: Option<&Url>, utm_source: &str, utm_medium: &str) -> Source {
        let page_host = page.and_then(Url::host_str).map(normalize_host);
        let external = referrer
            .and_then(Url::host_str)
            .map(normalize_host)
            .filter(|host| !host.is_empty() && Some(host) != page_host.as_ref());
        let by_referrer = external.as_deref().and_then(|host| self.lookup_host(host));
        let by_utm = self.lookup_source(utm_source);
        let click = page.and_then(click_id);
        let medium = classify_medium(utm_medium);

        let listed = |t: SourceType| {
            by_referrer.is_some_and(|e| e.source_type == t) || by_utm.is_some_and(|e| e.source_type == t)
        };
        let source_type =
            if medium == Some(SourceType::Paid) || click.is_some_and(|c| c.paid) || listed(SourceType::Paid) {
                SourceType::Paid
            } else if medium == Some(SourceType::Email) || listed(SourceType::Email) {
                SourceType::Email
            } else if let Some(t) = medium {
                t
            } else if let Some(entry) = by_referrer {
                entry.source_type
            } else if external.is_some() {
                SourceType::Referral
            } else if let Some(entry) = by_utm {
                entry.source_type
            } else if !utm_source.trim().is_empty() || !utm_medium.trim().is_empty() {
                SourceType::Referral
            } else if click.is_some() {
                // Only fbclid gets this far: every paid click id was taken above.
                SourceType::Social
            } else {
                SourceType::Direct
            };

        // A click id names its network unless an unlisted referrer is where the visit came from; a paid one still
        // does then (an ad on a publisher's site).
        let click_name = click.filter(|c| external.is_none() || c.paid && source_type == SourceType::Paid);
        let name = by_referrer
            .or(by_utm)
            .map(|e| e.name.as_str())
            .or(click_name.map(|c| c.network))
            .unwrap_or_default()
            .to_owned();
        let host = external.map(|h| h.chars().take(MAX_HOST).collect()).unwrap_or_default();
        Source { source_type, name, host }
    }

    /// The most specific rule for a host: walks from the full host to shorter suffixes, exact before wildcard.
    fn lookup_host(&self, host: &str) -> Option<&Entry> {
        if host.len() > MAX_HOST {
            return None;
        }
        let mut suffix = host;
        loop {
            if let Some(&i) = self.hosts.get(suffix) {
                return Some(&self.entries[i]);
            }
            if let Some(i) = self.wildcard(suffix) {
                return Some(&self.entries[i]);
            }
            suffix = &suffix[suffix.find('.')? + 1..];
        }
    }

    /// `key.*` matches `key.tld` and `key.sld.cc` where sld is a common second level (google.co.uk, yandex.com.tr).
    fn wildcard(&self, host: &str) -> Option<usize> {
        const SECOND_LEVELS: &[&str] = &["ac", "co", "com", "edu", "go", "gob", "gov", "ne", "net", "or", "org"];
        let (rest, last) = host.rsplit_once('.')?;
        let is_tld = |l: &str| l.len() >= 2 && l.bytes().all(|b| b.is_ascii_lowercase());
        if !is_tld(last) {
            return None;
        }
        if let Some(&i) = self.wildcards.get(rest) {
            return Some(i);
        }
        let (key, second) = rest.rsplit_once('.')?;
        let country = last.len() == 2;
        if country && SECOND_LEVELS.contains(&second) { self.wildcards.get(key).copied() } else { None }
    }

    fn lookup_source(&self, utm_source: &str) -> Option<&Entry> {
        let source = utm_source.trim().to_lowercase();
        if source.is_empty() {
            return None;
        }
        if let Some(&i) = self.aliases.get(&source) {
            return Some(&self.entries[i]);
        }
        // utm_source=facebook.com or =l.facebook.com: the same lookup as a referrer host.
        if source.contains('.') { self.lookup_host(&normalize_host(&source)) } else { None }
    }
}

#[derive(Debug, Clone, Copy)]
struct ClickId {
    network: &'static str,
    paid: bool,
}

/// Query parameters that ad networks add to the landing page URL on a click.
const CLICK_IDS: &[(&str, &str, bool)] = &[
    ("gclid", "Google", true),
    ("gbraid", "Google", true),
    ("wbraid", "Google", true),
    ("dclid", "Google", true),
    ("msclkid", "Microsoft", true),
    ("ttclid", "TikTok", true),
    ("twclid", "X", true),
    ("li_fat_id", "LinkedIn", true),
    ("yclid", "Yandex", true),
    ("sccid", "Snapchat", true),
    ("epik", "Pinterest", true),
    ("rdt_cid", "Reddit", true),
    // Added by Meta to every outbound link, paid or not: it names the network but does not make a visit paid.
    ("fbclid", "Facebook", false),
];

fn click_id(page: &Url) -> Option<ClickId> {
    let mut found: Option<ClickId> = None;
    for (key, value) in page.query_pairs() {
        if value.trim().is_empty() {
            continue;
        }
        let key = key.to_ascii_lowercase();
        if let Some(&(_, network, paid)) = CLICK_IDS.iter().find(|(k, _, _)| *k == key) {
            // A paid id wins over fbclid on the same URL.
            if found.is_none_or(|f| !f.paid && paid) {
                found = Some(ClickId { network, paid });
            }
        }
    }
    found
}

/// What an explicit `utm_medium` says, if it says anything we know. Compound values are read word by word, so
/// `paid_social` is paid and `email-newsletter` email.
fn classify_medium(medium: &str) -> Option<SourceType> {
    const PAID: &[&str] =
        &["cpc", "ppc", "cpm", "cpv", "cpa", "cpp", "display", "banner", "retargeting", "remarketing", "ads", "sem"];
    const EMAIL: &[&str] = &["email", "mail", "newsletter", "newsletters", "enewsletter"];
    const SOCIAL: &[&str] = &["sm", "socialnetwork", "socialmedia"];
    const SEARCH: &[&str] = &["organic", "seo"];
    const REFERRAL: &[&str] = &["referral", "affiliate", "affiliates"];
    let m = medium.trim().to_ascii_lowercase();
    let words: Vec<&str> = m.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    if has(PAID) || words.iter().any(|w| w.starts_with("paid") || w.ends_with("paid") && *w != "unpaid") {
        Some(SourceType::Paid)
    } else if has(EMAIL) {
        Some(SourceType::Email)
    } else if has(SOCIAL) || words.iter().any(|w| w.starts_with("social")) {
        Some(SourceType::Social)
    } else if has(SEARCH) {
        Some(SourceType::Search)
    } else if has(REFERRAL) {
        Some(SourceType::Referral)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static REFERRERS: LazyLock<Referrers> = LazyLock::new(Referrers::new);

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn from(referrer: &str) -> Source {
        REFERRERS.classify(Some(&url("https://shop.example/landing")), Some(&url(referrer)), "", "")
    }

    fn with_utm(page: &str, source: &str, medium: &str) -> Source {
        REFERRERS.classify(Some(&url(page)), None, source, medium)
    }

    fn expect(got: Source, source_type: SourceType, name: &str, host: &str) {
        assert_eq!(got, Source { source_type, name: name.into(), host: host.into() });
    }

    #[test]
    fn the_data_file_parses_and_covers_several_hundred_sites() {
        let r = Referrers::parse(DATA).unwrap();
        assert!(r.hosts.len() + r.wildcards.len() >= 250, "{} hosts", r.hosts.len() + r.wildcards.len());
        for t in ["search", "social", "email", "paid", "referral"] {
            let t = SourceType::from_data(t).unwrap();
            assert!(r.entries.iter().filter(|e| e.source_type == t).count() >= 5, "{t:?}");
        }
    }

    #[test]
    fn no_host_in_the_data_file_is_shadowed_by_another_of_its_own_line() {
        // A subdomain listed beside its parent adds nothing and hides what the rule really covers.
        for line in DATA.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let hosts: Vec<&str> = line.split('\t').nth(2).unwrap().split_whitespace().collect();
            for a in &hosts {
                for b in hosts.iter().filter(|b| b.contains('.')) {
                    assert!(!a.ends_with(&format!(".{b}")), "{a} is covered by {b} on: {line}");
                }
            }
        }
    }

    #[test]
    fn malformed_data_is_rejected_with_its_line() {
        let cases = [
            ("search\tGoogle", "line 1"),
            ("searching\tGoogle\tgoogle.com", "unknown type"),
            ("search\t\tgoogle.com", "needs a name"),
            ("search\tGoogle\t", "line 1: expected type, name and hosts"),
            ("search\tGoogle\tgoogle.com\textra", "line 1: expected type, name and hosts"),
            ("search\tGoogle\tgoogle.com\n# c\nsocial\tG+\tgoogle.com", "line 3: \"google.com\" is already on line 1"),
            ("search\tGoogle\twww.google.com", "without www."),
            ("search\tGoogle\tGoogle.com", "lower-case"),
            ("search\tGoogle\tgoo*gle.com", "wildcard"),
            ("search\tGoogle\t*.google.com", "wildcard"),
        ];
        for (text, want) in cases {
            let err = Referrers::parse(text).err().unwrap_or_else(|| panic!("accepted {text:?}"));
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn google_is_search_on_every_country_domain_and_nowhere_else() {
        for host in ["google.com", "www.google.co.uk", "google.de", "google.com.br", "www.google.co.jp", "google.fr."] {
            expect(from(&format!("https://{host}/")), SourceType::Search, "Google", normalize_host(host).as_str());
        }
        for host in ["google.evil.com", "notgoogle.com", "google.co.evil", "google.com.evil", "mygoogle.co.uk"] {
            expect(from(&format!("https://{host}/")), SourceType::Referral, "", host);
        }
        expect(
            from("android-app://com.google.android.googlequicksearchbox/"),
            SourceType::Search,
            "Google",
            "com.google.android.googlequicksearchbox",
        );
    }

    #[test]
    fn the_most_specific_rule_wins() {
        expect(from("https://mail.google.com/mail/u/0/"), SourceType::Email, "Gmail", "mail.google.com");
        expect(from("https://docs.google.com/document/d/1"), SourceType::Referral, "Google Docs", "docs.google.com");
        expect(from("https://adservice.google.com/"), SourceType::Paid, "Google Ads", "adservice.google.com");
        expect(from("https://scholar.google.de/"), SourceType::Search, "Google Scholar", "scholar.google.de");
        expect(from("https://maps.google.co.uk/"), SourceType::Referral, "Google Maps", "maps.google.co.uk");
        expect(from("https://blog.naver.com/x"), SourceType::Social, "Naver Blog", "blog.naver.com");
        expect(from("https://search.naver.com/"), SourceType::Search, "Naver", "search.naver.com");
        expect(from("https://mail.yandex.ru/"), SourceType::Email, "Yandex Mail", "mail.yandex.ru");
        expect(from("https://yandex.com.tr/search"), SourceType::Search, "Yandex", "yandex.com.tr");
        expect(from("https://an.yandex.ru/count"), SourceType::Paid, "Yandex Direct", "an.yandex.ru");
    }

    #[test]
    fn known_sites_get_their_type_and_name() {
        let cases = [
            ("https://l.facebook.com/l.php?u=x", SourceType::Social, "Facebook", "l.facebook.com"),
            ("https://m.facebook.com/", SourceType::Social, "Facebook", "m.facebook.com"),
            ("https://t.co/abc", SourceType::Social, "X", "t.co"),
            ("https://lnkd.in/x", SourceType::Social, "LinkedIn", "lnkd.in"),
            ("https://old.reddit.com/r/rust", SourceType::Social, "Reddit", "old.reddit.com"),
            ("https://news.ycombinator.com/item?id=1", SourceType::Social, "Hacker News", "news.ycombinator.com"),
            ("https://bsky.app/profile/x", SourceType::Social, "Bluesky", "bsky.app"),
            ("https://mastodon.social/@x", SourceType::Social, "Mastodon", "mastodon.social"),
            ("https://fosstodon.org/@x", SourceType::Social, "Mastodon", "fosstodon.org"),
            ("https://mstdn.jp/", SourceType::Social, "Mastodon", "mstdn.jp"),
            ("https://duckduckgo.com/", SourceType::Search, "DuckDuckGo", "duckduckgo.com"),
            ("https://www.bing.com/search?q=x", SourceType::Search, "Bing", "bing.com"),
            ("https://uk.search.yahoo.com/", SourceType::Search, "Yahoo", "uk.search.yahoo.com"),
            ("https://chatgpt.com/", SourceType::Search, "ChatGPT", "chatgpt.com"),
            ("https://www.perplexity.ai/", SourceType::Search, "Perplexity", "perplexity.ai"),
            ("https://outlook.live.com/mail/0/", SourceType::Email, "Outlook", "outlook.live.com"),
            ("android-app://com.google.android.gm/", SourceType::Email, "Gmail", "com.google.android.gm"),
            ("https://en.m.wikipedia.org/wiki/X", SourceType::Referral, "Wikipedia", "en.m.wikipedia.org"),
        ];
        for (referrer, t, name, host) in cases {
            expect(from(referrer), t, name, host);
        }
    }

    #[test]
    fn unknown_sites_are_referrals_under_their_normalized_host() {
        expect(from("https://WWW.Blog.Example.ORG/post"), SourceType::Referral, "", "blog.example.org");
        expect(from("https://social.example.org/@me"), SourceType::Referral, "", "social.example.org");
        expect(from("http://192.0.2.10:8080/"), SourceType::Referral, "", "192.0.2.10");
    }

    #[test]
    fn self_referrals_and_missing_referrers_are_direct() {
        let page = url("https://www.Example.com/pricing");
        for referrer in ["https://example.com/", "http://www.example.com/blog?x=1", "about:blank", "file:///tmp/x"] {
            expect(REFERRERS.classify(Some(&page), Some(&url(referrer)), "", ""), SourceType::Direct, "", "");
        }
        expect(REFERRERS.classify(Some(&page), None, " ", ""), SourceType::Direct, "", "");
        expect(REFERRERS.classify(None, None, "", ""), SourceType::Direct, "", "");
        // Another subdomain of the same site is another host.
        let blog = url("https://blog.example.com/");
        expect(REFERRERS.classify(Some(&page), Some(&blog), "", ""), SourceType::Referral, "", "blog.example.com");
        // A self-referral still carries its campaign.
        let tagged = url("https://example.com/?utm_source=news");
        expect(REFERRERS.classify(Some(&page), Some(&tagged), "news", "email"), SourceType::Email, "", "");
    }

    #[test]
    fn utm_tags_classify_visits_without_a_referrer() {
        let page = "https://shop.example/";
        expect(with_utm(page, "newsletter", "email"), SourceType::Email, "", "");
        expect(with_utm(page, "weekly", "E-Mail"), SourceType::Email, "", "");
        expect(with_utm(page, "google", "cpc"), SourceType::Paid, "Google", "");
        expect(with_utm(page, "facebook", "paid_social"), SourceType::Paid, "Facebook", "");
        expect(with_utm(page, "facebook", ""), SourceType::Social, "Facebook", "");
        expect(with_utm(page, "fb", "social"), SourceType::Social, "Facebook", "");
        expect(with_utm(page, "twitter.com", ""), SourceType::Social, "X", "");
        expect(with_utm(page, "Google", "organic"), SourceType::Search, "Google", "");
        expect(with_utm(page, "gmail", ""), SourceType::Email, "Gmail", "");
        expect(with_utm(page, "partner-site", ""), SourceType::Referral, "", "");
        expect(with_utm(page, "", "qr-code"), SourceType::Referral, "", "");
        expect(with_utm(page, "partner", "affiliate"), SourceType::Referral, "", "");
        expect(with_utm(page, "x", "unpaid"), SourceType::Social, "X", "");
    }

    #[test]
    fn explicit_utm_medium_wins_over_the_referrer() {
        let page = url("https://shop.example/");
        let fb = url("https://l.facebook.com/");
        expect(
            REFERRERS.classify(Some(&page), Some(&fb), "facebook", "cpc"),
            SourceType::Paid,
            "Facebook",
            "l.facebook.com",
        );
        let google = url("https://www.google.com/");
        expect(
            REFERRERS.classify(Some(&page), Some(&google), "", "newsletter"),
            SourceType::Email,
            "Google",
            "google.com",
        );
        let blog = url("https://blog.example.org/");
        expect(REFERRERS.classify(Some(&page), Some(&blog), "", "social"), SourceType::Social, "", "blog.example.org");
    }

    #[test]
    fn ad_click_ids_make_a_visit_paid_but_fbclid_does_not() {
        let c = |page: &str, referrer: Option<&str>| {
            REFERRERS.classify(Some(&url(page)), referrer.map(url).as_ref(), "", "")
        };
        expect(c("https://shop.example/?gclid=abc", None), SourceType::Paid, "Google", "");
        expect(
            c("https://shop.example/?gclid=abc", Some("https://www.google.co.uk/")),
            SourceType::Paid,
            "Google",
            "google.co.uk",
        );
        expect(c("https://shop.example/?MSCLKID=1", None), SourceType::Paid, "Microsoft", "");
        expect(c("https://shop.example/?ttclid=1", None), SourceType::Paid, "TikTok", "");
        expect(
            c("https://shop.example/?gclid=1", Some("https://news.example.net/")),
            SourceType::Paid,
            "Google",
            "news.example.net",
        );
        expect(c("https://shop.example/?li_fat_id=1", None), SourceType::Paid, "LinkedIn", "");
        expect(c("https://shop.example/?gclid=", None), SourceType::Direct, "", "");
        expect(c("https://shop.example/?fbclid=x", None), SourceType::Social, "Facebook", "");
        expect(c("https://shop.example/?fbclid=x&gclid=y", None), SourceType::Paid, "Google", "");
        expect(
            c("https://shop.example/?fbclid=x", Some("https://blog.example.org/")),
            SourceType::Referral,
            "",
            "blog.example.org",
        );
        let paid_fb = REFERRERS.classify(Some(&url("https://shop.example/?fbclid=x")), None, "", "paid");
        expect(paid_fb, SourceType::Paid, "Facebook", "");
    }

    #[test]
    fn as_str_matches_the_stored_values() {
        let all = [
            (SourceType::Direct, "direct"),
            (SourceType::Search, "search"),
            (SourceType::Social, "social"),
            (SourceType::Email, "email"),
            (SourceType::Paid, "paid"),
            (SourceType::Referral, "referral"),
        ];
        for (t, s) in all {
            assert_eq!(t.as_str(), s);
            assert!(t == SourceType::Direct || SourceType::from_data(s) == Some(t));
        }
    }

    fn url_strategy() -> impl Strategy<Value = Option<Url>> {
        prop_oneof![
            Just(None),
            "(https?|android-app|ftp|about|file|mailto)://[a-zA-Z0-9._*-]{0,40}(:[0-9]{1,5})?(/[ -~]{0,30})?"
                .prop_map(|s| Url::parse(&s).ok()),
            "[ -~]{0,40}".prop_map(|s| Url::parse(&s).ok()),
            ("[a-z0-9-]{1,12}", prop::sample::select(vec!["google.com", "facebook.com", "example.com", "co.uk"]))
                .prop_map(|(sub, base)| Url::parse(&format!("https://{sub}.{base}/")).ok()),
        ]
    }

    proptest! {
        #[test]
        fn classify_never_panics_and_keeps_its_invariants(
            page in url_strategy(),
            referrer in url_strategy(),
            utm_source in "\\PC{0,20}",
            utm_medium in prop_oneof![Just(String::new()), "\\PC{0,20}", Just("cpc".to_owned())],
        ) {
            let got = REFERRERS.classify(page.as_ref(), referrer.as_ref(), &utm_source, &utm_medium);
            if got.source_type == SourceType::Direct {
                prop_assert_eq!(&got.name, "");
                prop_assert_eq!(&got.host, "");
            }
            let referrer_host = referrer.as_ref().and_then(Url::host_str).map(normalize_host).unwrap_or_default();
            let page_host = page.as_ref().and_then(Url::host_str).map(normalize_host);
            if referrer_host.is_empty() || Some(&referrer_host) == page_host.as_ref() {
                prop_assert_eq!(&got.host, "");
            } else {
                prop_assert_eq!(&got.host, &referrer_host);
                prop_assert_ne!(got.source_type, SourceType::Direct);
            }
            prop_assert_eq!(got.host.to_lowercase(), got.host.clone());
            prop_assert!(!got.host.starts_with("www.") || !got.host[4..].contains('.'));
        }

        #[test]
        fn every_subdomain_of_a_listed_host_shares_its_rule(sub in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}") {
            let got = from(&format!("https://{sub}.facebook.com/"));
            prop_assert_eq!((got.source_type, got.name.as_str()), (SourceType::Social, "Facebook"));
            let got = from(&format!("https://{sub}.google.com.au/"));
            prop_assert!(got.name.starts_with("Google") || got.name == "Gmail", "{:?}", got);
        }
    }
}
