//! What the request itself tells us, apart from its body.

use crate::client_ip::TrustedProxies;
use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};
use std::net::IpAddr;

/// The client IP lives only here, in memory.
pub(super) struct RequestContext<'a> {
    pub headers: &'a HeaderMap,
    pub header_token: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub ip: IpAddr,
    pub user_agent: &'a str,
}

impl<'a> RequestContext<'a> {
    pub fn new(req: &'a HttpRequest, proxies: &TrustedProxies) -> Self {
        let headers = req.headers();
        let header_token = header_str(headers, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let peer = req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let user_agent = header_str(headers, header::USER_AGENT).unwrap_or("");
        Self {
            headers,
            header_token,
            origin: header_str(headers, header::ORIGIN),
            ip: proxies.client_ip(peer, headers),
            user_agent: truncate_bytes(user_agent, 512),
        }
    }
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_agents_are_cut_on_a_char_boundary() {
        let ua = "é".repeat(300);
        assert!(truncate_bytes(&ua, 512).len() <= 512);
        assert_eq!(truncate_bytes("short", 512), "short");
    }
}
