//! Splitting page and referrer URLs into the parts analytics groups by, server-side, so every client agrees.

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

    proptest::proptest! {
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
