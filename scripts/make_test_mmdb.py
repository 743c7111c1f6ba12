#!/usr/bin/env python3
"""Writes the small .mmdb fixtures that hub/tests/geo.rs checks known answers against.

    python3 -m pip install mmdb-writer      # PyPI package "mmdb-writer" (module mmdb_writer)
    python3 scripts/make_test_mmdb.py       # rewrites hub/tests/data/geo/*.mmdb

The output is byte-for-byte reproducible (fixed build time), so re-running it on an unchanged script leaves git clean.
The networks are documentation ranges (RFC 5737, RFC 3849) plus a few private and public-looking ones; the places
attached to them are invented test answers, not real geolocation data.

Three files, one per shape the hub must read:
  geoip2-city.mmdb     MaxMind's GeoIP2 nested schema (country.iso_code, subdivisions[].names.en, city.names.en),
                       an IPv6 tree holding IPv4 too, like GeoLite2-City.mmdb
  flat-city-ipv4.mmdb  the flat ip-location-db schema (country_code, state1, state2, city, ...), IPv4 only
  flat-city-ipv6.mmdb  the same flat schema, IPv6 only: the npm city package ships IPv4 and IPv6 as two files
"""

import os
import sys

try:
    from mmdb_writer import MMDBWriter, MmdbF64
    from netaddr import IPSet
except ImportError:
    sys.exit("make_test_mmdb.py needs the PyPI package mmdb-writer: python3 -m pip install mmdb-writer")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hub", "tests", "data", "geo")

# 2024-01-01T00:00:00Z: a fixed build time keeps the files reproducible.
BUILD_EPOCH = 1704067200


class FixedTimeWriter(MMDBWriter):
    def _build_meta(self):
        meta = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


def nested(country, region=None, region_code=None, city=None):
    """A record shaped like GeoIP2-City: names in several languages, so the reader has to pick English."""
    record = {
        "continent": {"code": "EU", "names": {"en": "Europe", "de": "Europa"}},
        "country": {"iso_code": country, "names": {"en": country, "de": country}},
        "location": {"latitude": MmdbF64(1.5), "longitude": MmdbF64(-2.5), "accuracy_radius": 50},
    }
    if region or region_code:
        subdivision = {}
        if region_code:
            subdivision["iso_code"] = region_code
        if region:
            subdivision["names"] = {"de": region + " (de)", "en": region}
        record["subdivisions"] = [subdivision, {"iso_code": "X2", "names": {"en": "Second level"}}]
    if city:
        record["city"] = {"geoname_id": 1, "names": {"de": city + " (de)", "en": city, "fr": city + " (fr)"}}
    return record


def flat(country_code, state1=None, state2=None, city=None):
    """A record shaped like @ip-location-db/*-mmdb: one flat map, absent fields left out."""
    record = {"country_code": country_code}
    for key, value in (("state1", state1), ("state2", state2), ("city", city)):
        if value is not None:
            record[key] = value
    record.update({"latitude": MmdbF64(48.8566), "longitude": MmdbF64(2.3522), "timezone": "Europe/Paris"})
    return record


def geoip2_city():
    w = FixedTimeWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoIP2-City",
        languages=["en", "de"],
        description="Tidemark test fixture, GeoIP2 nested schema",
    )
    w.insert_network(IPSet(["203.0.113.0/24"]), nested("GB", "England", "ENG", "London"))
    w.insert_network(IPSet(["198.51.100.0/25"]), nested("US", "California", "CA", "Mountain View"))
    # No English subdivision name: the ISO code is the best region there is. No city either.
    w.insert_network(IPSet(["198.51.100.128/25"]), nested("JP", None, "13"))
    # Country only, the way many IPs look in GeoLite2-City.
    w.insert_network(IPSet(["81.2.69.0/24"]), nested("SE"))
    w.insert_network(IPSet(["2001:db8:1::/48"]), nested("DE", "Bavaria", "BY", "Munich"))
    # A record of an unexpected shape must read as "unknown", never as an error the caller sees.
    w.insert_network(IPSet(["192.0.2.0/24"]), "not a map")
    # Private ranges with data: the hub must still answer empty for them.
    w.insert_network(IPSet(["10.0.0.0/8", "192.168.0.0/16"]), nested("NZ", "Auckland", "AUK", "Auckland"))
    w.insert_network(IPSet(["fd00::/8"]), nested("NZ", "Auckland", "AUK", "Auckland"))
    return w


def flat_city_ipv4():
    w = FixedTimeWriter(ip_version=4, database_type="dbip-city-ipv4", description="Tidemark test fixture, flat")
    w.insert_network(IPSet(["203.0.113.0/24"]), flat("FR", "Île-de-France", "Paris", "Paris"))
    w.insert_network(IPSet(["192.0.2.0/24"]), flat("AU", "Queensland", None, "Brisbane"))
    # Lower case and no place names, as a country-only database answers.
    w.insert_network(IPSet(["198.51.100.0/24"]), {"country_code": "ca"})
    # "ZZ" is what some databases store for "unknown".
    w.insert_network(IPSet(["5.45.0.0/16"]), flat("ZZ"))
    w.insert_network(IPSet(["10.0.0.0/8"]), flat("NZ", "Auckland", None, "Auckland"))
    return w


def flat_city_ipv6():
    w = FixedTimeWriter(ip_version=6, database_type="dbip-city-ipv6", description="Tidemark test fixture, flat")
    w.insert_network(IPSet(["2001:db8::/33"]), flat("NL", "North Holland", None, "Amsterdam"))
    w.insert_network(IPSet(["2001:db8:8000::/33"]), flat("BR", "São Paulo", "São Paulo", "São Paulo"))
    return w


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build in (
        ("geoip2-city.mmdb", geoip2_city),
        ("flat-city-ipv4.mmdb", flat_city_ipv4),
        ("flat-city-ipv6.mmdb", flat_city_ipv6),
    ):
        path = os.path.join(OUT, name)
        build().to_db_file(path)
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
