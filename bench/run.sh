#!/usr/bin/env bash
# signalbox vs Knot 3.2 vs NSD 4.6 on one machine, side by side.
#
#   bench/run.sh                 # N=100000 children, ~10-15 minutes on a 2-core VM
#   N=10000 ROUNDS=1 bench/run.sh   # quick smoke run
#
# What it does (details in BENCHMARKS.md):
#   1. generates N child KSKs (.key files), the signalling zone's key and the config;
#   2. start-up: signalbox cold (no state dir, signs everything) and warm (state dir
#      present) to the first signed _dsboot answer; builds the same zone for Knot and
#      NSD from what signalbox serves, signs it with dnssec-signzone, and times their
#      load-to-first-answer;
#   3. checks that the three servers give the same answers;
#   4. throughput: dnsperf (DO=1) against each server, interleaved, ROUNDS rounds,
#      with server CPU per query and memory;
#   5. key-change latency of signalbox (default debounce, then FAST_DEBOUNCE);
#   6. prints a summary and writes everything to bench/results/<date>.txt.
#   With RRL_ROUNDS > 0, between 4 and 5: the CPU cost of response rate limiting
#   (issue 13): a second signalbox instance with RRL the other way (warm, from a copy of
#   the state dir), dnsperf alternating between the two for RRL_ROUNDS rounds each.
#
# Environment (all optional):
#   N=100000 QUERIES=200000 ROUNDS=3 DURATION=20 WARMUP=3 STARTUP_REPS=3
#   CHANGES=100 (0: no key-change runs) FAST_DEBOUNCE=20ms (empty: skip that run) CHANGE_GAP=0.2
#   WARM_ROUND_TIMEOUT=60   seconds to wait for the first round after a warm start
#   QUIET_MAX_WAIT=60       before each measurement, wait up to this long for other
#                           processes to leave the machine idle (then measure anyway, noted)
#   RESCAN_INTERVAL=1h      signalbox [watch] rescan_interval for all instances (its default,
#                           10m, would put a periodic full round into the measurements;
#                           empty = signalbox's default)
#   BASE_PORT=25353         signalbox, Knot, NSD use BASE_PORT, +1, +2 on 127.0.0.1
#   SIGNALBOX=path          use this binary instead of `cargo build --release`
#   WORK=bench/work         scratch directory (removed at the end unless KEEP_WORK=1)
#   SEED=1                  key and query generation are deterministic per seed
#   RESULTS_DIR=bench/results
#   RRL=off                 [server.rrl] of the load-test instance. off: the peak-QPS
#                           comparison (Knot has no RRL here, NSD runs with
#                           rrl-ratelimit: 0; one dnsperf source would be limited at
#                           signalbox's default 200/s). on: enabled with rate RRL_RATE.
#   RRL_RATE=1000000        the rate when RRL is on for a benchmark: so high that nothing
#                           is limited, so every query pays for the full check and bucket
#                           update and nothing is saved by not sending
#   METRICS=off             on: the load-test instance serves [metrics] on BASE_PORT+4 and
#                           a scraper fetches /metrics every SCRAPE_EVERY seconds (default 1,
#                           fifteen times Prometheus's usual rate) for the whole throughput phase
#   RRL_ROUNDS=0            rounds of the RRL on/off cost comparison (0: skipped); the
#                           second instance listens on BASE_PORT+3
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

N=${N:-100000}
QUERIES=${QUERIES:-200000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
STARTUP_REPS=${STARTUP_REPS:-3}
CHANGES=${CHANGES:-100}
FAST_DEBOUNCE=${FAST_DEBOUNCE-20ms}
CHANGE_GAP=${CHANGE_GAP:-0.2}
WARM_ROUND_TIMEOUT=${WARM_ROUND_TIMEOUT:-60}
START_TIMEOUT=${START_TIMEOUT:-300}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-60}
RESCAN_INTERVAL=${RESCAN_INTERVAL-1h}
BASE_PORT=${BASE_PORT:-25353} # below the ephemeral range (32768-60999)
SEED=${SEED:-1}
WORK=${WORK:-$BENCH_DIR/work}
KEEP_WORK=${KEEP_WORK:-0}
SIGNALBOX=${SIGNALBOX:-}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
RRL=${RRL:-off}
RRL_RATE=${RRL_RATE:-1000000}
RRL_ROUNDS=${RRL_ROUNDS:-0}
[[ $RRL == on || $RRL == off ]] || { echo "RRL must be on or off" >&2; exit 1; }
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in bench/

APEX=_signal.ns1.operator.test.
SB_PORT=$BASE_PORT
KNOT_PORT=$((BASE_PORT + 1))
NSD_PORT=$((BASE_PORT + 2))
RRL_PORT=$((BASE_PORT + 3))
METRICS=${METRICS:-off}
SCRAPE_EVERY=${SCRAPE_EVERY:-1}
METRICS_PORT=$((BASE_PORT + 4))
CLK_TCK=$(getconf CLK_TCK)
PY=${PYTHON:-python3}
DEFAULT_DEBOUNCE=100ms # signalbox's built-in default ([watch] debounce unset)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes
PIDS=()  # every server process we started and have not stopped yet
FG_PID=  # the long-running tool we are waiting for (dnsperf, probes, signer)

# Runs a tool in the background and waits for it, so that SIGTERM/SIGINT reach our
# trap at once (bash defers traps while a foreground command runs).
run_fg() {
    local rc=0
    "$@" &
    FG_PID=$!
    wait "$FG_PID" || rc=$?
    FG_PID=
    return "$rc"
}

alive() { # PID: running (not gone, not a zombie)
    local st
    st=$(sed -E 's/^.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z ]]
}

descendants() { # PID: all its descendants, recursively
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_pid() { # PID: SIGTERM, then SIGKILL after 10 s (the process and its descendants)
    local pid=$1 kids i=0
    kids=$(descendants "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && [[ $i -lt 100 ]]; do sleep 0.1; i=$((i + 1)); done
    if alive "$pid"; then
        log "pid $pid did not stop within 10 s of SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    if [[ -n $FG_PID ]]; then kill -TERM "$FG_PID" 2>/dev/null || true; fi
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [[ $KEEP_WORK != 1 && -f $WORK/.signalbox-bench ]]; then
        rm -rf "$WORK"
    elif [[ -d $WORK ]]; then
        log "work files kept in $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# /proc accounting. CPU: utime+stime (fields 14, 15 of /proc/PID/stat: all threads).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }' $(printf '/proc/%s/stat ' "$@"); }
rss_kb() { awk '/^VmRSS:/ { t += $2 } END { print t + 0 }' $(printf '/proc/%s/status ' "$@"); }
pss_kb() { awk '/^Pss:/ { t += $2 } END { print t + 0 }' $(printf '/proc/%s/smaps_rollup ' "$@"); }

# Whole machine, from /proc/stat: "total,busy" ticks (all CPUs; idle and iowait are not busy).
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t "," t - $5 - $6 }' /proc/stat; }
# CPU of this shell's waited-for children (cutime + cstime): a finished dnsperf's CPU.
children_ticks() { sed -E 's/^.*\) //' /proc/$$/stat | awk '{ print $14 + $15 }'; }

# Before a measurement: wait until the machine is idle (< 15% busy over 1 s; our idle
# servers use ~0) so that other people's jobs on a shared VM do not end up in the numbers.
NOT_QUIET=0
wait_quiet() { # WHAT
    local start=$SECONDS m0 m1 busy
    while :; do
        m0=$(machine_ticks)
        sleep 1
        m1=$(machine_ticks)
        busy=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, ","); split(b, y, ","); printf "%d", 100 * (y[2] - x[2]) / (y[1] - x[1]) }')
        [[ $busy -lt 15 ]] && return 0
        if [[ $((SECONDS - start)) -ge $QUIET_MAX_WAIT ]]; then
            log "warning: machine still ${busy}% busy before $1 after ${QUIET_MAX_WAIT}s: measuring anyway"
            NOT_QUIET=$((NOT_QUIET + 1))
            info "not_quiet" "$1: ${busy}% busy"
            return 0
        fi
        [[ $((SECONDS - start)) -lt 2 ]] && log "machine ${busy}% busy (other processes): waiting before $1"
        sleep 2
    done
}

now_us() { echo "${EPOCHREALTIME/./}"; }

port_free() { ! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .; }

wait_log() { # PATTERN FILE MIN_COUNT TIMEOUT_S: until PATTERN occurs MIN_COUNT times
    local deadline=$((SECONDS + $4)) c
    while :; do
        c=$(grep -c -- "$1" "$2" 2>/dev/null || true)
        [[ ${c:-0} -ge $3 ]] && return 0
        [[ $SECONDS -ge $deadline ]] && return 1
        sleep 0.1
    done
}

# ---------------------------------------------------------------- checks
for tool in dnsperf knotd nsd nsd-checkconf dnssec-keygen dnssec-signzone dig ss ps "$PY"; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (Debian: apt-get install dnsperf knot nsd bind9-utils bind9-dnsutils iproute2 procps python3)"
done
for p in "$SB_PORT" "$KNOT_PORT" "$NSD_PORT" "$RRL_PORT"; do
    port_free "$p" || die "127.0.0.1 port $p is in use (set BASE_PORT)"
done
[[ $BASE_PORT -ge 1024 ]] || die "BASE_PORT must be a high port"

if [[ -z $SIGNALBOX ]]; then
    log "building signalbox (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet)
    SIGNALBOX=$REPO/target/release/signalbox
    SB_BUILD="$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$REPO" && git diff --quiet HEAD -- 2>/dev/null || echo '+uncommitted changes')"
else
    SB_BUILD="given binary $SIGNALBOX"
fi
[[ -x $SIGNALBOX ]] || die "no signalbox binary at $SIGNALBOX"
SB_SHA=$(sha256sum "$SIGNALBOX" | cut -c1-16)

# ---------------------------------------------------------------- work dir
if [[ -e $WORK ]]; then
    [[ -f $WORK/.signalbox-bench ]] || die "$WORK exists and was not made by this script"
    rm -rf "$WORK"
fi
mkdir -p "$WORK"/{children,signal,knot,nsd,dnsperf}
touch "$WORK/.signalbox-bench"
WORK=$(cd "$WORK" && pwd)
cd "$WORK"
printf 'server\tround\tqps\tsent\tcompleted\tlost\tcpu_ticks\tclk_tck\trss_kb\tpss_kb\treq_size\tresp_size\tlatency_s\tbg_rounds\tmachine_busy_pct\tdnsperf_cpu_pct\n' >runs.tsv
printf 'what\trep\tms\tnote\n' >startup.tsv
printf 'key\tvalue\n' >info.tsv
info() { printf '%s\t%s\n' "$1" "$2" >>info.tsv; }
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
info n "$N"
info nproc "$(nproc)"
info rrl "$RRL (rate $RRL_RATE when on)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- 1. data
log "generating $N child keys (.key only, ECDSAP256SHA256 KSK)"
t=$SECONDS
"$PY" "$BENCH_DIR/genkeys.py" --n "$N" --dir children --list children.txt --seed "$SEED"
info keygen_s $((SECONDS - t))
dnssec-keygen -q -K signal -a ECDSAP256SHA256 -f KSK "${APEX%.}" >/dev/null
SIGNAL_KEY=$(ls signal/*.key)
SIGNAL_KEY=${SIGNAL_KEY%.key}
PROBE_NAME="_dsboot.$(head -1 children.txt)${APEX}"

write_config() { # FILE [DEBOUNCE] [RRL on|off] [PORT] [STATE_DIR]
    local rrl=${3:-$RRL}
    {
        echo 'version = 1'
        echo '[[zones]]'
        echo 'keys = "children"'
        echo 'nameservers = ["ns1.operator.test."]'
        echo 'cds = "always"'
        echo '[[signaling_zone]]'
        echo "apex = \"$APEX\""
        echo 'keys = "signal"'
        echo 'nameservers = ["ns1.operator.test."]'
        echo '[server]'
        echo "listen = [\"127.0.0.1:${4:-$SB_PORT}\"]"
        echo '[server.rrl]'
        if [[ $rrl == on ]]; then
            echo 'enabled = true'
            echo "rate = $RRL_RATE"
        else
            echo 'enabled = false'
        fi
        if [[ $1 == signalbox.toml && $METRICS == on ]]; then
            echo '[metrics]'
            echo "listen = \"127.0.0.1:$METRICS_PORT\""
        fi
        echo '[state]'
        echo "dir = \"${5:-state}\""
        if [[ -n ${2:-} || -n $RESCAN_INTERVAL ]]; then
            echo '[watch]'
            [[ -z ${2:-} ]] || echo "debounce = \"$2\""
            [[ -z $RESCAN_INTERVAL ]] || echo "rescan_interval = \"$RESCAN_INTERVAL\""
        fi
    } >"$1"
}
write_config signalbox.toml
[[ -n $FAST_DEBOUNCE ]] && write_config signalbox-fast.toml "$FAST_DEBOUNCE"

log "query file: $QUERIES lines, 90% existing _dsboot names, 10% NXDOMAIN"
"$PY" "$BENCH_DIR/mkqueries.py" --children children.txt --apex "$APEX" --lines "$QUERIES" --out queries.txt

# ---------------------------------------------------------------- 2. start-up
SB_PID=
SB_LOG=
start_measured() { # WHAT REP PORT LOGFILE CMD...: start CMD, time launch -> first signed answer
    local what=$1 rep=$2 port=$3 logf=$4 t0 t1 ms note=""
    shift 4
    wait_quiet "$what #$rep"
    t0=$(now_us)
    "$@" >>"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    if run_fg "$PY" "$BENCH_DIR/dnsprobe.py" --port "$port" first-answer --name "$PROBE_NAME" --timeout "$START_TIMEOUT" >first-answer.out; then
        t1=$(cat first-answer.out)
        ms=$(((t1 / 1000 - t0) / 1000))
        note="cpu $(awk -v t="$(cpu_ticks "$LAST_PID" $(descendants "$LAST_PID"))" -v h="$CLK_TCK" 'BEGIN { printf "%.1f", t / h }') s at first answer"
    else
        ms=-
        note="no signed answer within ${START_TIMEOUT}s"
        log "$what: $note (see $logf)"
    fi
    printf '%s\t%s\t%s\t%s\n' "$what" "$rep" "$ms" "$note" >>startup.tsv
    log "$what #$rep: $ms ms to the first signed answer ($note)"
}

start_signalbox() { # WHAT REP CONFIG: launch signalbox, timed; sets SB_PID, SB_LOG
    SB_LOG=$WORK/signalbox-$(echo "$1" | tr -c 'a-z0-9\n' '-' | tr -s '-')-$2.log
    start_measured "$1" "$2" "$SB_PORT" "$SB_LOG" "$SIGNALBOX" serve -c "$3"
    SB_PID=$LAST_PID
}

COLD="signalbox cold start (signs everything)"
WARM="signalbox warm start (state dir present)"
ZONEFILE_GLOB="state/zones/*.zone"

for rep in $(seq "$STARTUP_REPS"); do
    rm -rf state
    start_signalbox "$COLD" "$rep" signalbox.toml
    wait_log 'round done' "$SB_LOG" 1 "$START_TIMEOUT" || die "signalbox: no round done (see $SB_LOG)"
    info "cold_round_log_$rep" "$(grep -m1 'round done' "$SB_LOG" | sed 's/^.*round done //')"
    info "cold_zone_log_$rep" "$(grep -m1 'zone updated' "$SB_LOG" | sed 's/^.*zone updated //')"
    # wait until the signed zone is saved (warm starts need it)
    for _ in $(seq 1200); do compgen -G "$ZONEFILE_GLOB" >/dev/null && break; sleep 0.1; done
    compgen -G "$ZONEFILE_GLOB" >/dev/null || die "signalbox did not save its zone under state/zones"
    info "cold_rss_kb_after_round_$rep" "$(rss_kb "$SB_PID")"
    if [[ $rep == "$STARTUP_REPS" ]]; then
        # The records signalbox serves at the apex, for the Knot/NSD zone.
        for t in SOA NS DNSKEY CDS CDNSKEY; do
            dig +norec +nodnssec +noall +answer -p "$SB_PORT" @127.0.0.1 "$APEX" "$t"
        done >apex.rrs
    fi
    stop_pid "$SB_PID"
done
cp "$SB_LOG" signalbox-cold.log

log "building the same zone for Knot and NSD (signalbox signals + apex records)"
t=$SECONDS
"$SIGNALBOX" signals -c signalbox.toml >signals.txt
info signals_cli_s $((SECONDS - t))
{
    echo "\$ORIGIN $APEX"
    cat apex.rrs
    grep '^_dsboot\.' signals.txt
} >zone.txt
log "signing it with dnssec-signzone -P -z (NSEC, same key)"
t0=$(now_us)
run_fg dnssec-signzone -P -z -N keep -O full -o "$APEX" -K signal -f signed.zone zone.txt "$(basename "$SIGNAL_KEY")" >signzone.out 2>&1 ||
    { cat signzone.out >&2; die "dnssec-signzone failed"; }
info dnssec_signzone_s "$(awk -v a="$t0" -v b="$(now_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
info zone_dsboot_rrs "$(grep -c '^_dsboot\.' zone.txt)"
info signed_zone_rrsigs "$(awk '$4 == "RRSIG"' signed.zone | wc -l)"
info signalbox_signatures "$(grep -m1 -o 'signatures=[0-9]*' signalbox-cold.log | cut -d= -f2)"

cat >knot/knot.conf <<EOF
server:
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
    rundir: "$WORK/knot"
database:
    storage: "$WORK/knot"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "$WORK/knot"
    journal-content: none
    zonefile-sync: -1
    zonefile-load: whole
    semantic-checks: off
    dnssec-signing: off
zone:
  - domain: $APEX
    file: "$WORK/signed.zone"
EOF

cat >nsd/nsd.conf <<EOF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    do-ip6: no
    server-count: 2
    reuseport: yes
    username: ""
    chroot: ""
    zonesdir: "$WORK/nsd"
    database: ""
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdfile: "$WORK/nsd/xfrd.state"
    xfrdir: "$WORK/nsd"
    pidfile: "$WORK/nsd/nsd.pid"
    logfile: "$WORK/nsd/nsd.log"
    verbosity: 1
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    minimal-responses: yes
remote-control:
    control-enable: no
zone:
    name: $APEX
    zonefile: "$WORK/signed.zone"
EOF
nsd-checkconf nsd/nsd.conf

for rep in $(seq "$STARTUP_REPS"); do
    start_measured "Knot load of the presigned zone" "$rep" "$KNOT_PORT" knot/knot.log knotd -c knot/knot.conf
    KNOT_PID=$LAST_PID
    [[ $rep == "$STARTUP_REPS" ]] || stop_pid "$KNOT_PID"
done
for rep in $(seq "$STARTUP_REPS"); do
    start_measured "NSD load of the presigned zone" "$rep" "$NSD_PORT" nsd/stderr.log nsd -d -c nsd/nsd.conf
    NSD_PID=$LAST_PID
    [[ $rep == "$STARTUP_REPS" ]] || stop_pid "$NSD_PID"
done

for rep in $(seq "$STARTUP_REPS"); do
    start_signalbox "$WARM" "$rep" signalbox.toml
    grep -q 'warm start: serving the saved zone' "$SB_LOG" ||
        log "warning: no 'warm start: serving the saved zone' line in $SB_LOG"
    [[ $rep == "$STARTUP_REPS" ]] || stop_pid "$SB_PID"
done
# The first round after a warm start (rescan + recompute everything; nothing to sign).
t0=$(now_us)
if wait_log 'round done' "$SB_LOG" 1 "$WARM_ROUND_TIMEOUT"; then
    info warm_first_round "$(grep -m1 'round done' "$SB_LOG" | sed 's/^.*round done //')"
    printf '%s\t%s\t%s\t%s\n' "signalbox warm start: first round done (from first answer)" 1 \
        "$(((($(now_us) - t0)) / 1000))" "key changes wait for it" >>startup.tsv
else
    cpu=$(awk -v t="$(cpu_ticks "$SB_PID")" -v h="$CLK_TCK" 'BEGIN { printf "%.0f", t / h }')
    printf '%s\t%s\t%s\t%s\n' "signalbox warm start: first round done (from first answer)" 1 "-" \
        "not done after ${WARM_ROUND_TIMEOUT}s (signalbox used ${cpu} s CPU); replaced by a cold-started instance" >>startup.tsv
    log "warm start: first round not done after ${WARM_ROUND_TIMEOUT}s (${cpu} s CPU so far): replacing it by a cold start"
    info warm_first_round "not done after ${WARM_ROUND_TIMEOUT}s, ${cpu}s CPU"
    stop_pid "$SB_PID"
    rm -rf state
    start_signalbox "signalbox cold start (instance for the load tests)" 1 signalbox.toml
    wait_log 'round done' "$SB_LOG" 1 "$START_TIMEOUT" || die "signalbox: no round done (see $SB_LOG)"
fi
SB_MAIN_LOG=$SB_LOG

# ---------------------------------------------------------------- 3. same answers?
log "checking that the three servers give the same answers"
answer() { # PORT NAME TYPE: status + RRsets without RRSIGs, sorted
    dig +norec +dnssec +nocookie +noall +comments +answer +authority -p "$1" @127.0.0.1 "$2" "$3" |
        grep -E 'status:|^[^;]' | grep -v RRSIG | sed -E 's/, id: [0-9]+//' |
        awk '$4 == "SOA" { $7 = "(serial)" } { print }' | sort
}
mismatches=0
checks=0
while read -r qname qtype; do
    ref=$(answer "$SB_PORT" "$qname" "$qtype")
    for p in "$KNOT_PORT" "$NSD_PORT"; do
        checks=$((checks + 1))
        if [[ $(answer "$p" "$qname" "$qtype") != "$ref" ]]; then
            mismatches=$((mismatches + 1))
            { echo "== $qname $qtype: signalbox vs port $p"; diff <(echo "$ref") <(answer "$p" "$qname" "$qtype") || true; } >>answer-diffs.txt
        fi
    done
done < <(
    printf '%s SOA\n%s NS\n%s DNSKEY\n%s CDS\n' "$APEX" "$APEX" "$APEX" "$APEX"
    shuf -n 30 --random-source=<(yes) queries.txt
)
info answer_checks "$checks comparisons, $mismatches differ"
[[ $mismatches == 0 ]] || log "warning: $mismatches answers differ between servers (answer-diffs.txt)"
for p in "$SB_PORT" "$KNOT_PORT" "$NSD_PORT"; do
    info "size_port_$p" "$(for q in "$PROBE_NAME CDS" "$PROBE_NAME CDNSKEY" "_dsboot.nonexistent.com.$APEX CDS" "_dsboot.z1-zzzzzz.net.$APEX CDS"; do
        dig +norec +dnssec +nocookie -p "$p" @127.0.0.1 $q | awk '/MSG SIZE/ { printf "%s ", $NF }'
    done)"
done

# ---------------------------------------------------------------- 4. throughput
server_pids() {
    case $1 in
    signalbox) echo "$SB_PID" ;;
    knot) echo "$KNOT_PID" ;;
    nsd) echo "$NSD_PID" $(descendants "$NSD_PID") ;;
    esac
}
server_port() {
    case $1 in
    signalbox) echo "$SB_PORT" ;; knot) echo "$KNOT_PORT" ;; nsd) echo "$NSD_PORT" ;;
    esac
}
info nsd_processes "$(ps -o pid=,args= -p "$(server_pids nsd | tr ' ' ',')" | sed 's/  */ /g' | tr '\n' ';')"
DNSPERF_ARGS="-s 127.0.0.1 -d $WORK/queries.txt -D -c 4 -T 1 -q 100"
info dnsperf "dnsperf $DNSPERF_ARGS -p PORT -l $DURATION (after -l $WARMUP)"
log "throughput: $ROUNDS rounds x (signalbox, Knot, NSD), dnsperf -l $DURATION after a ${WARMUP}s warm-up"
SCRAPER_PID=
if [[ $METRICS == on ]]; then
    info metrics "on: /metrics scraped every ${SCRAPE_EVERY}s during the throughput phase"
    (while :; do
        curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics" || true
        sleep "$SCRAPE_EVERY"
    done) &
    SCRAPER_PID=$!
    PIDS+=("$SCRAPER_PID")
fi
for r in $(seq "$ROUNDS"); do
    for s in signalbox knot nsd; do
        port=$(server_port "$s")
        out=dnsperf/$s-$r.txt
        wait_quiet "dnsperf $s round $r"
        # shellcheck disable=SC2086
        run_fg dnsperf $DNSPERF_ARGS -p "$port" -l "$WARMUP" >"dnsperf/$s-$r-warmup.txt" 2>&1
        pids=$(server_pids "$s")
        rounds0=$(grep -c 'round done' "$SB_MAIN_LOG" || true)
        m0=$(machine_ticks)
        k0=$(children_ticks)
        c0=$(cpu_ticks $pids)
        # shellcheck disable=SC2086
        run_fg dnsperf $DNSPERF_ARGS -p "$port" -l "$DURATION" >"$out" 2>&1
        c1=$(cpu_ticks $pids)
        k1=$(children_ticks)
        m1=$(machine_ticks)
        read -r busy_pct client_pct < <(awk -v a="$m0" -v b="$m1" -v k="$((k1 - k0))" -v n="$(nproc)" 'BEGIN {
            split(a, x, ","); split(b, y, ","); tot = y[1] - x[1]; busy = y[2] - x[2]
            printf "%.1f %.1f\n", 100 * busy / tot, 100 * k * n / tot }')
        rounds1=$(grep -c 'round done' "$SB_MAIN_LOG" || true)
        bg=0
        [[ $s == signalbox ]] && bg=$((rounds1 - rounds0))
        read -r sent completed lost qps req resp lat < <(awk '
            /Queries sent:/ { s = $3 } /Queries completed:/ { c = $3 } /Queries lost:/ { l = $3 }
            /Queries per second:/ { q = $4 } /Average Latency/ { lat = $4 }
            /Average packet size:/ { gsub(",", ""); rq = $5; rs = $7 }
            END { print s + 0, c + 0, l + 0, q + 0, rq + 0, rs + 0, lat + 0 }' "$out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$qps" "$sent" "$completed" "$lost" \
            $((c1 - c0)) "$CLK_TCK" "$(rss_kb $pids)" "$(pss_kb $pids)" "$req" "$resp" "$lat" "$bg" "$busy_pct" "$client_pct" >>runs.tsv
        log "round $r $s: $qps qps, $completed completed, $lost lost, server cpu $((c1 - c0)) ticks, machine ${busy_pct}% busy, dnsperf ${client_pct}%$([[ $bg == 0 ]] || echo ", $bg background round(s)!")"
    done
done

if [[ -n $SCRAPER_PID ]]; then
    stop_pid "$SCRAPER_PID"
    forget_pid "$SCRAPER_PID"
    scrapes=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -c '^signalbox_' || true)
    info metrics_series "$scrapes"
    log "metrics: the last scrape had $scrapes signalbox_ samples"
fi

# ---------------------------------------------------------------- 4b. RRL cost
# CPU per query with RRL on (at a rate nothing reaches) and off, interleaved: two
# warm instances of the same binary, one each way, dnsperf alternating between them
# (on/off, then off/on: the machine's drift hits both alike). report.py gives the
# median of the per-round on/off ratios.
printf 'rrl\tround\tqps\tcompleted\tcpu_ticks\tclk_tck\tmachine_busy_pct\n' >rrl.tsv
if [[ $RRL_ROUNDS -gt 0 ]]; then
    other=$([[ $RRL == on ]] && echo off || echo on)
    rm -rf state-rrl
    cp -a state state-rrl
    rm -f state-rrl/*.sock state-rrl/control* 2>/dev/null || true
    write_config signalbox-rrl-$other.toml "" "$other" "$RRL_PORT" state-rrl
    "$SIGNALBOX" serve -c signalbox-rrl-$other.toml >>"signalbox-rrl-$other.log" 2>&1 &
    RRL_PID=$!
    PIDS+=("$RRL_PID")
    run_fg "$PY" "$BENCH_DIR/dnsprobe.py" --port "$RRL_PORT" first-answer --name "$PROBE_NAME" --timeout "$START_TIMEOUT" >/dev/null ||
        die "signalbox with RRL $other: no answer (see signalbox-rrl-$other.log)"
    wait_log 'round done' "signalbox-rrl-$other.log" 1 "$START_TIMEOUT" || die "signalbox with RRL $other: no round done"
    rrl_pid() { if [[ $1 == "$RRL" ]]; then echo "$SB_PID"; else echo "$RRL_PID"; fi; }
    rrl_port() { if [[ $1 == "$RRL" ]]; then echo "$SB_PORT"; else echo "$RRL_PORT"; fi; }
    log "RRL cost: $RRL_ROUNDS rounds x (on, off), dnsperf -l $DURATION after a ${WARMUP}s warm-up"
    for r in $(seq "$RRL_ROUNDS"); do
        order="on off"
        [[ $((r % 2)) == 0 ]] && order="off on"
        for mode in $order; do
            port=$(rrl_port "$mode")
            pid=$(rrl_pid "$mode")
            out=dnsperf/rrl-$mode-$r.txt
            wait_quiet "dnsperf RRL $mode round $r"
            # shellcheck disable=SC2086
            run_fg dnsperf $DNSPERF_ARGS -p "$port" -l "$WARMUP" >"dnsperf/rrl-$mode-$r-warmup.txt" 2>&1
            m0=$(machine_ticks)
            c0=$(cpu_ticks "$pid")
            # shellcheck disable=SC2086
            run_fg dnsperf $DNSPERF_ARGS -p "$port" -l "$DURATION" >"$out" 2>&1
            c1=$(cpu_ticks "$pid")
            m1=$(machine_ticks)
            busy_pct=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, ","); split(b, y, ","); printf "%.1f", 100 * (y[2] - x[2]) / (y[1] - x[1]) }')
            read -r completed qps < <(awk '/Queries completed:/ { c = $3 } /Queries per second:/ { q = $4 } END { print c + 0, q + 0 }' "$out")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$r" "$qps" "$completed" $((c1 - c0)) "$CLK_TCK" "$busy_pct" >>rrl.tsv
            log "RRL $mode round $r: $qps qps, $completed completed, server cpu $((c1 - c0)) ticks"
        done
    done
    on_config=signalbox.toml
    [[ $RRL == on ]] || on_config=signalbox-rrl-on.toml
    info rrl_status "$("$SIGNALBOX" status -c "$on_config" 2>&1 | grep '^rrl:' || echo '?')"
    stop_pid "$RRL_PID"
fi

# ---------------------------------------------------------------- 5. key-change latency
keychange() { # LABEL DEBOUNCE SEED
    local label=$1 rounds0 rc=0
    rounds0=$(grep -c 'round done' "$SB_LOG" || true)
    wait_quiet "key changes ($label)"
    log "key-change latency ($label, debounce $2): $CHANGES changes"
    run_fg "$PY" "$BENCH_DIR/dnsprobe.py" --port "$SB_PORT" keychange --dir children --children children.txt \
        --apex "$APEX" --count "$CHANGES" --seed "$3" --gap "$CHANGE_GAP" --added keys-added.txt \
        >"latency-$label.txt" 2>"latency-$label.err" || rc=$?
    cat "latency-$label.err" >&2
    info "debounce_$label" "$2"
    info "failed_$label" "$(grep -c 'not served within' "latency-$label.err" || true)"
    info "round_ms_$label" "$(grep 'round done' "$SB_LOG" | tail -n +$((rounds0 + 1)) | grep -o 'elapsed_ms=[0-9]*' | cut -d= -f2 | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] " (" NR " rounds)"; else print "-" }')"
    info "round_count_$label" "$(($(grep -c 'round done' "$SB_LOG" || true) - rounds0))"
    return 0
}
if [[ $CHANGES -gt 0 ]]; then
    keychange default "$DEFAULT_DEBOUNCE (default)" 7
    info sb_rss_kb_after_keychanges "$(rss_kb "$SB_PID")"
fi

if [[ -n $FAST_DEBOUNCE && $CHANGES -gt 0 ]]; then
    stop_pid "$SB_PID"
    rm -rf state # cold: the instance must have finished its first round before the changes
    start_signalbox "signalbox cold start ([watch] debounce = $FAST_DEBOUNCE)" 1 signalbox-fast.toml
    wait_log 'round done' "$SB_LOG" 1 "$START_TIMEOUT" || die "signalbox: no round done (see $SB_LOG)"
    keychange fast "$FAST_DEBOUNCE" 8
fi

# ---------------------------------------------------------------- 6. report
stop_pid "$SB_PID"
stop_pid "$KNOT_PID"
stop_pid "$NSD_PID"

mkdir -p "$RESULTS_DIR"
RESULT=$RESULTS_DIR/$(date -u +%Y-%m-%d).txt
[[ -e $RESULT ]] && RESULT=$RESULTS_DIR/$(date -u +%Y-%m-%d-%H%M%S).txt
{
    echo "# signalbox benchmark, $STARTED_AT .. $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "command: N=$N QUERIES=$QUERIES ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP STARTUP_REPS=$STARTUP_REPS CHANGES=$CHANGES FAST_DEBOUNCE=$FAST_DEBOUNCE CHANGE_GAP=$CHANGE_GAP WARM_ROUND_TIMEOUT=$WARM_ROUND_TIMEOUT QUIET_MAX_WAIT=$QUIET_MAX_WAIT RESCAN_INTERVAL=$RESCAN_INTERVAL SEED=$SEED bench/run.sh"
    echo "signalbox config (load tests): $(grep -v '^#' "$WORK/signalbox.toml" | tr '\n' ' ')"
    echo "machine: nproc=$(nproc), $(lscpu | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), Debian $(cat /etc/debian_version 2>/dev/null || echo '?')"
    echo "load average at start: $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg); measurements started on a busy machine (other processes): $NOT_QUIET"
    echo "signalbox: $SB_BUILD (binary sha256 $SB_SHA...)"
    echo "knot: $(knotd --version | head -1); nsd: $(nsd -v 2>&1 | head -1); $(dnsperf -h 2>&1 | grep -m1 -i version || dnsperf 2>&1 | grep -m1 -i version || echo 'dnsperf ?'); $(dnssec-signzone -V 2>&1 | head -1)"
    echo
    "$PY" "$BENCH_DIR/report.py" "$WORK" || echo "(report.py failed: the raw data follows)"
    echo
    echo "## Raw"
    echo
    echo "### info.tsv"
    cat info.tsv
    echo
    echo "### startup.tsv"
    cat startup.tsv
    echo
    echo "### runs.tsv"
    cat runs.tsv
    echo
    echo "### rrl.tsv"
    cat rrl.tsv
    echo
    for f in latency-*.txt; do
        [[ -e $f ]] || continue # CHANGES=0: no key-change runs
        echo "### $f ($(wc -l <"$f") changes; ms)"
        tr '\n' ' ' <"$f"
        echo
        cat "${f%.txt}.err"
    done
    echo
    echo "### signalbox warnings and errors (all instances)"
    grep -h -E ' (WARN|ERROR) ' signalbox-*.log | head -50 || echo "(none)"
    echo
    echo "### signalbox round log of the load-test instance"
    grep -E 'warm start|round done|zone updated' "$SB_MAIN_LOG" | head -20 || true
    echo
    echo "### dnssec-signzone"
    cat signzone.out
    if [[ -s answer-diffs.txt ]]; then
        echo
        echo "### answer differences"
        head -100 answer-diffs.txt
    fi
    echo
    echo "### dnsperf outputs (measured runs)"
    for f in dnsperf/*-[0-9].txt; do
        echo "#### $f"
        sed -n '/Statistics:/,$p' "$f"
    done
} >"$RESULT"

echo
"$PY" "$BENCH_DIR/report.py" "$WORK"
echo
log "raw results: $RESULT"
