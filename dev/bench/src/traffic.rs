//! Realistic ingest traffic: varied browsers and devices, public client IPs, pages with and without campaign
//! parameters, referrers, props, bodies of 300 to 600 bytes, and about 2% bots.

use rand::Rng;
use rand::seq::IndexedRandom;

pub const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/130.0.6723.90 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.86 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/114.0.0.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
];

pub const BOTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/130.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
];

const PATHS: &[&str] =
    &["/", "/pricing", "/docs/getting-started", "/blog/why-cookieless-analytics", "/about", "/signup"];
const REFERRERS: &[&str] = &[
    "",
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/item?id=4242",
    "https://t.co/abc",
    "https://www.reddit.com/r/selfhosted/",
    "https://duckduckgo.com/",
];
const CAMPAIGNS: &[&str] =
    &["", "", "", "?utm_source=newsletter&utm_medium=email&utm_campaign=fall", "?utm_source=google&utm_medium=cpc"];

/// One request of the mix.
#[derive(Debug, Clone)]
pub struct Request {
    pub user_agent: &'static str,
    pub client_ip: String,
    pub body: String,
}

pub fn public_ip(rng: &mut impl Rng) -> String {
    loop {
        let a: u8 = rng.random_range(1..=223);
        if ![10, 100, 127, 169, 172, 192, 198, 203].contains(&a) {
            return format!("{a}.{}.{}.{}", rng.random::<u8>(), rng.random::<u8>(), rng.random_range(1..255u8));
        }
    }
}

/// `n` requests; a body is padded with a realistic title so its size lands between 300 and 600 bytes.
pub fn mix(n: usize, bot_share: f64) -> Vec<Request> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let user_agent = if rng.random_bool(bot_share) { BOTS.choose(&mut rng) } else { BROWSERS.choose(&mut rng) };
            let path = PATHS.choose(&mut rng).unwrap();
            let campaign = CAMPAIGNS.choose(&mut rng).unwrap();
            let title_len = rng.random_range(60..300);
            let title: String =
                "Tidemark analytics for teams who respect their visitors ".chars().cycle().take(title_len).collect();
            let referrer = *REFERRERS.choose(&mut rng).unwrap();
            let screen_width = *[390, 414, 768, 1280, 1440, 1920].choose(&mut rng).unwrap();
            let plan = *["free", "team", "enterprise"].choose(&mut rng).unwrap();
            let ab = rng.random_range(0..4);
            let body = serde_json::json!({
                "type": "pageview",
                "url": format!("https://www.example.com{path}{campaign}"),
                "referrer": referrer,
                "title": title.trim_end(),
                "screen_width": screen_width,
                "props": {"plan": plan, "ab": ab},
            })
            .to_string();
            Request { user_agent: user_agent.unwrap(), client_ip: public_ip(&mut rng), body }
        })
        .collect()
}

/// A wrk Lua script cycling through the requests with their user agent and forwarded client IP.
pub fn wrk_script(requests: &[Request], token: &str) -> String {
    let mut lua = String::from("local reqs = {}\nlocal n = 0\nlocal i = 0\ninit = function(args)\n");
    for r in requests {
        lua.push_str(&format!(
            "  n = n + 1\n  reqs[n] = wrk.format(\"POST\", \"/v1/event\", {{[\"Content-Type\"]=\"application/json\", \
             [\"Authorization\"]=\"Bearer {token}\", [\"User-Agent\"]={ua}, [\"X-Forwarded-For\"]=\"{ip}\"}}, {body})\n",
            ua = lua_string(r.user_agent),
            ip = r.client_ip,
            body = lua_string(&r.body),
        ));
    }
    lua.push_str("  i = math.random(n)\nend\nrequest = function()\n  i = i % n + 1\n  return reqs[i]\nend\n");
    lua
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
