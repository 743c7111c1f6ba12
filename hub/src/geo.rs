//! Country, region and city of a client IP from MaxMind DB (`.mmdb`) files, opened once at start-up.
//!
//! Two record shapes exist in the wild and both are read, decided per record: MaxMind's GeoIP2 nested schema
//! (`country.iso_code`, `subdivisions[0].names.en`, `city.names.en`) and the flat schema of the ip-location-db
//! packages (`country_code`, `state1`, `city`) that `just up` fetches. See docs/GEO.md.
//!
//! IPv4 addresses find their record through [`V4Index`] (sorted ranges built at start-up) instead of the file's
//! search tree; IPv6 addresses walk the tree. Many addresses share one record (a city's networks all point at it),
//! so decoded records are cached by their offset in the file, as the maxminddb crate suggests: a bounded map of
//! places, never of addresses.
//!
//! The files are memory-mapped, not read into memory: a lookup touches a few pages, and only those become resident,
//! so the DB-IP city pair (134 MB) costs the hub tens of megabytes instead of all of it. See [`map`] for what that
//! asks of whoever replaces the files.
//!
//! The IP is only looked up, never kept, logged or put in an error.

use crate::bounded_map::{BoundedMap, spread};
use crate::geo_index::V4Index;
use anyhow::Context;
use maxminddb::{LookupResult, Mmap, Reader};
use serde::Deserialize;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use tidemark_shared::job::Geo;

/// Place names longer than this come from a database we do not understand; they are cut rather than stored whole.
const MAX_NAME_CHARS: usize = 128;

/// Decoded records kept: at most about 10 MB, and more places than a site's visitors come from in a day (a city database
/// has a few hundred thousand records, and traffic comes mostly from a few thousand of them).
const CACHED_RECORDS: usize = 64 * 1024;

pub struct GeoDb {
    /// Asked in order; the first that knows the address answers. Several because a database may come as one
    /// file per IP version.
    readers: Vec<Database>,
    /// Keyed by the reader's index and the record's offset in its data section; `None` for a record that names
    /// no place, so the next reader is asked.
    records: BoundedMap<Option<Arc<Geo>>>,
}

struct Database {
    /// Asked about addresses the index does not hold (IPv6, or every address of a file without an index). Its
    /// pages become resident as lookups touch them.
    reader: Reader<Mmap>,
    /// Mapped afresh for each record the index finds and the cache lacks; see [`Database::decode_place`].
    file: File,
    /// An IPv4-only file cannot be asked about IPv6 addresses at all.
    has_ipv6: bool,
    /// Finds IPv4 records without walking the file's tree; `None` leaves them to the reader.
    v4: Option<V4Index>,
}

impl GeoDb {
    /// Opens every file; any unreadable one fails the whole call, naming it.
    pub fn open(paths: &[PathBuf]) -> anyhow::Result<Self> {
        anyhow::ensure!(!paths.is_empty(), "no geo database file given");
        let readers = paths.iter().map(|p| open_one(p)).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::with_readers(readers))
    }

    /// The `geo_database` setting: comma-separated paths. Geo is optional, so nothing here stops the hub: an
    /// empty value means no geo, and a file that cannot be read is skipped with a warning.
    pub fn open_configured(value: &str) -> Option<Self> {
        let paths: Vec<PathBuf> =
            value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect();
        if paths.is_empty() {
            tracing::warn!("No geo database configured: country, region and city stay empty (see docs/GEO.md).");
            return None;
        }
        let mut readers = Vec::with_capacity(paths.len());
        for path in &paths {
            match open_one(path) {
                Ok(db) => {
                    let meta = db.reader.metadata();
                    tracing::info!(
                        path = %path.display(),
                        database_type = %meta.database_type,
                        build_epoch = meta.build_epoch,
                        ip_version = meta.ip_version,
                        ipv4_ranges = db.v4.as_ref().map_or(0, V4Index::len),
                        "Opened the geo database."
                    );
                    readers.push(db);
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = format!("{e:#}"),
                    "Could not open a geo database: its addresses get no country, region or city."
                ),
            }
        }
        if readers.is_empty() {
            tracing::warn!("No geo database could be opened: country, region and city stay empty.");
            return None;
        }
        Some(Self::with_readers(readers))
    }

    fn with_readers(readers: Vec<Database>) -> Self {
        Self { readers, records: BoundedMap::new(CACHED_RECORDS) }
    }

    /// The place of `ip`; empty when no database knows it. Shared: every address of one record gets the same.
    pub fn lookup(&self, ip: IpAddr) -> Arc<Geo> {
        let ip = ip.to_canonical();
        if !is_routable(ip) {
            return unknown_place();
        }
        for (index, db) in self.readers.iter().enumerate() {
            if ip.is_ipv6() && !db.has_ipv6 {
                continue;
            }
            // A lookup or decoding error means a damaged or unexpected file. It is not worth failing an event
            // for, and its message must not be logged per request, so it reads as "not in this file".
            let (offset, found) = match (ip, &db.v4) {
                (IpAddr::V4(v4), Some(v4_index)) => (v4_index.offset(v4), None),
                _ => match db.reader.lookup(ip) {
                    Ok(found) => (found.offset(), Some(found)),
                    Err(_) => continue,
                },
            };
            let Some(offset) = offset else { continue };
            // Offsets are below 2^32 (the format's own limit) and the reader index is tiny: together one u64, and
            // `spread` is a bijection, so the key is exact and a hit needs no check.
            let key = spread((offset as u64) | ((index as u64) << 48));
            let place = match self.records.get(key, |cached| Some(cached.clone())) {
                Some(cached) => cached,
                None => {
                    let decoded = db.decode_place(ip, found);
                    self.records.insert(key, decoded.clone());
                    decoded
                }
            };
            if let Some(place) = place {
                return place;
            }
        }
        unknown_place()
    }
}

/// The empty place, shared: private addresses and addresses no database knows all get this one.
pub fn unknown_place() -> Arc<Geo> {
    static UNKNOWN: LazyLock<Arc<Geo>> = LazyLock::new(Arc::default);
    UNKNOWN.clone()
}

impl Database {
    /// The place of the record `ip` maps to; `None` when it names none or cannot be read (as above, a damaged file
    /// reads as "not in this file"). `found` is the tree walk's result when the lookup made one already.
    ///
    /// Without one (the index found the record), decoding needs a walk of the tree all the same: the maxminddb crate
    /// decodes only what a lookup returns. That walk goes through a mapping made for it and dropped after it, so
    /// that the tree pages it touches do not stay resident: through the long-lived mapping, a few thousand distinct
    /// places touched nearly all 44 MB of the DB-IP IPv4 tree (fault-around maps 16 pages a fault). A lookup that
    /// decodes this way took about 18 µs in a release build (20,000 random addresses, a fresh cache), against
    /// 0.3 µs once the place is cached: paid once per place the record cache does not hold.
    fn decode_place(&self, ip: IpAddr, found: Option<LookupResult<'_, Mmap>>) -> Option<Arc<Geo>> {
        let record = match found {
            Some(found) => found.decode::<Record>(),
            None => {
                let reader = Reader::from_source(map(&self.file).ok()?).ok()?;
                reader.lookup(ip).ok()?.decode::<Record>()
            }
        };
        let geo = record.ok()??.into_geo();
        (!geo.country.is_empty() || !geo.city.is_empty()).then(|| Arc::new(geo))
    }
}

fn open_one(path: &Path) -> anyhow::Result<Database> {
    let context = || format!("opening the geo database {}", path.display());
    // One open file for every mapping below: they all see the same file even if another is renamed over its path
    // meanwhile, so the index and the reader agree.
    let file = File::open(path).with_context(context)?;
    let reader = Reader::from_source(map(&file).with_context(context)?).with_context(context)?;
    let has_ipv6 = reader.metadata().ip_version == 6;
    // A mapping of its own for each part of the build, dropped after it: the index reads the whole IPv4 tree once,
    // and those pages should not stay resident for lookups that never read them again.
    let v4 = V4Index::build(|| Reader::from_source(map(&file).ok()?).ok());
    Ok(Database { reader, file, has_ipv6, v4 })
}

/// Maps a geo database file read-only: the only unsafe code in the hub.
///
/// The hub opens the file read-only and never writes it. What it asks of everyone else is that the file is not
/// changed in place while the hub runs: the tools that update these files replace them by renaming a finished file
/// over the old path (`scripts/stack.sh` moves the fetched files into `.data/geo/` with `mv`; MaxMind's
/// `geoipupdate` renames too), and a renamed-over file keeps its contents for as long as this mapping holds it,
/// so the hub goes on answering from the old data until it restarts. docs/GEO.md says to replace files that way.
/// The copy in memory (`Reader::open_readfile`) would remove the requirement at the cost of 134 MB of resident memory,
/// which is what this trades away.
#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the bytes behind the `&[u8]` it hands the reader change if the file
    // changes, and Rust assumes borrowed bytes never do. The file is only ever replaced by rename (see above), which
    // leaves this mapping on the old, unchanged file. If someone writes into it in place anyway: the reader checks
    // every offset against the mapping's length, fixed when it was made, so reads stay inside the mapping and
    // mostly give a wrong place or a decoding error ("not in this file"); but a string rewritten between the
    // reader's UTF-8 check and its copy would be invalid UTF-8 in a `str`, which is undefined behaviour; and a file
    // truncated below the mapping's length makes the next read past its new end raise SIGBUS, which stops the hub
    // (events already answered are in Redis) until it restarts on a whole file.
    unsafe { Mmap::map(file) }
}

/// Private, loopback and other local addresses locate no one: such a "client" is on the operator's own network or
/// behind a proxy not configured as trusted. A database may still map them (custom ones often map their LAN), and
/// answering from it would invent a place.
fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b); // RFC 6598 carrier-grade NAT
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || shared
                || a == 0)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || unique_local || link_local)
        }
    }
}

/// Every field of both schemas, all optional: whichever a record has decides how it reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Record {
    // GeoIP2 nested.
    country: Option<NestedCountry>,
    subdivisions: Option<Vec<NestedPlace>>,
    // Both: a map of names in GeoIP2, a plain string in the flat schema.
    city: Option<CityField>,
    // ip-location-db flat.
    country_code: Option<String>,
    state1: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NestedCountry {
    iso_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NestedPlace {
    iso_code: Option<String>,
    names: Option<Names>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Names {
    en: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CityField {
    Flat(String),
    Nested(NestedPlace),
}

impl Record {
    fn into_geo(self) -> Geo {
        let country = self.country.and_then(|c| c.iso_code).or(self.country_code).unwrap_or_default();
        let region = match self.subdivisions.and_then(|s| s.into_iter().next()) {
            // Subdivisions run from largest to smallest: the first is the region (state, province, nation).
            Some(top) => top.names.and_then(|n| n.en).or(top.iso_code),
            None => self.state1,
        };
        let city = match self.city {
            Some(CityField::Flat(name)) => Some(name),
            Some(CityField::Nested(place)) => place.names.and_then(|n| n.en),
            None => None,
        };
        Geo { country: country_code(&country), region: clean(region), city: clean(city) }
    }
}

/// ISO 3166-1 alpha-2 or nothing: "ZZ" and "XX" are the codes databases use for "unknown".
fn country_code(raw: &str) -> String {
    let code = raw.trim().to_ascii_uppercase();
    let valid = code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase());
    if valid && code != "ZZ" && code != "XX" { code } else { String::new() }
}

fn clean(name: Option<String>) -> String {
    name.map(|n| n.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_upper_case_letters_or_empty() {
        assert_eq!(country_code("gb"), "GB");
        assert_eq!(country_code(" US "), "US");
        assert_eq!(country_code("ZZ"), "");
        assert_eq!(country_code("xx"), "");
        assert_eq!(country_code("GBR"), "");
        assert_eq!(country_code("1A"), "");
        assert_eq!(country_code(""), "");
    }

    #[test]
    fn private_and_local_addresses_are_not_routable() {
        for ip in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.1.1", "100.64.0.1", "0.0.0.0"] {
            assert!(!is_routable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["::1", "::", "fd12::1", "fc00::1", "fe80::1", "ff02::1"] {
            assert!(!is_routable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "203.0.113.9", "2a00:1450::1", "2001:db8::1"] {
            assert!(is_routable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean(Some("  Bracknell\n".into())), "Bracknell");
        assert_eq!(clean(Some("a\u{0}b".into())), "ab");
        assert_eq!(clean(Some("x".repeat(500))).chars().count(), MAX_NAME_CHARS);
        assert_eq!(clean(None), "");
    }
}
