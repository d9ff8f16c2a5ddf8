#!/usr/bin/env python3
"""Generate N child-zone KSK .key files (ECDSAP256SHA256, flags 257) quickly.

Each file is K<child>.+013+<tag>.key holding one line
    <child>. 3600 IN DNSKEY 257 3 13 <base64 of 64 random bytes>
where <tag> is the RFC 4034 Appendix B key tag of the DNSKEY RDATA.
The keys are random bytes, not valid P-256 points: nothing here verifies
with them, they only feed CDS/CDNSKEY computation.

Also writes <out>/children.txt (one child name per line, with the final dot).
Deterministic for a given --seed.
"""
import argparse
import base64
import os
import random

TLDS = ["com", "net", "org", "de", "nl", "se", "test", "example"]


def key_tag(rdata: bytes) -> int:
    ac = 0
    for i, b in enumerate(rdata):
        ac += b << 8 if i % 2 == 0 else b
    ac += (ac >> 16) & 0xFFFF
    return ac & 0xFFFF


def dnskey_rdata(pub: bytes) -> bytes:
    return bytes([0x01, 0x01, 3, 13]) + pub  # flags 257, protocol 3, alg 13


def key_file(child: str, pub: bytes):
    """(file name, content) for a child KSK with public key `pub`."""
    tag = key_tag(dnskey_rdata(pub))
    name = f"K{child}.+013+{tag:05d}.key"
    line = f"{child}. 3600 IN DNSKEY 257 3 13 {base64.b64encode(pub).decode()}\n"
    return name, line


def child_names(n: int, rng: random.Random):
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for i in range(n):
        label = "".join(rng.choice(alphabet) for _ in range(6))
        yield f"z{i}-{label}.{TLDS[i % len(TLDS)]}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--dir", required=True, help="key directory to fill")
    ap.add_argument("--list", required=True, help="where to write the child list")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    names = []
    for child in child_names(a.n, rng):
        fname, content = key_file(child, rng.randbytes(64))
        with open(os.path.join(a.dir, fname), "w") as f:
            f.write(content)
        names.append(child)
    with open(a.list, "w") as f:
        f.write("".join(c + ".\n" for c in names))


if __name__ == "__main__":
    main()
