#!/usr/bin/env python3
"""Small DNS-over-UDP probes for the benchmark (raw sockets, no dnspython).

  first-answer  poll a server until a DO=1 query for NAME/TYPE is answered
                NOERROR with the RRset and its RRSIG; print the wall-clock time
                of that answer (ns since the epoch) on stdout.
  keychange     key-change latency of signalbox: for COUNT random children,
                write a new KSK .key file to a temp name in the key directory,
                rename it into place (like BIND) and poll the child's _dsboot
                CDS until the answer carries the new key's digest (and an
                RRSIG). Prints one latency (ms) per line on stdout, a summary on
                stderr.
"""
import argparse
import hashlib
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from genkeys import dnskey_rdata, key_file  # noqa: E402

TYPES = {"A": 1, "NS": 2, "SOA": 6, "DS": 43, "RRSIG": 46, "NSEC": 47,
         "DNSKEY": 48, "CDS": 59, "CDNSKEY": 60}


def wire_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(name: str, qtype: int, qid: int) -> bytes:
    # ID, flags 0 (no RD), QD=1, AR=1 (OPT: udp 1232, DO)
    hdr = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0x8000, 0)
    return hdr + wire_name(name) + struct.pack("!HH", qtype, 1) + opt


def skip_name(msg: bytes, off: int) -> int:
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def answer_types(msg: bytes):
    """(id, rcode, [types in the answer section]) or None if malformed."""
    try:
        qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
        off = 12
        for _ in range(qd):
            off = skip_name(msg, off) + 4
        types = []
        for _ in range(an):
            off = skip_name(msg, off)
            t, _c, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            types.append(t)
            off += 10 + rdlen
        return qid, flags & 0xF, types
    except (IndexError, struct.error):
        return None


class Prober:
    def __init__(self, host, port, timeout):
        self.addr = (host, port)
        self.timeout = timeout
        self.sock = None
        self.qid = random.randrange(65536)

    def _socket(self):
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self.addr)
        return self.sock

    def ask(self, name, qtype):
        """One query; the raw answer or None (timeout, refused, wrong id)."""
        self.qid = (self.qid + 1) & 0xFFFF
        try:
            s = self._socket()
            s.send(query(name, qtype, self.qid))
            deadline = time.monotonic() + self.timeout
            while True:
                msg = s.recv(65535)
                if msg[:2] == struct.pack("!H", self.qid):
                    return msg
                if time.monotonic() > deadline:
                    return None
        except (socket.timeout, ConnectionRefusedError, OSError):
            # nothing listening yet (ICMP port unreachable) or no answer
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            return None


def signed_answer(msg, qtype):
    p = answer_types(msg) if msg else None
    return bool(p and p[1] == 0 and qtype in p[2] and TYPES["RRSIG"] in p[2])


def first_answer(a):
    qtype = TYPES[a.type]
    pr = Prober(a.host, a.port, 0.05)
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        if signed_answer(pr.ask(a.name, qtype), qtype):
            print(time.time_ns())
            return 0
        time.sleep(0.002)
    print(f"no signed answer for {a.name} {a.type} within {a.timeout}s", file=sys.stderr)
    return 1


def ds_digest(child: str, pub: bytes) -> bytes:
    return hashlib.sha256(wire_name(child.lower()) + dnskey_rdata(pub)).digest()


def keychange(a):
    rng = random.Random(a.seed)
    children = [line.strip() for line in open(a.children) if line.strip()]
    picks = rng.sample(children, a.count)
    pr = Prober(a.host, a.port, 0.2)
    lat, failed, streak = [], 0, 0
    added = open(a.added, "a") if a.added else None
    for i, child in enumerate(picks):
        pub = rng.randbytes(64)
        fname, content = key_file(child.rstrip("."), pub)
        final = os.path.join(a.dir, fname)
        if os.path.exists(final):
            continue  # key tag collision with an existing key of that child
        digest = ds_digest(child, pub)
        tmp = os.path.join(a.dir, "dnssec-key%08x" % rng.getrandbits(32))
        with open(tmp, "w") as f:
            f.write(content)
        qname = f"_dsboot.{child.rstrip('.')}.{a.apex}"
        if added:
            added.write(fname + "\n")
            added.flush()
        t0 = time.perf_counter()
        os.rename(tmp, final)
        deadline = t0 + a.timeout
        ok = False
        while time.perf_counter() < deadline:
            msg = pr.ask(qname, TYPES["CDS"])
            if msg and digest in msg and signed_answer(msg, TYPES["CDS"]):
                ok = True
                break
            time.sleep(a.poll_sleep)
        t1 = time.perf_counter()
        if ok:
            ms = (t1 - t0) * 1000
            lat.append(ms)
            print(f"{ms:.2f}", flush=True)
            streak = 0
        else:
            failed += 1
            streak += 1
            print(f"change {i} ({child}): new CDS not served within {a.timeout}s",
                  file=sys.stderr)
            if streak >= a.max_streak:
                print(f"giving up after {streak} changes in a row were not served",
                      file=sys.stderr)
                break
        time.sleep(a.gap)
    if lat:
        s = sorted(lat)
        pct = lambda p: s[max(0, -(-p * len(s) // 100) - 1)]  # nearest rank
        print(f"changes={len(s)} failed={failed} p50={pct(50):.1f}ms "
              f"p99={pct(99):.1f}ms max={s[-1]:.1f}ms", file=sys.stderr)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("first-answer")
    f.add_argument("--name", required=True)
    f.add_argument("--type", default="CDS")
    f.add_argument("--timeout", type=float, default=300)
    k = sub.add_parser("keychange")
    k.add_argument("--dir", required=True)
    k.add_argument("--children", required=True)
    k.add_argument("--apex", required=True)
    k.add_argument("--count", type=int, default=100)
    k.add_argument("--seed", type=int, default=7)
    k.add_argument("--timeout", type=float, default=10)
    k.add_argument("--gap", type=float, default=0.2, help="pause between changes (s)")
    k.add_argument("--poll-sleep", type=float, default=0.0005)
    k.add_argument("--added", help="append the names of the key files written here")
    k.add_argument("--max-streak", type=int, default=3,
                   help="stop after this many changes in a row were not served")
    a = ap.parse_args()
    return first_answer(a) if a.cmd == "first-answer" else keychange(a)


if __name__ == "__main__":
    sys.exit(main())
