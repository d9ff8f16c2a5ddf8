#!/usr/bin/env bash
# NOTIFY fan-out (issue 6 benchmark): N child zones whose CDS appear at once
# (a first start: every child's CDS is new) toward one local NOTIFY target
# named by a wildcard DSYNC in the parent zone. Gate "immediate", per-target
# rate limit off, so this measures discovery + sending: zones/s and the time
# to drain.
#
#   bench/notify-fanout.sh               # N=100000
#   N=10000 bench/notify-fanout.sh       # quick
#
# Knot 3.2 serves parent.test. (unsigned, *._dsync TYPE66 ...) and is also
# the "resolver" (it answers authoritatively; require_ad = false), so the
# lookups stay on loopback. bench/notify_sink.py answers NOERROR and counts.
set -euo pipefail

N=${N:-100000}
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
WORK=${WORK:-$BENCH/work-fanout}
SIGNALBOX=${SIGNALBOX:-$REPO/target/release/signalbox}
PY=${PYTHON:-python3}
KNOT_PORT=${KNOT_PORT:-45460}
SINK_PORT=${SINK_PORT:-45461}
SB_PORT=${SB_PORT:-45462}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

[[ -x $SIGNALBOX ]] || (cd "$REPO" && cargo build --release --locked >/dev/null)
rm -rf "$WORK"
mkdir -p "$WORK/children" "$WORK/signal" "$WORK/knot"
cd "$WORK"

log "generating $N child keys under parent.test."
"$PY" - "$N" <<'EOF'
import base64, os, random, sys
n = int(sys.argv[1]); rng = random.Random(7)
def tag(r):
    ac = 0
    for i, b in enumerate(r): ac += b << 8 if i % 2 == 0 else b
    ac += (ac >> 16) & 0xFFFF
    return ac & 0xFFFF
for i in range(n):
    pub = rng.randbytes(64); child = f"c{i}.parent.test"
    t = tag(bytes([1, 1, 3, 13]) + pub)
    with open(f"children/K{child}.+013+{t:05d}.key", "w") as f:
        f.write(f"{child}. 3600 IN DNSKEY 257 3 13 {base64.b64encode(pub).decode()}\n")
EOF
dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -K signal _signal.ns1.operator.test >/dev/null

# *._dsync.parent.test. DSYNC CDS NOTIFY $SINK_PORT scanner.parent.test.
dsync=$("$PY" -c "
import sys
p=int(sys.argv[1]); t=b''.join(bytes([len(l)])+l.encode() for l in 'scanner.parent.test'.split('.'))+b'\0'
w=(59).to_bytes(2,'big')+bytes([1])+p.to_bytes(2,'big')+t
print(f'\\\\# {len(w)} {w.hex()}')" "$SINK_PORT")
cat >knot/parent.test.zone <<EOF
\$TTL 3600
@ SOA ns hostmaster 1 3600 600 86400 3600
@ NS ns
ns A 127.0.0.1
scanner A 127.0.0.3
*._dsync TYPE66 $dsync
EOF
cat >knot/knot.conf <<EOF
server:
    rundir: "$WORK/knot"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
template:
  - id: default
    storage: "$WORK/knot"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: parent.test.
    file: parent.test.zone
EOF
knotd -c knot/knot.conf 2>knot/log &
PIDS+=($!)

cat >signalbox.toml <<EOF
version = 1
[[zones]]
keys = "children"
nameservers = ["ns1.operator.test."]
cds = "always"

[[signaling_zone]]
apex = "_signal.ns1.operator.test."
keys = "signal"
nameservers = ["ns1.operator.test."]

[server]
listen = ["127.0.0.1:$SB_PORT"]

[resolver]
servers = ["127.0.0.1:$KNOT_PORT"]
require_ad = false

[notify]
gate = "immediate"
rate_limit = 0

[parent]
poll_interval = "10h"
EOF

"$PY" "$BENCH/notify_sink.py" --port "$SINK_PORT" --expect "$N" >sink.out &
SINK=$!
PIDS+=($SINK)
sleep 1
log "starting signalbox"
start=$(date +%s.%N)
"$SIGNALBOX" serve -c signalbox.toml 2>signalbox.log &
PIDS+=($!)
wait "$SINK" || true
first=$(awk '/^first/ {print $2}' sink.out)
done_line=$(grep '^done' sink.out || echo "done 0 0 0")
read -r _ end distinct messages <<<"$done_line"
served=$(grep -m1 -o 'serial=1 names=[0-9]*' signalbox.log || true)
awk -v s="$start" -v f="$first" -v e="$end" -v d="$distinct" -v m="$messages" -v n="$N" 'BEGIN {
    printf "N=%d zones notified=%d messages=%d\n", n, d, m
    printf "start -> first NOTIFY  %.1f s (scan, policy, signing the zone)\n", f - s
    printf "first -> last NOTIFY   %.1f s  = %.0f zones/s\n", e - f, d / (e - f)
}'
grep -c "NOTIFY acknowledged" signalbox.log | awk '{print "acknowledged (daemon log):", $1}'
