#!/usr/bin/env python3
"""Write a dnsperf query file for the signalling zone.

~90% (--existing) `_dsboot.<random child>.<apex> CDS|CDNSKEY` for children that
exist, the rest for `_dsboot.<child-like name that does not exist>.<apex>`
(NXDOMAIN, with NSEC proofs). Deterministic for a given --seed.
"""
import argparse
import random
import string


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", required=True, help="file with one child name per line")
    ap.add_argument("--apex", required=True)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--existing", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    children = [c.strip().rstrip(".") for c in open(a.children) if c.strip()]
    known = set(children)
    tlds = sorted({c.rsplit(".", 1)[1] for c in children})
    apex = a.apex.rstrip(".") + "."
    alphabet = string.ascii_lowercase + string.digits
    n = len(children)
    with open(a.out, "w") as f:
        for _ in range(a.lines):
            qtype = rng.choice(("CDS", "CDNSKEY"))
            if rng.random() < a.existing:
                child = rng.choice(children)
            else:
                while True:
                    label = "".join(rng.choice(alphabet) for _ in range(6))
                    child = f"z{rng.randrange(n, 10 * n + 10)}-{label}.{rng.choice(tlds)}"
                    if child not in known:
                        break
            f.write(f"_dsboot.{child}.{apex} {qtype}\n")


if __name__ == "__main__":
    main()
