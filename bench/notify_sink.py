#!/usr/bin/env python3
"""A NOTIFY target for bench/notify-fanout.sh: answers every NOTIFY with
NOERROR over UDP, counts distinct QNAMEs, and prints when the first arrived
and when the count reached --expect (then exits).

Output (one line each, seconds since the epoch):
    first <t>
    done <t> <distinct> <messages>
"""
import argparse
import socket
import sys
import time


def qname(msg: bytes) -> bytes:
    at, labels = 12, []
    while at < len(msg):
        n = msg[at]
        if n == 0:
            return b".".join(labels).lower()
        labels.append(msg[at + 1 : at + 1 + n])
        at += 1 + n
    return b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.3")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((a.addr, a.port))
    s.settimeout(1.0)
    seen, messages, first = set(), 0, None
    print("ready", flush=True)
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        try:
            msg, peer = s.recvfrom(4096)
        except socket.timeout:
            continue
        if len(msg) < 12 or (msg[2] >> 3) & 0xF != 4:
            continue
        messages += 1
        if first is None:
            first = time.time()
            print(f"first {first:.3f}", flush=True)
        seen.add(qname(msg))
        # Reply: same ID and question, QR + opcode NOTIFY + AA, NOERROR.
        reply = msg[:2] + bytes([0xA4, 0x00]) + msg[4:]
        s.sendto(reply, peer)
        if len(seen) >= a.expect:
            break
    print(f"done {time.time():.3f} {len(seen)} {messages}", flush=True)
    return 0 if len(seen) >= a.expect else 1


if __name__ == "__main__":
    sys.exit(main())
