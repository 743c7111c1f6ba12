//! Geo lookups on real `.mmdb` files: the fixtures that scripts/make_test_mmdb.py writes (known networks, known
//! answers) in every run, and the full database `just up` fetches into `.data/geo/` in the tests marked
//! `#[ignore]`: a plain `cargo test` reports them as ignored, `just test` runs them with `--ignored` when the data
//! is there, and run by hand they fail, naming what is missing, rather than pass without it:
//! `cargo test -p tidemark-hub --test geo -- --ignored --nocapture` (`TIDEMARK_TEST_REAL_GEO` may name other files,
//! comma-separated, as `TIDEMARK_GEO_DATABASE` does).

use std::net::IpAddr;
use std::path::PathBuf;
use tidemark_hub::geo::GeoDb;
use tidemark_shared::job::Geo;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/geo").join(name)
}

fn open(names: &[&str]) -> GeoDb {
    GeoDb::open(&names.iter().map(|n| fixture(n)).collect::<Vec<_>>()).unwrap()
}

fn geo(country: &str, region: &str, city: &str) -> Geo {
    Geo { country: country.into(), region: region.into(), city: city.into() }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const NESTED: &str = "geoip2-city.mmdb";
const FLAT_V4: &str = "flat-city-ipv4.mmdb";
const FLAT_V6: &str = "flat-city-ipv6.mmdb";

#[test]
fn geo_db_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GeoDb>();
}

#[test]
fn nested_geoip2_records_give_country_region_and_city_in_english() {
    let db = open(&[NESTED]);
    assert_eq!(*db.lookup(ip("203.0.113.77")), geo("GB", "England", "London"));
    assert_eq!(*db.lookup(ip("198.51.100.1")), geo("US", "California", "Mountain View"));
    assert_eq!(*db.lookup(ip("2001:db8:1::5")), geo("DE", "Bavaria", "Munich"));
    // No English subdivision name: its ISO code stands in. No city at all.
    assert_eq!(*db.lookup(ip("198.51.100.200")), geo("JP", "13", ""));
    assert_eq!(*db.lookup(ip("81.2.69.160")), geo("SE", "", ""));
    // IPv4-mapped IPv6 is the IPv4 address.
    assert_eq!(*db.lookup(ip("::ffff:203.0.113.77")), geo("GB", "England", "London"));
}

#[test]
fn flat_ip_location_db_records_are_read_too() {
    let db = open(&[FLAT_V4]);
    assert_eq!(*db.lookup(ip("203.0.113.77")), geo("FR", "Île-de-France", "Paris"));
    assert_eq!(*db.lookup(ip("192.0.2.44")), geo("AU", "Queensland", "Brisbane"));
    assert_eq!(*db.lookup(ip("198.51.100.9")), geo("CA", "", ""), "country codes are upper-cased");
    assert_eq!(*db.lookup(ip("5.45.1.1")), Geo::default(), "ZZ means unknown");
}

#[test]
fn unknown_addresses_and_unexpected_records_are_empty() {
    let db = open(&[NESTED]);
    assert_eq!(*db.lookup(ip("8.8.8.8")), Geo::default());
    assert_eq!(*db.lookup(ip("2a00:1450::1")), Geo::default());
    // The fixture maps 192.0.2.0/24 to a bare string instead of a map.
    assert_eq!(*db.lookup(ip("192.0.2.1")), Geo::default());
}

#[test]
fn private_and_loopback_addresses_are_empty_even_when_the_file_maps_them() {
    let db = open(&[NESTED, FLAT_V4]);
    for addr in ["10.1.2.3", "192.168.1.1", "::ffff:10.0.0.1", "fd00::1", "127.0.0.1", "::1", "fe80::1"] {
        assert_eq!(*db.lookup(ip(addr)), Geo::default(), "{addr}");
    }
}

#[test]
fn split_ipv4_and_ipv6_files_answer_together_in_either_order() {
    for order in [[FLAT_V4, FLAT_V6], [FLAT_V6, FLAT_V4]] {
        let db = open(&order);
        assert_eq!(*db.lookup(ip("203.0.113.77")), geo("FR", "Île-de-France", "Paris"), "{order:?}");
        assert_eq!(*db.lookup(ip("2001:db8::1")), geo("NL", "North Holland", "Amsterdam"), "{order:?}");
        assert_eq!(*db.lookup(ip("2001:db8:8000::1")), geo("BR", "São Paulo", "São Paulo"), "{order:?}");
    }
    // Each file alone knows only its own half, and asking it about the other is not an error.
    assert_eq!(*open(&[FLAT_V4]).lookup(ip("2001:db8::1")), Geo::default());
    assert_eq!(*open(&[FLAT_V6]).lookup(ip("203.0.113.77")), Geo::default());
}

#[test]
fn the_first_file_that_knows_an_address_answers() {
    assert_eq!(open(&[NESTED, FLAT_V4]).lookup(ip("203.0.113.1")).country, "GB");
    assert_eq!(open(&[FLAT_V4, NESTED]).lookup(ip("203.0.113.1")).country, "FR");
    // The nested file has an unreadable record there, so the flat file is asked next.
    assert_eq!(*open(&[NESTED, FLAT_V4]).lookup(ip("192.0.2.1")), geo("AU", "Queensland", "Brisbane"));
}

#[test]
fn open_fails_naming_the_file() {
    let missing = fixture("no-such-file.mmdb");
    let err = GeoDb::open(&[fixture(NESTED), missing]).err().expect("a missing file fails open");
    assert!(format!("{err:#}").contains("no-such-file.mmdb"), "{err:#}");
    assert!(GeoDb::open(&[]).is_err());
    let not_mmdb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert!(GeoDb::open(&[not_mmdb]).is_err());
}

#[test]
fn the_configured_value_is_optional_and_never_fatal() {
    assert!(GeoDb::open_configured("").is_none());
    assert!(GeoDb::open_configured(" , ").is_none());
    assert!(GeoDb::open_configured("/nonexistent/dbip-city-ipv4.mmdb").is_none());
    let cargo_toml = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert!(GeoDb::open_configured(cargo_toml.to_str().unwrap()).is_none());

    // A readable file next to an unreadable one still gives geo for its addresses.
    let value = format!("/nonexistent/x.mmdb, {} ,{}", fixture(FLAT_V4).display(), fixture(FLAT_V6).display());
    let db = GeoDb::open_configured(&value).expect("the readable files are used");
    assert_eq!(db.lookup(ip("203.0.113.77")).city, "Paris");
    assert_eq!(db.lookup(ip("2001:db8::1")).city, "Amsterdam");
}

/// The real database's files: `TIDEMARK_TEST_REAL_GEO`, or every `.mmdb` in the workspace's `.data/geo/`.
fn real_geo_files() -> Vec<PathBuf> {
    if let Ok(value) = std::env::var("TIDEMARK_TEST_REAL_GEO") {
        return value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(PathBuf::from).collect();
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.data/geo");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "mmdb"));
    files.sort();
    assert!(
        !files.is_empty(),
        "no .mmdb in {}: `just up` (scripts/stack.sh up) fetches the DB-IP database there, or set TIDEMARK_TEST_REAL_GEO",
        dir.display()
    );
    files
}

/// The answers are countries of well-known public servers that do not move.
#[test]
#[ignore = "needs .data/geo (just up fetches it)"]
fn real_database_places_well_known_servers() {
    let db = GeoDb::open(&real_geo_files()).expect("readable .mmdb files");
    let known = [
        ("8.8.8.8", "US"),                   // Google Public DNS
        ("193.0.6.139", "NL"),               // RIPE NCC, Amsterdam
        ("2001:67c:2e8:22::c100:68b", "NL"), // RIPE NCC over IPv6
        ("202.12.29.205", "AU"),             // APNIC, Brisbane
        ("2001:dd8:8:701::2", "AU"),         // APNIC over IPv6
        ("::ffff:193.0.6.139", "NL"),        // IPv4-mapped: must be asked of the IPv4 file
    ];
    let answers: Vec<(&str, &str, Geo)> = known.iter().map(|&(a, c)| (a, c, (*db.lookup(ip(a))).clone())).collect();
    for (addr, _, got) in &answers {
        println!("{addr:<28} -> {got:?}");
    }
    for (addr, country, got) in answers {
        assert_eq!(got.country, country, "{addr}");
    }
    assert_eq!(*db.lookup(ip("192.168.1.1")), Geo::default());
}

#[test]
fn addresses_of_one_record_share_one_decoded_place() {
    let db = open(&[FLAT_V4]);
    let first = db.lookup(ip("203.0.113.77"));
    let again = db.lookup(ip("203.0.113.77"));
    assert!(std::sync::Arc::ptr_eq(&first, &again), "the second lookup is served from the record cache");
    assert_eq!(*first, geo("FR", "Île-de-France", "Paris"));
    assert_ne!(*db.lookup(ip("192.0.2.44")), *first);
}

/// The IPv4 index must name the record the reader's own tree walk finds, for every address: checked at each
/// network's edges (first address, last address, one past the last) and at pseudo-random addresses.
fn check_ipv4_index_against_the_tree(files: &[PathBuf]) {
    use maxminddb::{Reader, WithinOptions};
    use std::net::Ipv4Addr;
    use tidemark_hub::geo_index::V4Index;

    for file in files {
        let reader = Reader::open_readfile(file).unwrap();
        let Some(index) = V4Index::build(|| Some(&reader)) else {
            println!("{}: no IPv4 index (the reader answers)", file.display());
            continue;
        };
        let tree = |a: u32| reader.lookup(IpAddr::V4(Ipv4Addr::from(a))).unwrap().offset();
        let mut probes: Vec<u32> = vec![0, 1, u32::MAX, u32::MAX - 1, 0x0100_0000, 0x7f00_0001];
        for found in reader.within("0.0.0.0/0".parse().unwrap(), WithinOptions::default()).unwrap().take(200_000) {
            if let Ok(ipnetwork::IpNetwork::V4(net)) = found.unwrap().network() {
                let first = u32::from(net.network());
                let last = u32::from(net.broadcast());
                probes.extend([first, last, last.wrapping_add(1), first.wrapping_sub(1)]);
            }
        }
        // Every /8 boundary, where the index's build splits its walk.
        probes.extend((0..=255u32).flat_map(|a| [a << 24, (a << 24).wrapping_sub(1)]));
        // A fixed xorshift sequence: the same addresses every run.
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            probes.push(x);
        }
        for &a in &probes {
            assert_eq!(index.offset(Ipv4Addr::from(a)), tree(a), "{} at {}", file.display(), Ipv4Addr::from(a));
        }
        println!("{}: {} ranges, {} addresses agree", file.display(), index.len(), probes.len());
    }
}

#[test]
fn the_ipv4_index_finds_the_record_the_tree_finds() {
    check_ipv4_index_against_the_tree(&[NESTED, FLAT_V4, FLAT_V6].map(fixture));
}

/// The same on the real files (about 20 s in a debug build).
#[test]
#[ignore = "needs .data/geo (just up fetches it)"]
fn the_ipv4_index_finds_the_record_the_tree_finds_in_the_real_database() {
    check_ipv4_index_against_the_tree(&real_geo_files());
}
