#!/usr/bin/env python3
"""Summarise the raw results of bench/run.sh: medians, ratios, targets.

Reads, from the work directory given as the only argument:
  runs.tsv      server round qps sent completed lost cpu_ticks clk_tck rss_kb pss_kb
                req_size resp_size latency_s bg_rounds
  startup.tsv   what rep ms note
  latency-<label>.txt   one key-change latency (ms) per line
  info.tsv      key value (debounce settings, signing time, ...)
Prints the summary (markdown tables) on stdout.

  report.py WORKDIR            (what bench/run.sh does)
  report.py --results FILE     re-summarise a bench/results/<date>.txt from its raw sections
"""
import os
import re
import statistics
import sys
import tempfile

SERVERS = ["signalbox", "knot", "nsd"]
LABEL = {"signalbox": "signalbox", "knot": "Knot", "nsd": "NSD"}
QUIET_REST = 40  # a run is "least disturbed" when the rest of the machine used <= this % of a core


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    head, rows = lines[0], lines[1:]
    return [dict(zip(head, r)) for r in rows]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    s = sorted(xs)
    if not s:
        return float("nan")
    # nearest rank
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def fmt(x, nd=1):
    return "n/a" if x != x else f"{x:,.{nd}f}"


def unpack_results(path):
    """Writes the raw sections of a results file into a temp dir; returns it."""
    out = tempfile.mkdtemp(prefix="signalbox-report-")
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^### (info|startup|runs|rrl)\.tsv$", line)
        if m:
            j = i + 1
            with open(os.path.join(out, m.group(1) + ".tsv"), "w") as f:
                while j < len(lines) and lines[j].strip():
                    f.write(lines[j] + "\n")
                    j += 1
            i = j
            continue
        m = re.match(r"^### latency-(\w+)\.txt", line)
        if m and i + 1 < len(lines):
            vals = [v for v in lines[i + 1].split() if re.match(r"^[0-9.]+$", v)]
            with open(os.path.join(out, f"latency-{m.group(1)}.txt"), "w") as f:
                f.write("".join(v + "\n" for v in vals))
        i += 1
    return out


def rrl_cost(rows):
    """Pairs the RRL on/off runs of each round: {"rounds": {r: (on, off)}, "ratio": median}."""
    runs = {}
    for r in rows:
        if int(r["completed"]) <= 0:
            continue
        cpu_us = int(r["cpu_ticks"]) / int(r["clk_tck"]) / int(r["completed"]) * 1e6
        runs.setdefault(int(r["round"]), {})[r["rrl"]] = {"qps": float(r["qps"]), "cpu_us": cpu_us}
    rounds = {k: (v["on"], v["off"]) for k, v in runs.items() if "on" in v and "off" in v}
    if not rounds:
        return None
    return {"rounds": rounds, "ratio": median([on["cpu_us"] / off["cpu_us"] for on, off in rounds.values()])}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--results":
        work = unpack_results(sys.argv[2])
    elif len(sys.argv) == 2:
        work = sys.argv[1]
    else:
        sys.exit("usage: report.py WORKDIR | report.py --results FILE")
    runs = read_tsv(os.path.join(work, "runs.tsv"))
    startup = read_tsv(os.path.join(work, "startup.tsv"))
    info = {r["key"]: r["value"] for r in read_tsv(os.path.join(work, "info.tsv"))}

    ncpu = int(info.get("nproc", "2"))

    def cpu_pct(r):  # server CPU, % of one core
        return int(r["cpu_ticks"]) / int(r["clk_tck"]) / float(r["completed"]) * float(r["qps"]) * 100

    def rest_pct(r):  # machine busy time not charged to the server or dnsperf, % of one core
        return float(r["machine_busy_pct"]) * ncpu - cpu_pct(r) - float(r["dnsperf_cpu_pct"])

    med = {}
    for s in SERVERS:
        rs = [r for r in runs if r["server"] == s and int(r["completed"]) > 0]
        if not rs:
            continue
        cpu_us = [int(r["cpu_ticks"]) / int(r["clk_tck"]) / int(r["completed"]) * 1e6
                  for r in rs]
        med[s] = {
            "n": len(rs),
            "qps": median([float(r["qps"]) for r in rs]),
            "qps_all": [float(r["qps"]) for r in rs],
            "completed": median([int(r["completed"]) for r in rs]),
            "lost": sum(int(r["lost"]) for r in rs),
            "sent": sum(int(r["sent"]) for r in rs),
            "cpu_us": median(cpu_us),
            "cpu_all": cpu_us,
            "rss_mib": median([int(r["rss_kb"]) / 1024 for r in rs]),
            "pss_mib": median([int(r["pss_kb"]) / 1024 for r in rs]),
            "resp": median([float(r["resp_size"]) for r in rs]),
            "lat_ms": median([float(r["latency_s"]) * 1000 for r in rs]),
            "bg": sum(int(r["bg_rounds"]) for r in rs),
            "busy": median([float(r.get("machine_busy_pct", "nan")) for r in rs]),
            "client": median([float(r.get("dnsperf_cpu_pct", "nan")) for r in rs]),
            "other": median([rest_pct(r) for r in rs]),
            "rest_all": [rest_pct(r) for r in rs],
            "server_pct": median([cpu_pct(r) for r in rs]),
        }

    out = []
    p = out.append
    p("## Throughput (dnsperf, DO=1; medians over rounds)\n")
    p("| server | runs | QPS (median) | QPS per run | server CPU/query (us) | CPU/query per run | "
      "lost (all runs) | RSS MiB | PSS MiB | avg response B | avg latency ms | CPU % server / dnsperf / rest | rest % per run |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in SERVERS:
        if s not in med:
            continue
        m = med[s]
        p(f"| {LABEL[s]} | {m['n']} | {fmt(m['qps'], 0)} | "
          f"{' / '.join(fmt(x, 0) for x in m['qps_all'])} | {fmt(m['cpu_us'], 2)} | "
          f"{' / '.join(fmt(x, 2) for x in m['cpu_all'])} | {m['lost']:,} of {m['sent']:,} | "
          f"{fmt(m['rss_mib'])} | {fmt(m['pss_mib'])} | {fmt(m['resp'], 0)} | {fmt(m['lat_ms'], 2)} | "
          f"{fmt(m['server_pct'], 0)} / {fmt(m['client'], 0)} / {fmt(m['other'], 0)} | "
          f"{' / '.join(fmt(x, 0) for x in m['rest_all'])} |")
    if med.get("signalbox", {}).get("bg"):
        p(f"\nWARNING: signalbox logged {med['signalbox']['bg']} round(s) during measured runs "
          "(background work counted in its CPU).")
    p("\nRSS = VmRSS (sum over processes); PSS = Pss from /proc/PID/smaps_rollup summed over all "
      "of the server's processes (NSD: xfrd, main and 2 servers; Knot and signalbox are one "
      "process each). CPU = utime+stime from /proc/PID/stat over the measured run, all threads "
      "and (NSD) all processes, divided by queries completed. 'CPU % server / dnsperf / rest' "
      "(100% = one core): the server's and dnsperf's CPU, and the rest of the machine's busy time "
      "from /proc/stat (loopback softirq not charged to a process, and anything else running: "
      f"{int(info.get('nproc', '2')) * 100}% minus the three is idle).\n")

    rrl = rrl_cost(read_tsv(os.path.join(work, "rrl.tsv")))
    if rrl:
        p("## RRL cost (issue 13): signalbox CPU per query with RRL on vs off, interleaved\n")
        p("| round | on: QPS | on: CPU/query (us) | off: QPS | off: CPU/query (us) | on/off |")
        p("|---|---|---|---|---|---|")
        for r, (on, off) in sorted(rrl["rounds"].items()):
            p(f"| {r} | {fmt(on['qps'], 0)} | {fmt(on['cpu_us'], 3)} | {fmt(off['qps'], 0)} | "
              f"{fmt(off['cpu_us'], 3)} | {on['cpu_us'] / off['cpu_us']:.3f} |")
        p(f"\nMedian on/off ratio of CPU per query: {rrl['ratio']:.3f} "
          f"(on {info.get('rrl', '?')}; {info.get('rrl_status', '')})\n")

    sb = med.get("signalbox")
    if sb:
        p("## signalbox relative to the others\n")
        p("| ratio | vs Knot | vs NSD |")
        p("|---|---|---|")

        def ratio(key, other, mem=None):
            if other not in med:
                return "n/a"
            a, b = sb[key], med[other][key]
            return f"{a / b:.2f}" if b else "n/a"
        p(f"| QPS (higher is better) | {ratio('qps', 'knot')} | {ratio('qps', 'nsd')} |")
        p(f"| server CPU per query (lower is better) | {ratio('cpu_us', 'knot')} | {ratio('cpu_us', 'nsd')} |")
        p(f"| RSS (VmRSS; lower is better) | {ratio('rss_mib', 'knot')} | {ratio('rss_mib', 'nsd')} |")
        p(f"| PSS, all processes (lower is better) | {ratio('pss_mib', 'knot')} | {ratio('pss_mib', 'nsd')} |")
        p("")

    quiet = {}
    for s in SERVERS:
        rs = [r for r in runs if r["server"] == s and int(r["completed"]) > 0 and rest_pct(r) <= QUIET_REST]
        if rs:
            quiet[s] = {
                "n": len(rs),
                "qps": median([float(r["qps"]) for r in rs]),
                "cpu_us": median([int(r["cpu_ticks"]) / int(r["clk_tck"]) / int(r["completed"]) * 1e6 for r in rs]),
            }
    if quiet:
        p(f"## Least-disturbed runs only (rest <= {QUIET_REST}% of a core)\n")
        p("On a shared VM other jobs land in some runs; these are the runs where little else ran.\n")
        p("| server | runs | QPS (median) | server CPU/query (us) | QPS vs Knot | CPU/query vs Knot |")
        p("|---|---|---|---|---|---|")
        for s in SERVERS:
            if s not in quiet:
                p(f"| {LABEL[s]} | 0 | - | - | - | - |")
                continue
            q, k = quiet[s], quiet.get("knot")
            p(f"| {LABEL[s]} | {q['n']} | {fmt(q['qps'], 0)} | {fmt(q['cpu_us'], 2)} | "
              f"{fmt(q['qps'] / k['qps'], 2) if k else 'n/a'} | {fmt(q['cpu_us'] / k['cpu_us'], 2) if k else 'n/a'} |")
        p("")

    p("## Start-up (launch to first signed answer for a _dsboot name)\n")
    p("| what | runs (ms) | median ms | notes |")
    p("|---|---|---|---|")
    kinds = []
    for r in startup:
        if r["what"] not in kinds:
            kinds.append(r["what"])
    st = {}
    for k in kinds:
        rs = [r for r in startup if r["what"] == k]
        vals = [float(r["ms"]) for r in rs if r["ms"] not in ("", "-")]
        st[k] = median(vals)
        notes = "; ".join(sorted({r["note"] for r in rs if r["note"]}))
        p(f"| {k} | {' / '.join(fmt(v, 0) for v in vals) or '-'} | {fmt(st[k], 0)} | {notes} |")
    p("")

    lat = {}
    p("## Key-change latency (rename of a new .key into place -> new CDS digest served, UDP)\n")
    p("| run | debounce | changes ok | failed | p50 ms | p99 ms | max ms | median round elapsed_ms |")
    p("|---|---|---|---|---|---|---|---|")
    for label in ("default", "fast"):
        path = os.path.join(work, f"latency-{label}.txt")
        if not os.path.exists(path):
            continue
        xs = [float(x) for x in open(path) if x.strip()]
        lat[label] = xs
        p(f"| {label} | {info.get('debounce_' + label, '?')} | {len(xs)} | "
          f"{info.get('failed_' + label, '?')} | {fmt(pct(xs, 50))} | {fmt(pct(xs, 99))} | "
          f"{fmt(max(xs) if xs else float('nan'))} | {info.get('round_ms_' + label, '?')} |")
    p("")

    # Targets (from the issue).
    p("## Targets\n")
    p("| target | measured | met? |")
    p("|---|---|---|")

    def row(name, measured, ok, miss=""):
        verdict = "n/a" if ok is None else ("met" if ok else f"MISSED{(' ' + miss) if miss else ''}")
        p(f"| {name} | {measured} | {verdict} |")

    if sb and "knot" in med:
        r = sb["cpu_us"] / med["knot"]["cpu_us"]
        row("server CPU/query <= 0.8x Knot", f"{r:.2f}x ({fmt(sb['cpu_us'], 2)} vs {fmt(med['knot']['cpu_us'], 2)} us)",
            r <= 0.8, f"by {(r / 0.8 - 1) * 100:.0f}% (needs {0.8 * med['knot']['cpu_us']:.2f} us)")
        r = sb["qps"] / med["knot"]["qps"]
        row("QPS >= 1.0x Knot", f"{r:.2f}x", r >= 1.0, f"by {(1 - r) * 100:.1f}%")
        r = sb["rss_mib"] / med["knot"]["rss_mib"]
        row("RSS <= Knot's", f"{fmt(sb['rss_mib'])} vs {fmt(med['knot']['rss_mib'])} MiB ({r:.2f}x)",
            r <= 1.0, f"by {sb['rss_mib'] - med['knot']['rss_mib']:.0f} MiB ({r:.1f}x)")
    if rrl:
        row("CPU/query with RRL on within 5% of off", f"{rrl['ratio']:.3f}x (median of {len(rrl['rounds'])} rounds)",
            rrl["ratio"] <= 1.05, f"by {(rrl['ratio'] - 1.05) * 100:.1f} points")
    cold = st.get("signalbox cold start (signs everything)")
    if cold is not None and cold == cold:
        n = info.get("n", "?")
        row(f"cold start N=100k <= 4 s (this run: N={n})", f"{cold / 1000:.2f} s", cold <= 4000,
            f"by {(cold - 4000) / 1000:.1f} s ({cold / 4000:.1f}x)")
    warm = st.get("signalbox warm start (state dir present)")
    if warm is not None and warm == warm:
        row("warm start <= 1.5 s", f"{warm / 1000:.2f} s", warm <= 1500,
            f"by {(warm - 1500) / 1000:.2f} s")
    if "default" in lat and lat["default"]:
        p99 = pct(lat["default"], 99)
        failed = int(info.get("failed_default", "0") or 0)
        row("key-change latency p99 < 500 ms (default debounce)",
            f"{p99:.0f} ms" + (f", {failed} changes never served" if failed else ""),
            p99 < 500 and failed == 0, f"by {p99 - 500:.0f} ms" if p99 >= 500 else "")
    print("\n".join(out))


if __name__ == "__main__":
    main()
