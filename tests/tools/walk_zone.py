#!/usr/bin/python3
"""Walks a DNSSEC zone through its NSEC chain (RFC 9615 bulk discovery) with
dnspython and prints every RRset and RRSIG it finds as a zone file, so that
`dnssec-verify` can check the zone exactly as the server answers it.

Usage: walk_zone.py SERVER PORT APEX > zone.txt

The NSEC chain is followed one name at a time with dnspython; the other
RRsets it lists are then fetched with `dig -f` (batch mode).
"""
import socket
import subprocess
import sys

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype

server, port, apex_text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
apex = dns.name.from_text(apex_text)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(5)
sock.connect((server, port))


def make(name, rdtype, qid):
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    query.flags &= ~dns.flags.RD
    query.id = qid
    return query


def check(query, response):
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, server, port=port, timeout=5)
    if response.rcode() != 0:
        raise SystemExit(f"{query.question[0]}: rcode {response.rcode()}")
    return response


def ask(name, rdtype):
    query = make(name, rdtype, 1)
    sock.send(query.to_wire())
    while True:
        response = dns.message.from_wire(sock.recv(65535))
        if response.id == query.id:
            return check(query, response)


def types_of(nsec):
    for window, bitmap in nsec.windows:
        for i, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    yield window * 256 + i * 8 + bit


out = []
pending = []
name = apex
seen = set()
while True:
    if name in seen:
        raise SystemExit(f"NSEC chain loops at {name}")
    seen.add(name)
    response = ask(name, dns.rdatatype.NSEC)
    nsec = next((r for r in response.answer if r.rdtype == dns.rdatatype.NSEC), None)
    if nsec is None:
        raise SystemExit(f"no NSEC at {name}")
    out.extend(response.answer)
    pending.extend((name, t) for t in types_of(nsec[0]) if t not in (dns.rdatatype.NSEC, dns.rdatatype.RRSIG))
    name = nsec[0].next
    if name == apex:
        break

# The other RRsets, fetched by `dig` in batch mode (much faster than
# dnspython for tens of thousands of queries).
batch = "".join(f"{qname} {dns.rdatatype.to_text(rdtype)}\n" for qname, rdtype in pending)
fetched = subprocess.run(
    ["dig", f"@{server}", "-p", str(port), "+dnssec", "+norec", "+noall", "+answer", "+tries=3", "-f", "/dev/stdin"],
    input=batch, capture_output=True, text=True, check=True,
)

# dig gives up on a query after its retries (a busy machine): check that
# every RRset the NSEC bitmaps list arrived, and fetch the missing ones again.
got = set()
for line in fetched.stdout.splitlines():
    fields = line.split()
    if len(fields) >= 4 and not line.startswith(";") and fields[3] != "RRSIG":
        got.add((dns.name.from_text(fields[0]), dns.rdatatype.from_text(fields[3])))
missing = [(qname, rdtype) for qname, rdtype in pending if (qname, rdtype) not in got]
for qname, rdtype in missing:
    for attempt in range(5):
        try:
            out.extend(ask(qname, rdtype).answer)
            break
        except (socket.timeout, dns.exception.Timeout):
            if attempt == 4:
                raise SystemExit(f"no answer for {qname} {dns.rdatatype.to_text(rdtype)}")

for rrset in out:
    print(rrset.to_text())
sys.stdout.write(fetched.stdout)
print(f"; walked {len(seen)} names, {len(pending)} more RRsets ({len(missing)} fetched again)", file=sys.stderr)
