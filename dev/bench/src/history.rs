//! A site's history for `just bench app`: 90 days of one site's visits, deterministic from a seed.
//!
//! What makes it realistic enough to measure queries on: Zipf-distributed pages (thousands of paths), referrers and
//! campaigns; people who come back (a Zipf share of the population returns often), most cookieless (a visitor id
//! that changes every UTC day, as the hub's daily salt makes it) and some identified or with the site's own id;
//! sessions of 1 to 20 events with page-leave pings carrying durations; custom events with props; a weekly and a
//! daily rhythm; a 4-step signup funnel some sessions walk. Bots are not written: the hub drops them before any
//! worker sees them.
//!
//! Sessions get ids minted as `start second << 32 | 32 random bits`, the candidate hub change measured by the
//! bench (a session-id range is then a time range); the production query shapes do not rely on it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use tidemark_shared::job::{Agent, EventJob, EventType, Geo, Utm, VisitorKind};
use uuid::Uuid;

pub const HOST: &str = "www.example.com";
pub const FUNNEL: [&str; 3] = ["/", "/pricing", "/signup"];
pub const FUNNEL_EVENT: &str = "Signup";
const DAY_MS: i64 = 86_400_000;

/// Samples ranks 0..n with probability proportional to 1 / (rank + 1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf = Vec::with_capacity(n);
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let x: f64 = rng.random();
        self.cdf.partition_point(|&c| c < x).min(self.cdf.len() - 1)
    }
}

/// Picks from a fixed list by weight.
fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

/// Country, weight, regions (ISO 3166-2) and cities.
const COUNTRIES: &[(&str, u32, &[&str], &[&str])] = &[
    (
        "US",
        300,
        &["US-CA", "US-NY", "US-TX", "US-WA", "US-IL"],
        &["San Francisco", "New York", "Austin", "Seattle", "Chicago"],
    ),
    ("DE", 110, &["DE-BE", "DE-BY", "DE-HH", "DE-NW"], &["Berlin", "Munich", "Hamburg", "Cologne"]),
    ("GB", 80, &["GB-ENG", "GB-SCT"], &["London", "Manchester", "Edinburgh"]),
    ("FR", 60, &["FR-IDF", "FR-ARA"], &["Paris", "Lyon"]),
    ("IN", 60, &["IN-KA", "IN-MH", "IN-DL"], &["Bengaluru", "Mumbai", "New Delhi"]),
    ("CA", 40, &["CA-ON", "CA-BC", "CA-QC"], &["Toronto", "Vancouver", "Montreal"]),
    ("NL", 30, &["NL-NH", "NL-ZH"], &["Amsterdam", "Rotterdam"]),
    ("BR", 30, &["BR-SP", "BR-RJ"], &["Sao Paulo", "Rio de Janeiro"]),
    ("JP", 30, &["JP-13", "JP-27"], &["Tokyo", "Osaka"]),
    ("PL", 20, &["PL-14", "PL-12"], &["Warsaw", "Krakow"]),
    ("ES", 20, &["ES-MD", "ES-CT"], &["Madrid", "Barcelona"]),
    ("SE", 15, &["SE-AB"], &["Stockholm"]),
    ("AU", 15, &["AU-NSW", "AU-VIC"], &["Sydney", "Melbourne"]),
    ("IT", 15, &["IT-25", "IT-62"], &["Milan", "Rome"]),
    ("CH", 10, &["CH-ZH"], &["Zurich"]),
    ("AT", 10, &["AT-9"], &["Vienna"]),
    ("CN", 10, &["CN-BJ"], &["Beijing"]),
    ("KR", 8, &["KR-11"], &["Seoul"]),
    ("UA", 8, &["UA-30"], &["Kyiv"]),
    ("FI", 6, &["FI-18"], &["Helsinki"]),
    ("NO", 5, &["NO-03"], &["Oslo"]),
    ("", 8, &[""], &[""]),
];

/// Browser, version, OS, OS version, device type.
type AgentFields = (&'static str, &'static str, &'static str, &'static str, &'static str);

/// Each agent with its weight.
const AGENTS: &[(AgentFields, u32)] = &[
    (("Chrome", "130", "Windows", "10", "desktop"), 260),
    (("Chrome", "130", "Mac", "10.15", "desktop"), 120),
    (("Safari", "18.1", "Mac", "10.15", "desktop"), 70),
    (("Firefox", "132", "Windows", "10", "desktop"), 50),
    (("Firefox", "131", "GNU/Linux", "", "desktop"), 30),
    (("Edge", "129", "Windows", "10", "desktop"), 50),
    (("Chrome", "128", "GNU/Linux", "", "desktop"), 30),
    (("Safari", "18.1", "iOS", "18.1", "mobile"), 160),
    (("Chrome", "130", "Android", "14", "mobile"), 130),
    (("Samsung Internet", "26.0", "Android", "13", "mobile"), 25),
    (("Safari", "17.7", "iPadOS", "17.7", "tablet"), 25),
    (("Chrome", "129", "Android", "13", "tablet"), 10),
    (("Opera", "114", "Windows", "10", "desktop"), 10),
    (("Chrome", "130", "Chrome OS", "14541", "desktop"), 10),
];

/// The first few referrers by hand (name, URL, source type); a long tail of blogs after them.
const REFERRERS: &[(&str, &str, &str)] = &[
    ("", "", "direct"),
    ("Google", "https://www.google.com/", "search"),
    ("DuckDuckGo", "https://duckduckgo.com/", "search"),
    ("Bing", "https://www.bing.com/", "search"),
    ("Hacker News", "https://news.ycombinator.com/", "social"),
    ("Reddit", "https://www.reddit.com/r/selfhosted/", "social"),
    ("Twitter", "https://t.co/", "social"),
    ("GitHub", "https://github.com/", "social"),
    ("LinkedIn", "https://www.linkedin.com/", "social"),
    ("Ecosia", "https://www.ecosia.org/", "search"),
];
const LONG_TAIL_REFERRERS: usize = 600;

const UTM_SOURCES: &[(&str, &str, u32)] = &[
    ("newsletter", "email", 40),
    ("google", "cpc", 25),
    ("twitter", "social", 10),
    ("linkedin", "social", 8),
    ("producthunt", "referral", 5),
    ("partner", "referral", 12),
];

const CUSTOM: &[(&str, u32)] =
    &[("Download", 40), ("Outbound Link: Click", 35), ("Purchase", 10), ("File Download", 15)];

/// Everything about the site that does not change from day to day.
pub struct Site {
    pub project_id: Uuid,
    pub paths: Vec<String>,
    page_rank: Zipf,
    referrer_rank: Zipf,
    people: Zipf,
    people_count: usize,
    seed: u64,
}

impl Site {
    /// A site sized for `events` events: about one person per 15 events, 3 000 paths.
    pub fn new(seed: u64, events: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let project_id = Uuid::from_u128(rng.random::<u128>() & !(0xf << 76) | (4 << 76));
        let mut paths: Vec<String> = ["/", "/pricing", "/blog", "/docs", "/signup", "/about", "/features", "/login"]
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        let kinds = ["/blog/post", "/docs/guide", "/products/item", "/changelog/v", "/help/article"];
        for i in 0.. {
            if paths.len() >= 3_000 {
                break;
            }
            paths.push(format!("{}-{i}", kinds[i % kinds.len()]));
        }
        let people_count = (events / 15).max(100) as usize;
        Self {
            project_id,
            paths,
            page_rank: Zipf::new(3_000, 1.1),
            referrer_rank: Zipf::new(REFERRERS.len() + LONG_TAIL_REFERRERS, 1.0),
            people: Zipf::new(people_count, 0.6),
            people_count,
            seed,
        }
    }

    /// The first day (midnight, ms) of `days` days that end at `end_ms` (a midnight).
    pub fn days(end_ms: i64, days: u32) -> impl Iterator<Item = i64> {
        (0..i64::from(days)).rev().map(move |d| end_ms - (d + 1) * DAY_MS)
    }
}

/// One person: who they are does not change; their visitor id does, daily, unless the site knows them.
struct Person {
    geo: Arc<Geo>,
    agent: Arc<Agent>,
    screen_width: u16,
    kind: VisitorKind,
    user_id: String,
    stable_id: u64,
}

fn person(site: &Site, index: usize) -> Person {
    // Each person has their own stream so that who they are does not depend on the order of generation.
    let mut rng = StdRng::seed_from_u64(site.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let (country, _, regions, cities) = weighted_country(&mut rng);
    let at = rng.random_range(0..regions.len());
    let geo = Geo { country: (*country).to_owned(), region: regions[at].to_owned(), city: cities[at].to_owned() };
    let (browser, version, os, os_version, device) = *weighted(&mut rng, AGENTS);
    let agent = Agent {
        browser: browser.to_owned(),
        browser_version: version.to_owned(),
        os: os.to_owned(),
        os_version: os_version.to_owned(),
        device: device.to_owned(),
    };
    let screen_width = match device {
        "mobile" => 390,
        "tablet" => 820,
        _ => 1440,
    };
    let roll: f64 = rng.random();
    let (kind, user_id) = if roll < 0.03 {
        (VisitorKind::Anonymous, format!("user-{index}"))
    } else if roll < 0.10 {
        (VisitorKind::Anonymous, String::new())
    } else {
        (VisitorKind::Daily, String::new())
    };
    Person { geo: Arc::new(geo), agent: Arc::new(agent), screen_width, kind, user_id, stable_id: rng.random() }
}

fn weighted_country(
    rng: &mut impl Rng,
) -> &'static (&'static str, u32, &'static [&'static str], &'static [&'static str]) {
    let total: u32 = COUNTRIES.iter().map(|c| c.1).sum();
    let mut x = rng.random_range(0..total);
    for c in COUNTRIES {
        if x < c.1 {
            return c;
        }
        x -= c.1;
    }
    &COUNTRIES[0]
}

/// Relative traffic of a day: weekends lower, a slow growth over the period.
fn day_weight(day_ms: i64, index: u32, days: u32) -> f64 {
    // 1970-01-01 was a Thursday: day 2 and 3 of the week counted from it are Saturday and Sunday.
    let weekday = (day_ms / DAY_MS).rem_euclid(7);
    let week = if weekday == 2 || weekday == 3 { 0.65 } else { 1.0 };
    week * (0.85 + 0.3 * f64::from(index) / f64::from(days.max(1)))
}

/// Traffic per UTC hour: low at night in Europe and America, peak in the European afternoon.
const HOURS: [u32; 24] =
    [30, 25, 20, 18, 20, 28, 40, 55, 70, 80, 85, 88, 90, 92, 95, 98, 96, 90, 80, 70, 60, 50, 42, 35];

/// One session's events and the id it is filed under.
pub struct Visit {
    pub session_id: u64,
    pub events: Vec<EventJob>,
}

/// Writes the days one at a time, each as a list of visits, until `events` events are written in all.
pub struct History {
    pub site: Site,
    rng: StdRng,
    days: Vec<(i64, u64)>,
    next_day: usize,
}

impl History {
    pub fn new(seed: u64, events: u64, end_ms: i64, days: u32) -> Self {
        let site = Site::new(seed, events);
        let day_starts: Vec<i64> = Site::days(end_ms, days).collect();
        let weights: Vec<f64> = day_starts.iter().enumerate().map(|(i, d)| day_weight(*d, i as u32, days)).collect();
        let total: f64 = weights.iter().sum();
        let mut left = events;
        let mut quotas = Vec::new();
        for (i, (day, w)) in day_starts.iter().zip(&weights).enumerate() {
            let quota = if i + 1 == day_starts.len() { left } else { ((events as f64) * w / total) as u64 };
            left = left.saturating_sub(quota);
            quotas.push((*day, quota));
        }
        Self { site, rng: StdRng::seed_from_u64(seed.wrapping_add(1)), days: quotas, next_day: 0 }
    }

    /// The next day's visits, or `None` after the last day. A day holds its quota of events, or a few more (the
    /// last visit is not cut).
    pub fn next_day(&mut self) -> Option<Vec<Visit>> {
        let (day_ms, quota) = *self.days.get(self.next_day)?;
        self.next_day += 1;
        let mut visits = Vec::new();
        let mut written = 0;
        while written < quota {
            let visit = self.visit(day_ms);
            written += visit.events.len() as u64;
            visits.push(visit);
        }
        Some(visits)
    }

    fn visit(&mut self, day_ms: i64) -> Visit {
        let plan = self.plan();
        let rng = &mut self.rng;
        let site = &self.site;
        let hour = *weighted(rng, &HOURS.iter().enumerate().map(|(h, w)| (h as i64, *w)).collect::<Vec<_>>());
        let start_ms = day_ms + hour * 3_600_000 + rng.random_range(0..3_600_000);
        // The population's returning visitors: a person index drawn by Zipf, shuffled so rank is not identity.
        let index = site.people.sample(rng).wrapping_mul(2_654_435_761) % site.people_count;
        let who = person(site, index);
        let visitor_id = match who.kind {
            VisitorKind::Daily => who.stable_id ^ ((day_ms / DAY_MS) as u64).wrapping_mul(0xff51_afd7_ed55_8ccd),
            _ => who.stable_id,
        };
        let (referrer_name, referrer, source) = referrer(rng, site);
        let utm = if rng.random_bool(0.10) {
            let (s, m, _) = UTM_SOURCES[{
                let items: Vec<(usize, u32)> = UTM_SOURCES.iter().enumerate().map(|(i, u)| (i, u.2)).collect();
                *weighted(rng, &items)
            }];
            Utm {
                source: s.to_owned(),
                medium: m.to_owned(),
                campaign: format!("campaign-{}", rng.random_range(0..12)),
                term: String::new(),
                content: String::new(),
            }
        } else {
            Utm::default()
        };
        // Arrival is what sessions run on; the hub mints the id when the first job arrives.
        let first_received = start_ms + rng.random_range(30..400);
        let session_id = (((first_received / 1000) as u64) << 32) | u64::from(rng.random::<u32>() | 1);
        let mut events = Vec::with_capacity(plan.len());
        let mut at = start_ms;
        for (i, step) in plan.iter().enumerate() {
            let gap = rng.random_range(8_000..180_000);
            let (event_type, path, name, props, duration_ms) = match step {
                Step::Page(path) => (EventType::Pageview, path.clone(), "pageview".to_owned(), Vec::new(), 0),
                Step::Leave(path, dur) => {
                    (EventType::Pageleave, path.clone(), "pageleave".to_owned(), Vec::new(), *dur)
                }
                Step::Custom(path, name, props) => (EventType::Custom, path.clone(), name.clone(), props.clone(), 0),
            };
            let entry = i == 0;
            let received_ms = if entry { first_received } else { at + rng.random_range(30..400) };
            let query = if entry && !utm.source.is_empty() {
                format!("?utm_source={}&utm_medium={}&utm_campaign={}", utm.source, utm.medium, utm.campaign)
            } else {
                String::new()
            };
            events.push(EventJob {
                project_id: site.project_id,
                event_id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                event_type,
                name,
                ts_ms: at,
                received_ms,
                visitor_id,
                visitor_kind: who.kind,
                user_id: who.user_id.clone(),
                url: format!("https://{HOST}{path}{query}"),
                host: HOST.to_owned(),
                title: format!("Example - {path}"),
                path,
                referrer: if entry { referrer.clone() } else { String::new() },
                referrer_host: if entry { host_of(&referrer) } else { String::new() },
                referrer_source: if entry { source.to_owned() } else { String::new() },
                referrer_name: if entry { referrer_name.clone() } else { String::new() },
                utm: if entry { utm.clone() } else { Utm::default() },
                geo: who.geo.clone(),
                agent: who.agent.clone(),
                screen_width: who.screen_width,
                duration_ms,
                props,
            });
            at += match step {
                Step::Leave(_, dur) => i64::from(*dur) / 4,
                _ => gap,
            };
        }
        Visit { session_id, events }
    }

    /// The steps of one session: 1 to 20 events, pageviews mostly followed by their page-leave ping.
    fn plan(&mut self) -> Vec<Step> {
        let rng = &mut self.rng;
        let site = &self.site;
        let page = |rng: &mut StdRng| site.paths[site.page_rank.sample(rng)].clone();
        let mut pages: Vec<String> = Vec::new();
        let mut signup = false;
        if rng.random_bool(0.05) {
            // The signup funnel: each step reached by part of those who reached the one before.
            pages.push(FUNNEL[0].to_owned());
            if rng.random_bool(0.6) {
                pages.push(FUNNEL[1].to_owned());
                if rng.random_bool(0.45) {
                    pages.push(FUNNEL[2].to_owned());
                    signup = rng.random_bool(0.5);
                }
            }
        } else {
            let views = if rng.random_bool(0.45) { 1 } else { 2 + (rng.random::<f64>().powi(2) * 8.0) as usize };
            for _ in 0..views {
                pages.push(page(rng));
            }
        }
        let mut steps = Vec::new();
        for (i, path) in pages.iter().enumerate() {
            steps.push(Step::Page(path.clone()));
            if signup && i + 1 == pages.len() {
                steps.push(Step::Custom(path.clone(), FUNNEL_EVENT.to_owned(), vec![("plan".into(), "team".into())]));
            } else if rng.random_bool(0.06) {
                let name = *weighted(rng, CUSTOM);
                let props = match name {
                    "Outbound Link: Click" => {
                        vec![("url".into(), format!("https://github.com/example/{}", rng.random_range(0..40)))]
                    }
                    "Purchase" => vec![("plan".into(), ["team", "business"][rng.random_range(0..2)].into())],
                    _ => vec![("file".into(), format!("release-{}.tar.gz", rng.random_range(0..20)))],
                };
                steps.push(Step::Custom(path.clone(), name.to_owned(), props));
            }
            if rng.random_bool(0.8) {
                steps.push(Step::Leave(path.clone(), rng.random_range(2_000..300_000)));
            }
        }
        steps.truncate(20);
        steps
    }
}

enum Step {
    Page(String),
    Leave(String, u32),
    Custom(String, String, Vec<(String, String)>),
}

fn referrer(rng: &mut StdRng, site: &Site) -> (String, String, &'static str) {
    // Direct is the single largest source, as on most sites: half of the visits before ranks are drawn.
    if rng.random_bool(0.35) {
        return (String::new(), String::new(), "direct");
    }
    let rank = site.referrer_rank.sample(rng);
    match REFERRERS.get(rank) {
        Some((name, url, source)) => ((*name).to_owned(), (*url).to_owned(), source),
        None => {
            let n = rank - REFERRERS.len();
            (String::new(), format!("https://blog{n}.example.net/posts/{}", n % 7), "referral")
        }
    }
}

fn host_of(url: &str) -> String {
    url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_history() {
        let day = |seed| {
            let mut h = History::new(seed, 20_000, 1_796_083_200_000, 2);
            let visits = h.next_day().unwrap();
            visits.iter().flat_map(|v| v.events.iter().map(|e| (v.session_id, e.event_id))).collect::<Vec<_>>()
        };
        assert_eq!(day(7), day(7));
        assert_ne!(day(7), day(8));
    }

    #[test]
    fn sessions_hold_one_to_twenty_events_and_ids_carry_their_start() {
        let mut h = History::new(1, 50_000, 1_796_083_200_000, 3);
        let mut total = 0;
        while let Some(visits) = h.next_day() {
            for v in visits {
                assert!((1..=20).contains(&v.events.len()));
                assert_eq!(v.session_id >> 32, (v.events[0].received_ms / 1000) as u64);
                total += v.events.len();
            }
        }
        assert!((50_000..51_000).contains(&total), "{total}");
    }
}
