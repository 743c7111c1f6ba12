//! Reading a request body within the hub's size limit. Server-side senders may compress their batches with
//! `Content-Encoding: gzip`; the limit holds for the body as parsed, so a gzip body is read up to the limit and
//! inflated only up to the limit: a few kilobytes that inflate to gigabytes cost no more memory than a plain body.

use crate::error::IngestError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web;
use futures_util::StreamExt;
use std::io::Read;

/// How the body's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// From `Content-Encoding`; anything but gzip or identity is refused (415) rather than parsed as JSON.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, IngestError> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else { return Ok(Self::Identity) };
        let value = value.to_str().unwrap_or("").trim();
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Ok(Self::Identity)
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip)
        } else {
            Err(IngestError::UnsupportedEncoding { encoding: value.chars().take(64).collect() })
        }
    }
}

/// The body, decoded, refused with 413 past `limit` bytes (compressed or inflated).
pub async fn read(headers: &HeaderMap, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, IngestError> {
    let encoding = Encoding::from_headers(headers)?;
    let too_large = || IngestError::TooLarge { what: "the request body".into(), limit };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| IngestError::BadJson(format!("could not read the body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    match encoding {
        Encoding::Identity => Ok(bytes),
        Encoding::Gzip => inflate(&bytes, limit),
    }
}

/// Inflates a gzip body (several concatenated members too), stopping one byte past `limit`.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let mut inflated = Vec::with_capacity((compressed.len() * 4).min(limit));
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| IngestError::BadEncoding(format!("the request body is not valid gzip: {e}")))?;
    if inflated.len() > limit {
        return Err(IngestError::TooLarge { what: "the decompressed request body".into(), limit });
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn encoding(value: &str) -> Result<Encoding, IngestError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_str(value).unwrap());
        Encoding::from_headers(&headers)
    }

    #[test]
    fn encodings_are_gzip_identity_or_refused() {
        assert_eq!(Encoding::from_headers(&HeaderMap::new()).unwrap(), Encoding::Identity);
        assert_eq!(encoding("identity").unwrap(), Encoding::Identity);
        assert_eq!(encoding(" GZIP ").unwrap(), Encoding::Gzip);
        assert_eq!(encoding("x-gzip").unwrap(), Encoding::Gzip);
        for refused in ["br", "deflate", "zstd", "gzip, br"] {
            assert!(matches!(encoding(refused), Err(IngestError::UnsupportedEncoding { .. })), "{refused}");
        }
    }

    #[test]
    fn gzip_bodies_inflate_whole_and_concatenated() {
        let body = br#"{"type":"pageview","url":"https://example.com/"}"#;
        assert_eq!(inflate(&gzip(body), 1024).unwrap(), body);
        let (head, tail) = body.split_at(10);
        assert_eq!(inflate(&[gzip(head), gzip(tail)].concat(), 1024).unwrap(), body);
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        // 10 MB of zeros gzip to about 10 KB: refused after inflating one byte past the limit, not all of it.
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(inflate(&bomb, 4096), Err(IngestError::TooLarge { limit: 4096, .. })));
        assert_eq!(inflate(&gzip(&[7u8; 4096]), 4096).unwrap().len(), 4096);
    }

    #[test]
    fn corrupt_gzip_is_a_clear_400() {
        let mut broken = gzip(b"{\"type\":\"pageview\"}");
        broken.truncate(broken.len() - 6);
        for body in [&b""[..], b"{\"not\":\"gzip\"}", &broken] {
            let err = inflate(body, 1024).unwrap_err();
            assert!(matches!(err, IngestError::BadEncoding(_)), "{body:?}: {err}");
        }
    }
}
