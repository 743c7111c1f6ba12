//! Splitting page and referrer URLs into the parts analytics groups by, server-side, so every client agrees, and
//! cutting from the URLs that are stored what analytics has no use for: query parameters carry e-mail addresses,
//! password-reset and session tokens as often as campaign tags, so only the UTM tags and an allow-list stay
//! ([`QueryAllowList`]), and fragments (`#access_token=…` in OAuth redirects) go.

use url::Url;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageParts {
    pub host: String,
    pub path: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
}

const MAX_UTM: usize = 256;

pub fn page_parts(url: &Url) -> PageParts {
    let mut parts = PageParts {
        host: normalize_host(url.host_str().unwrap_or_default()),
        path: url.path().to_owned(),
        ..PageParts::default()
    };
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "utm_source" => &mut parts.utm_source,
            "utm_medium" => &mut parts.utm_medium,
            "utm_campaign" => &mut parts.utm_campaign,
            "utm_term" => &mut parts.utm_term,
            "utm_content" => &mut parts.utm_content,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = value.trim().chars().take(MAX_UTM).collect();
        }
    }
    parts
}

/// Which query parameters a stored URL keeps, besides the five UTM tags that are always kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAllowList {
    /// Keep every parameter and the fragment (the operator opted out of stripping).
    Everything,
    /// Keep these parameter names (compared exactly) and the UTM tags.
    Names(Vec<String>),
}

/// The default allow-list: besides UTM tags, the referral tags sites use to say where a visit came from.
pub const DEFAULT_QUERY_ALLOWLIST: &str = "ref,source";

impl QueryAllowList {
    /// From the config value: comma-separated names, or `*` for everything.
    pub fn parse(raw: &str) -> Self {
        let names: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if names.iter().any(|n| n == "*") { Self::Everything } else { Self::Names(names) }
    }

    fn keeps(&self, name: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Names(names) => {
                name.starts_with("utm_") && UTM_TAGS.contains(&name) || names.iter().any(|n| n == name)
            }
        }
    }

    /// The URL as stored: its query reduced to the kept parameters (in their order), no fragment. Takes the URL:
    /// most have neither query nor fragment, and those become the stored text without a copy.
    pub fn stored(&self, mut url: Url) -> String {
        if matches!(self, Self::Everything) {
            return url.into();
        }
        url.set_fragment(None);
        // Most queries hold only campaign tags: then the URL is stored as it came, without re-encoding its query.
        if url.query().is_some() && !url.query_pairs().all(|(k, _)| self.keeps(&k)) {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| self.keeps(k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        url.into()
    }
}

const UTM_TAGS: [&str; 5] = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];

/// Lower-case, without a leading `www.`: `www.example.com` and `example.com` are one site in reports.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match host.strip_prefix("www.") {
        Some(rest) if rest.contains('.') => rest.to_owned(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_path_and_utm() {
        let url =
            Url::parse("https://WWW.Example.com/pricing?utm_source=news&utm_medium=email&utm_campaign=fall%20sale&x=1")
                .unwrap();
        let p = page_parts(&url);
        assert_eq!(p.host, "example.com");
        assert_eq!(p.path, "/pricing");
        assert_eq!((p.utm_source.as_str(), p.utm_medium.as_str()), ("news", "email"));
        assert_eq!(p.utm_campaign, "fall sale");
        assert_eq!(p.utm_term, "");
    }

    #[test]
    fn the_first_utm_value_wins_and_long_ones_are_cut() {
        let long = "x".repeat(400);
        let url = Url::parse(&format!("https://a.io/?utm_source=one&utm_source=two&utm_term={long}")).unwrap();
        let p = page_parts(&url);
        assert_eq!(p.utm_source, "one");
        assert_eq!(p.utm_term.chars().count(), MAX_UTM);
    }

    #[test]
    fn stored_urls_keep_utm_tags_and_the_allow_list_only() {
        let allow = QueryAllowList::parse(DEFAULT_QUERY_ALLOWLIST);
        let url = Url::parse(
            "https://a.io/reset?email=ann%40example.com&token=s3cret&utm_source=news&ref=hn&utm_campaign=fall#access_token=x",
        )
        .unwrap();
        assert_eq!(allow.stored(url.clone()), "https://a.io/reset?utm_source=news&ref=hn&utm_campaign=fall");
        let only_secrets = Url::parse("https://a.io/p?session=abc").unwrap();
        assert_eq!(allow.stored(only_secrets), "https://a.io/p", "no dangling ?");
        assert_eq!(allow.stored(Url::parse("https://a.io/p").unwrap()), "https://a.io/p");
        let custom = QueryAllowList::parse(" page , q ");
        assert_eq!(
            custom.stored(Url::parse("https://a.io/s?q=shoes&page=2&email=x").unwrap()),
            "https://a.io/s?q=shoes&page=2"
        );
        assert_eq!(custom.stored(Url::parse("https://a.io/s?utm_sourcex=1").unwrap()), "https://a.io/s");
        let all = QueryAllowList::parse("*");
        assert_eq!(all.stored(url.clone()), url.as_str());
    }

    proptest::proptest! {
        #[test]
        fn stored_urls_never_keep_an_unlisted_parameter(
            keys in proptest::collection::vec("[a-z_]{1,10}", 0..6),
            values in proptest::collection::vec("[ -~]{0,12}", 6),
        ) {
            let mut url = Url::parse("https://a.io/x").unwrap();
            for (k, v) in keys.iter().zip(&values) {
                url.query_pairs_mut().append_pair(k, v);
            }
            let stored = Url::parse(&QueryAllowList::parse(DEFAULT_QUERY_ALLOWLIST).stored(url)).unwrap();
            for (k, _) in stored.query_pairs() {
                proptest::prop_assert!(UTM_TAGS.contains(&k.as_ref()) || k == "ref" || k == "source", "{k} kept");
            }
            proptest::prop_assert_eq!(stored.path(), "/x");
            proptest::prop_assert!(stored.fragment().is_none());
        }

        #[test]
        fn never_panics_and_keeps_the_path(path in "(/[a-zA-Z0-9%._~-]{0,12}){0,4}", query in "[ -~]{0,80}") {
            if let Ok(url) = Url::parse(&format!("https://www.Example.org{path}?{query}")) {
                let p = page_parts(&url);
                proptest::prop_assert_eq!(p.host, "example.org");
                proptest::prop_assert_eq!(p.path, url.path());
                proptest::prop_assert!(p.utm_source.chars().count() <= MAX_UTM);
            }
        }

        #[test]
        fn utm_values_round_trip(value in "[a-zA-Z0-9 _.-]{1,60}") {
            let mut url = Url::parse("https://a.io/x").unwrap();
            url.query_pairs_mut().append_pair("utm_campaign", &value);
            proptest::prop_assert_eq!(page_parts(&url).utm_campaign, value.trim());
        }

        #[test]
        fn normalized_hosts_are_lower_case_without_www(host in "(www\\.)?[a-zA-Z][a-zA-Z0-9-]{0,15}(\\.[a-zA-Z]{2,6}){1,2}") {
            let n = normalize_host(&host);
            proptest::prop_assert_eq!(n.clone(), n.to_ascii_lowercase());
            proptest::prop_assert!(!n.starts_with("www."));
        }
    }
}
