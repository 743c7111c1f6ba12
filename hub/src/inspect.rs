//! `hub inspect-ua`: classifies user agents read one per line, through the same [`UaClassifier::classify`] and
//! [`prefetch_reason`] calls ingestion makes, so an operator can see why a visitor was or was not counted.

use crate::bots::prefetch_reason;
use crate::classifier::UaClassifier;
use crate::client_hints::ClientHints;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use anyhow::Context;
use serde::Serialize;
use std::io::{BufRead, Write};

#[derive(Serialize)]
struct Line<'a> {
    ua: &'a str,
    bot: bool,
    reason: Option<&'static str>,
    prefetch: Option<&'static str>,
    browser: &'a str,
    browser_version: &'a str,
    os: &'a str,
    os_version: &'a str,
    device: &'a str,
}

/// Writes one JSON line per non-empty input line. `extra_headers` stand for the request headers ingestion would
/// see besides `User-Agent`: client hints and `Sec-Purpose` and its kin.
pub fn run(input: impl BufRead, mut output: impl Write, extra_headers: &[(String, String)]) -> anyhow::Result<()> {
    let headers = header_map(extra_headers)?;
    let hints = ClientHints::from_headers(&headers);
    let prefetch = prefetch_reason(&headers);
    let classifier = UaClassifier::new();
    for (number, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading line {}", number + 1))?;
        // Logs hold the odd invalid byte; the user agent is still worth a verdict.
        let line = String::from_utf8_lossy(&line);
        let ua = line.strip_suffix('\r').unwrap_or(&line);
        if ua.is_empty() {
            continue;
        }
        let verdict = classifier.classify(ua, &hints);
        let agent = &verdict.agent;
        let record = Line {
            ua,
            bot: verdict.bot.is_some(),
            reason: verdict.bot.map(|r| r.as_str()),
            prefetch,
            browser: &agent.browser,
            browser_version: &agent.browser_version,
            os: &agent.os,
            os_version: &agent.os_version,
            device: &agent.device,
        };
        serde_json::to_writer(&mut output, &record)?;
        output.write_all(b"\n").context("writing the output")?;
    }
    output.flush().context("writing the output")
}

fn header_map(extra_headers: &[(String, String)]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra_headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("{:?} is not a valid header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("the value of {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Parses a `--header 'Name: value'` argument.
pub fn parse_header_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once(':').ok_or_else(|| format!("expected 'Name: value', got {arg:?}"))?;
    HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn inspect(input: &str, headers: &[(&str, &str)]) -> Vec<Value> {
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let mut out = Vec::new();
        run(input.as_bytes(), &mut out, &headers).unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn writes_one_json_line_per_user_agent() {
        let input = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1\r\n\
                     \n\
                     curl/8.5.0\n\
                     Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let lines = inspect(input, &[]);
        assert_eq!(lines.len(), 3, "the empty line is skipped and the last line needs no newline");
        assert_eq!(
            lines[0],
            json!({
                "ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "bot": false, "reason": null, "prefetch": null,
                "browser": "Safari", "browser_version": "17.5", "os": "iOS", "os_version": "17.5", "device": "mobile",
            })
        );
        assert_eq!(
            (&lines[1]["ua"], &lines[1]["bot"], &lines[1]["reason"]),
            (&json!("curl/8.5.0"), &json!(true), &json!("cli"))
        );
        assert_eq!(lines[2]["reason"], "crawler");
        let keys: Vec<&str> = lines[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["ua", "bot", "reason", "prefetch", "browser", "browser_version", "os", "os_version", "device"]
        );
    }

    #[test]
    fn headers_feed_client_hints_and_prefetch() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        let lines = inspect(
            chrome,
            &[
                ("Sec-CH-UA", r#""Microsoft Edge";v="131", "Chromium";v="131", "Not_A Brand";v="24""#),
                ("sec-ch-ua-platform", r#""Windows""#),
                ("Sec-CH-UA-Platform-Version", r#""15.0.0""#),
                ("Sec-Purpose", "prefetch;prerender"),
            ],
        );
        assert_eq!(lines[0]["browser"], "Edge");
        assert_eq!(lines[0]["os_version"], "11");
        assert_eq!(lines[0]["prefetch"], "prerender");
        assert_eq!(lines[0]["bot"], false);
    }

    #[test]
    fn invalid_utf8_and_bad_headers() {
        let mut out = Vec::new();
        run(&b"Mozilla/5.0 (X11; Linux x86_64) \xff\n"[..], &mut out, &[]).unwrap();
        let line: Value = serde_json::from_slice(out.trim_ascii_end()).unwrap();
        assert_eq!(line["reason"], "malformed_ua");

        let bad = [("bad header".to_owned(), "x".to_owned())];
        assert!(run(&b"curl/8\n"[..], Vec::new(), &bad).is_err());
    }

    #[test]
    fn header_arguments() {
        assert_eq!(parse_header_arg("Sec-CH-UA-Mobile: ?1"), Ok(("Sec-CH-UA-Mobile".into(), "?1".into())));
        assert_eq!(
            parse_header_arg(r#"Sec-CH-UA: "Chromium";v="130""#),
            Ok(("Sec-CH-UA".into(), r#""Chromium";v="130""#.into()))
        );
        assert!(parse_header_arg("no colon").is_err());
        assert!(parse_header_arg("bad name: x").is_err());
    }
}
