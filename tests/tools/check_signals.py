#!/usr/bin/python3
"""Cross-checks `signalbox signals` output with dnspython (code we did not write).

Reads the output on stdin. For every CDNSKEY it recomputes the DS digests and
key tag with dnspython and checks that the CDS RRset at the same owner holds
exactly those (RFC 7344 §4: both types describe the same keys), that every
_dsboot RRset equals the child's apex RRset byte for byte (RFC 9615 §2), and
that delete signals stand alone (RFC 8078 §4). Prints one JSON summary line;
exits 1 on the first mismatch.
"""
import collections
import json
import sys

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.zonefile

DIGESTS = {2: "SHA256", 4: "SHA384"}


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def child_of(owner):
    """_dsboot.<child>._signal.<ns>. -> <child>. ; apex owners are their own child."""
    labels = [l.decode() for l in owner.labels]
    if labels and labels[0].lower() == "_dsboot":
        end = [l.lower() for l in labels].index("_signal")
        return dns.name.from_text(".".join(labels[1:end]) + ".")
    return owner


text = sys.stdin.read()
rrsets = dns.zonefile.read_rrsets(text, origin=".", relativize=False, rdclass=None)
by_owner = collections.defaultdict(dict)
for rrset in rrsets:
    by_owner[rrset.name][rrset.rdtype] = rrset

checked = {"owners": 0, "cds": 0, "cdnskey": 0, "dsboot": 0, "delete": 0, "csync": 0}
for owner, types in by_owner.items():
    checked["owners"] += 1
    cds = types.get(dns.rdatatype.CDS)
    cdnskey = types.get(dns.rdatatype.CDNSKEY)
    child = child_of(owner)
    if cds is not None and any(r.algorithm == 0 for r in cds):
        if len(cds) != 1 or cds[0].to_wire() != b"\x00\x00\x00\x00\x00":
            fail(f"{owner}: delete CDS not alone or not 0 0 0 00")
        if cdnskey is not None and (len(cdnskey) != 1 or cdnskey[0].to_wire() != b"\x00\x00\x03\x00\x00"):
            fail(f"{owner}: delete CDNSKEY not alone or not 0 3 0 AA==")
        checked["delete"] += 1
    elif cds is not None:
        digest_types = {r.digest_type for r in cds}
        for r in cds:
            if r.digest_type not in DIGESTS:
                fail(f"{owner}: CDS digest type {r.digest_type}")
        if cdnskey is not None:
            expected = set()
            for key in cdnskey:
                for dt in digest_types:
                    ds = dns.dnssec.make_ds(child, key, DIGESTS[dt])
                    expected.add(ds.to_wire())
                    if ds.key_tag != dns.dnssec.key_id(key):
                        fail(f"{owner}: key tag mismatch")
                checked["cdnskey"] += 1
            got = {r.to_wire() for r in cds}
            if got != expected:
                fail(f"{owner}: CDS set {sorted(x.hex() for x in got)} != digests of CDNSKEY set {sorted(x.hex() for x in expected)}")
        checked["cds"] += len(cds)
    if dns.rdatatype.CSYNC in types:
        csync = types[dns.rdatatype.CSYNC]
        if len(csync) != 1:
            fail(f"{owner}: {len(csync)} CSYNC records (RFC 7477 §2.1: exactly one)")
        checked["csync"] += 1
    if child != owner:
        apex = by_owner.get(child, {})
        for rdtype in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):
            here = types.get(rdtype)
            there = apex.get(rdtype)
            here_wire = sorted(r.to_wire() for r in here) if here else []
            there_wire = sorted(r.to_wire() for r in there) if there else []
            if here_wire != there_wire:
                fail(f"{owner}: {dns.rdatatype.to_text(rdtype)} differs from the apex of {child}")
            if here is not None and there is not None and here.ttl != there.ttl:
                fail(f"{owner}: TTL {here.ttl} differs from the apex {there.ttl}")
        checked["dsboot"] += 1

print(json.dumps({"ok": True, **checked}))
