#!/usr/bin/python3
"""bench_run.py BUILD - the driver behind scripts/bench.sh (`make bench`).

Runs, in one go, on 127.0.0.1 only, with ports found by binding port 0:
  1. mxload -> mxsink direct, -> mxgate -> mxsink, -> haproxy -> mxsink for
     1 KB / 100 KB / 1 MB at 1 / 10 / 100 connections (many messages per
     connection), at 10 connections with one message per connection, and
     1 KB with a pipelining client;
     msgs/s, MB/s, ratios to direct, and each proxy's CPU per message
     (utime+stime of the whole process from /proc/PID/stat);
  2. mxsink vs Postfix smtp-sink for 1 MB messages, driven by mxload and
     by smtp-source;
  3. mxload vs Postfix smtp-source against the same mxsink, no pipelining;
  4. mxgate's RSS with 10,000 idle client connections;
  5. limits off vs on (embedded store, Redis): msgs/s, mxgate CPU/msg,
     Redis commands and redis-server CPU per message;
  6. TLS: handshakes (full, resumed; implicit and STARTTLS) per second and
     mxgate CPU per handshake against build/tlsbench (wolfSSL alone), and
     STARTTLS vs plaintext throughput with mxgate CPU-seconds per GB.
BENCH_ONLY=limits (comma-separated section names) runs only some sections.
Writes BUILD/bench/results.md (also printed) and BUILD/bench/results.json.
Standard library only. Every process it starts is recorded in
BUILD/bench/pids ("PID EXE") for bench.sh's EXIT trap, and stopped here.
"""
import datetime
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
MiB = 1024 * 1024
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
SKIP_AUTO = os.environ.get("BENCH_SKIP_AUTO", "") not in ("", "0")
# BENCH_ONLY=limits (or a comma-separated list of proxies, sinks, loaders,
# idle, limits, tls) runs only those sections; unset = all.
ONLY = [x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.chdir(ROOT)
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
OUT = os.path.join(BUILD, "bench")
os.makedirs(OUT, exist_ok=True)
PIDFILE = os.path.join(OUT, "pids")
MXGATE = os.path.abspath(os.path.join(BUILD, "mxgate"))
MXSINK = os.path.abspath(os.path.join(BUILD, "mxsink"))
MXLOAD = os.path.abspath(os.path.join(BUILD, "mxload"))
TLSBENCH = os.path.abspath(os.path.join(BUILD, "tlsbench"))
OPENSSL = shutil.which("openssl")
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)


def postfix_tool(name):
    for d in ("/usr/sbin", "/usr/bin", "/usr/libexec/postfix"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
SMTP_SINK = postfix_tool("smtp-sink")
SMTP_SOURCE = postfix_tool("smtp-source")

SIZES = [("1 KB", 1024, "1k"), ("100 KB", 100 * 1024, "100k"), ("1 MB", MiB, "1M")]
CONNS = [1, 10, 100]
DURATION = {1024: 4.0, 100 * 1024: 4.0, MiB: 6.0}   # seconds per measured cell
# Section 1 splits each cell's time into rounds, every target once per
# round in a rotated order, so a slow spell of this shared VM hits the
# targets alike; figures are medians over the rounds.
PROXY_ROUNDS = 3
WARMUP = 0.5                                          # seconds, same parameters
HARD_DEADLINE = time.monotonic() + 20 * 60            # whole run, whatever happens

warnings = []
procs = {}          # name -> subprocess.Popen (long-running servers)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def warn(msg):
    warnings.append(msg)
    log("WARNING: " + msg)


def check_deadline():
    if time.monotonic() > HARD_DEADLINE:
        raise SystemExit("bench: whole-run deadline (20 min) exceeded")


# ------------------------------------------------------------------ /proc

def proc_ticks(pid):
    """utime+stime of the whole process (all threads, live and exited)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    rest = s[s.rfind(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def sys_busy_ticks():
    """Busy ticks of all CPUs (iowait counts as idle: io_uring waits show as iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = v[:7]
    steal = v[7] if len(v) > 7 else 0
    return user + nice + system + irq + softirq + steal


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


# ------------------------------------------------------------------ processes

def free_port():
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in (2525, 2600):
            return port
    raise SystemExit("bench: no free port")


def record_pid(pid, exe):
    with open(PIDFILE, "a") as f:
        f.write("%d %s\n" % (pid, os.path.realpath(exe)))


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(name, argv, port, env=None):
    """Start a server in the background, wait until it accepts on port."""
    logpath = os.path.join(OUT, name + ".log")
    logf = open(logpath, "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env)
    logf.close()
    record_pid(p.pid, argv[0])
    procs[name] = p
    p.logpath = logpath
    p.port = port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        if port_open(port):
            return p
        time.sleep(0.05)
    stop(name)
    with open(logpath, errors="replace") as f:
        tail = f.read()[-2000:]
    raise SystemExit("bench: %s did not listen on 127.0.0.1:%d; its log:\n%s" % (name, port, tail))


def stop(name, grace=5.0):
    p = procs.pop(name, None)
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    poked = False
    while time.monotonic() < deadline:
        if p.poll() is not None:
            return
        # mxsink notices SIGTERM only on its next completion: give it one.
        if not poked and time.monotonic() > deadline - grace + 0.2:
            poked = True
            try:
                socket.create_connection(("127.0.0.1", p.port), timeout=0.5).close()
            except OSError:
                pass
        time.sleep(0.05)
    p.kill()
    p.wait()
    warn("%s (pid %d) did not exit within %.0f s of SIGTERM; killed" % (name, p.pid, grace))


def stop_all():
    for name in list(procs):
        stop(name, grace=3.0)


def run_timed(argv, timeout):
    """Run a client to completion, bounded; returns (rc, stdout, stderr, cpu_s, wall_s)."""
    outp = os.path.join(OUT, "client.out")
    errp = os.path.join(OUT, "client.err")
    with open(outp, "wb") as o, open(errp, "wb") as e:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                             start_new_session=True)
        record_pid(p.pid, argv[0])
        deadline = t0 + timeout
        ru = None
        status = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                warn("%s killed after %.0f s" % (" ".join(argv[:3]), timeout))
                break
            time.sleep(0.005)
        wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    with open(outp, errors="replace") as f:
        out = f.read()
    with open(errp, errors="replace") as f:
        err = f.read()
    return p.returncode, out, err, ru.ru_utime + ru.ru_stime, wall


# ------------------------------------------------------------------ measuring

class Meter:
    """CPU of the watched processes and of the whole machine over an interval."""

    def __init__(self, **pids):
        self.pids = {k: v for k, v in pids.items() if v}

    def __enter__(self):
        self.t0 = {k: proc_ticks(v) for k, v in self.pids.items()}
        self.s0 = sys_busy_ticks()
        return self

    def __exit__(self, *exc):
        self.cpu = {k: (proc_ticks(v) - self.t0[k]) / CLK_TCK for k, v in self.pids.items()}
        self.sys = (sys_busy_ticks() - self.s0) / CLK_TCK
        return False


def mxload_argv(port, conns, size_arg, seconds=None, messages=None, per_conn=0, args=()):
    argv = [MXLOAD, "--target", "127.0.0.1:%d" % port, "--connections", str(conns),
            "--size", size_arg, "--json", "--timeout", "20s"]
    if seconds is not None:
        argv += ["--duration", "%dms" % int(seconds * 1000)]
    else:
        argv += ["--messages", str(messages)]
    if per_conn:
        argv += ["--per-connection", str(per_conn)]
    return argv + list(args)


def parse_mxload(rc, out, err, what):
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        warn("%s: mxload exited %d without a JSON report: %s" % (what, rc, (err or out).strip()[-300:]))
        return None
    bad = {k: j.get(k, 0) for k in ("refused_total", "rcpt_refused", "connect_errors",
                                    "disconnects", "timeouts", "tls_failures")}
    bad = {k: v for k, v in bad.items() if v}
    if j.get("accepted", 0) != j.get("sent", 0) or bad or j.get("accepted", 0) == 0:
        warn("%s: sent %s accepted %s %s %s" % (what, j.get("sent"), j.get("accepted"),
                                                 bad, j.get("refused", {})))
        j["_failed"] = True
    return j


accepted_by_sink = {}   # sink name -> messages accepted by clients (warm-ups included)


def count_to(sink, n):
    accepted_by_sink[sink] = accepted_by_sink.get(sink, 0) + (n or 0)


def mxload_cell(what, port, conns, size, size_arg, per_conn, sink, proxy_pid=None, sink_pid=None,
                seconds=None, before=None, after=None, args=(), **extra_pids):
    """Warm up, then one measured mxload run; returns a result dict.

    before() and after() (optional) run right before and right after the
    timed run; after(before_value) is stored as r["extra"]. extra_pids
    (name=pid) are metered too, as r["<name>_cpu_s"]. args: more mxload
    options (--tls ...), for the warm-up too."""
    check_deadline()
    dur = seconds if seconds is not None else DURATION[size] * SCALE
    rc, out, err, _, _ = run_timed(mxload_argv(port, conns, size_arg, seconds=WARMUP, per_conn=per_conn,
                                               args=args), WARMUP + 40)
    w = parse_mxload(rc, out, err, what + " (warm-up)")
    count_to(sink, w and w.get("accepted"))
    b = before() if before else None
    with Meter(proxy=proxy_pid, sink=sink_pid, **extra_pids) as m:
        rc, out, err, load_cpu, wall = run_timed(
            mxload_argv(port, conns, size_arg, seconds=dur, per_conn=per_conn, args=args), dur + 60)
    extra = after(b) if after else None
    j = parse_mxload(rc, out, err, what)
    r = {"what": what, "conns": conns, "size": size, "per_connection": per_conn,
         "wall_s": round(wall, 3), "loader_cpu_s": round(load_cpu, 3),
         "proxy_cpu_s": m.cpu.get("proxy"), "sink_cpu_s": m.cpu.get("sink"),
         "machine_busy_s": round(m.sys, 2), "mxload": j, "ok": bool(j) and not j.get("_failed")}
    for k in extra_pids:
        if k in m.cpu:
            r[k + "_cpu_s"] = m.cpu[k]
    if after:
        r["extra"] = extra
    if j:
        count_to(sink, j.get("accepted"))
        r["msgs_per_s"] = j["msgs_per_s"]
        r["mb_per_s"] = j["mb_per_s"]
        r["accepted"] = j["accepted"]
        if proxy_pid and j["accepted"]:
            r["proxy_cpu_ms_per_msg"] = m.cpu["proxy"] * 1000.0 / j["accepted"]
        known = load_cpu + sum(m.cpu.values())
        r["other_cpu_s"] = round(max(0.0, m.sys - known), 2)
    log("%-34s %9s msgs/s %9s MB/s  cpu load %.2f proxy %s sink %s other %s (s)" % (
        what, r.get("msgs_per_s"), r.get("mb_per_s"), load_cpu,
        "%.2f" % m.cpu["proxy"] if "proxy" in m.cpu else "-",
        "%.2f" % m.cpu["sink"] if "sink" in m.cpu else "-", r.get("other_cpu_s")))
    return r


def merge_rounds(what, runs):
    """One target's rounds of a cell as one result: CPU and wall summed
    (for the where-the-CPU-went table), msgs/s, MB/s and CPU per message
    the medians of the rounds; "rounds" keeps each round."""
    r = {"what": what, "conns": runs[0]["conns"], "size": runs[0]["size"],
         "per_connection": runs[0]["per_connection"], "ok": all(x.get("ok") for x in runs),
         "rounds": runs}
    for k in ("wall_s", "loader_cpu_s", "proxy_cpu_s", "sink_cpu_s", "other_cpu_s", "machine_busy_s"):
        v = [x[k] for x in runs if x.get(k) is not None]
        if v:
            r[k] = round(sum(v), 3)
    for k in ("msgs_per_s", "mb_per_s", "proxy_cpu_ms_per_msg"):
        v = [x[k] for x in runs if x.get(k) is not None]
        if v:
            r[k] = statistics.median(v)
    r["accepted"] = sum(x.get("accepted") or 0 for x in runs)
    return r


def round_ratio(a, b, key="proxy_cpu_ms_per_msg"):
    """Median (and range) of a/b over rounds run side by side: the round
    pairing cancels most of the machine's slow and fast spells."""
    if not a or not b:
        return "-"
    v = [x[key] / y[key] for x, y in zip(a.get("rounds", [a]), b.get("rounds", [b]))
         if x.get(key) and y.get(key)]
    if not v:
        return "-"
    if len(v) == 1:
        return "%.2f" % v[0]
    return "%.2f (%.2f-%.2f)" % (statistics.median(v), min(v), max(v))


def sink_totals(name):
    """Stop an mxsink and parse its totals line (after SIGTERM it prints them)."""
    p = procs.get(name)
    if p is None:
        return None
    logpath = p.logpath
    stop(name)
    try:
        with open(logpath, errors="replace") as f:
            for line in f:
                if line.startswith("mxsink: connections="):
                    return {k: int(v) for k, v in (x.split("=") for x in line.split()[1:])}
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ configs

def mxgate_conf(name, port, sink_port, workers, extra=""):
    path = os.path.abspath(os.path.join(OUT, name + ".conf"))
    with open(path, "w") as f:
        f.write("""; generated by scripts/bench_run.py
[server]
hostname = bench.mxgate.test
workers = %s
max_message_size = 50M
drain_timeout = 2s
log_level = warn

[listener bench]
listen = 127.0.0.1:%d
relay_domains = *

[backend sink]
address = 127.0.0.1:%d
max_connections = 1000
""" % (workers, port, sink_port) + extra)
    rc = subprocess.run([MXGATE, "-t", "-c", path], stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=10)
    if rc.returncode != 0:
        raise SystemExit("bench: generated %s rejected: %s" % (path, rc.stdout + rc.stderr))
    return path


def haproxy_conf(port, sink_port):
    path = os.path.abspath(os.path.join(OUT, "haproxy.cfg"))
    with open(path, "w") as f:
        f.write("""# generated by scripts/bench_run.py: a blind TCP hop in front of mxsink
global
    nbthread 1
    maxconn 5000

defaults
    mode tcp
    no log
    maxconn 5000
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend bench
    bind 127.0.0.1:%d
    default_backend sink

backend sink
    server sink 127.0.0.1:%d
""" % (port, sink_port))
    rc = subprocess.run([HAPROXY, "-c", "-q", "-f", path], stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=10)
    if rc.returncode != 0:
        raise SystemExit("bench: generated %s rejected: %s" % (path, rc.stdout + rc.stderr))
    return path


# ------------------------------------------------------------------ sections

def section_proxies(res):
    sink_port = free_port()
    start("mxsink", [MXSINK, "--listen", "127.0.0.1:%d" % sink_port, "--quiet"], sink_port)
    sink_pid = procs["mxsink"].pid
    targets = [("direct", sink_port, None)]
    gport = free_port()
    start("mxgate", [MXGATE, "-c", mxgate_conf("mxgate", gport, sink_port, 1)], gport)
    targets.append(("mxgate", gport, procs["mxgate"].pid))
    if HAPROXY:
        hport = free_port()
        start("haproxy", [HAPROXY, "-db", "-f", haproxy_conf(hport, sink_port)], hport)
        targets.append(("haproxy", hport, procs["haproxy"].pid))
    else:
        warn("haproxy not installed: the haproxy columns are skipped (scripts/install-deps.sh installs it)")
    if not SKIP_AUTO:
        aport = free_port()
        start("mxgate-auto", [MXGATE, "-c", mxgate_conf("mxgate-auto", aport, sink_port, "auto")], aport)
        targets.append(("mxgate-auto", aport, procs["mxgate-auto"].pid))

    # Many messages per connection, one per connection, and clients that
    # pipeline MAIL, RCPT and DATA as Postfix and Exim do (1 KB, where the
    # round trips weigh most).
    grid = ([(s, c, 0, False) for s in SIZES for c in CONNS] + [(s, 10, 1, False) for s in SIZES] +
            [(SIZES[0], c, 0, True) for c in CONNS])
    cells = []
    for (label, size, size_arg), conns, per_conn, pipe in grid:
        row = {"size_label": label, "size": size, "conns": conns, "per_connection": per_conn,
               "pipelining": pipe}
        runs = {mode: [] for mode, _, _ in targets}
        secs = DURATION[size] * SCALE / PROXY_ROUNDS
        name = {mode: "%s %s x%d%s%s" % (mode, label, conns, " 1/conn" if per_conn else "",
                                         " pipelined" if pipe else "")
                for mode, _, _ in targets}
        for rnd in range(PROXY_ROUNDS):
            k = rnd % len(targets)
            for mode, port, ppid in targets[k:] + targets[:k]:
                runs[mode].append(mxload_cell("%s r%d" % (name[mode], rnd + 1), port, conns, size,
                                              size_arg, per_conn, "mxsink", proxy_pid=ppid,
                                              sink_pid=sink_pid, seconds=secs,
                                              args=("--pipelining",) if pipe else ()))
        for mode in runs:
            row[mode] = merge_rounds(name[mode], runs[mode])
        cells.append(row)
    res["proxies"] = {"cells": cells, "modes": [t[0] for t in targets],
                      "clk_tck": CLK_TCK, "rounds": PROXY_ROUNDS}
    for name in ("mxgate", "mxgate-auto", "haproxy"):
        p = procs.get(name)
        if p is not None and p.poll() is not None:
            warn("%s exited during the run (status %s); see %s" % (name, p.returncode, p.logpath))
        stop(name)
    tot = sink_totals("mxsink")
    res["proxies"]["mxsink_totals"] = tot
    res["proxies"]["accepted_by_clients"] = accepted_by_sink.get("mxsink", 0)
    if tot is None:
        warn("mxsink printed no totals on exit (cannot cross-check delivered messages)")
    elif tot["messages"] != accepted_by_sink.get("mxsink", 0):
        warn("mxsink counted %d messages, the clients had %d accepted" % (
            tot["messages"], accepted_by_sink.get("mxsink", 0)))
    for name in ("mxgate", "mxgate-auto", "haproxy"):
        path = os.path.join(OUT, name + ".log")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
            res["proxies"][name + "_log_lines"] = len(lines)
            if name.startswith("mxgate") and lines:
                warn("%s logged %d lines at log_level=warn, e.g. %s" % (name, len(lines), lines[0][:200]))


def smtp_source_run(port, sessions, msgs, length, per_session, what):
    argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(msgs), "-l", str(length),
            "-f", "loader@example.test", "-t", "user1@example.test"]
    if per_session:
        argv.append("-d")
    argv.append("127.0.0.1:%d" % port)
    rc, out, err, cpu, wall = run_timed(argv, 120)
    ok = rc == 0 and not err.strip()
    if not ok:
        warn("%s: smtp-source exit %d: %s" % (what, rc, err.strip()[-300:]))
    return {"argv": argv[1:], "rc": rc, "ok": ok, "messages": msgs, "wall_s": round(wall, 3),
            "loader_cpu_s": round(cpu, 3), "msgs_per_s": msgs / wall if wall > 0 else 0.0,
            "mb_per_s": msgs * length / MiB / wall if wall > 0 else 0.0}


def smtp_source_cell(port, sessions, length, per_session, what, sink, sink_pid, seconds):
    """smtp-source sends a fixed count: calibrate on a short run, then aim for `seconds`."""
    check_deadline()
    probe = 100 if length >= MiB else (400 if length >= 100 * 1024 else 2000)
    c = smtp_source_run(port, sessions, probe, length, per_session, what + " (calibration)")
    if c["ok"]:
        count_to(sink, probe)
    n = int(min(max(c["msgs_per_s"] * seconds, probe), 500000))
    with Meter(sink=sink_pid) as m:
        r = smtp_source_run(port, sessions, n, length, per_session, what)
    if r["ok"]:
        count_to(sink, n)
    r.update({"what": what, "sink_cpu_s": m.cpu.get("sink"), "machine_busy_s": round(m.sys, 2)})
    r["other_cpu_s"] = round(max(0.0, m.sys - r["loader_cpu_s"] - (m.cpu.get("sink") or 0)), 2)
    log("%-34s %9.1f msgs/s %9.2f MB/s  cpu load %.2f sink %s other %s (s)" % (
        what, r["msgs_per_s"], r["mb_per_s"], r["loader_cpu_s"],
        "%.2f" % m.cpu["sink"] if "sink" in m.cpu else "-", r["other_cpu_s"]))
    return r


def section_sinks(res):
    """mxsink vs Postfix smtp-sink, 1 MB messages, 10 connections, many per connection."""
    out = {"size": MiB, "connections": 10, "rows": []}
    res["sinks"] = out
    sinks = []
    p = free_port()
    start("mxsink-2", [MXSINK, "--listen", "127.0.0.1:%d" % p, "--quiet"], p)
    sinks.append(("mxsink", "mxsink-2", p))
    if SMTP_SINK:
        p = free_port()
        # As root smtp-sink must drop privileges (-u); backlog 1024.
        start("smtp-sink", [SMTP_SINK, "-u", "nobody", "127.0.0.1:%d" % p, "1024"], p)
        sinks.append(("smtp-sink", "smtp-sink", p))
    else:
        warn("Postfix smtp-sink not installed: the smtp-sink column of section 2 is skipped")
    if not SMTP_SOURCE:
        warn("Postfix smtp-source not installed: the smtp-source rows are skipped")
    dur = DURATION[MiB] * SCALE
    for sink_label, name, port in sinks:
        spid = procs[name].pid
        r = mxload_cell("mxload -> %s 1 MB x10" % sink_label, port, 10, MiB, "1M", 0, name,
                        sink_pid=spid)
        r.update({"driver": "mxload", "sink": sink_label})
        out["rows"].append(r)
        if SMTP_SOURCE:
            r = smtp_source_cell(port, 10, MiB, True, "smtp-source -> %s 1 MB x10" % sink_label,
                                 name, spid, dur)
            r.update({"driver": "smtp-source", "sink": sink_label})
            out["rows"].append(r)
    stop("smtp-sink")
    tot = sink_totals("mxsink-2")
    out["mxsink_totals"] = tot
    if tot and tot["messages"] != accepted_by_sink.get("mxsink-2", 0):
        warn("mxsink (section 2) counted %d messages, the clients had %d accepted" % (
            tot["messages"], accepted_by_sink.get("mxsink-2", 0)))


def section_loaders(res):
    """mxload vs smtp-source, 1 KB, 10 sessions, no pipelining, same mxsink."""
    out = {"size": 1024, "connections": 10, "rows": []}
    res["loaders"] = out
    p = free_port()
    start("mxsink-3", [MXSINK, "--listen", "127.0.0.1:%d" % p, "--quiet"], p)
    spid = procs["mxsink-3"].pid
    dur = DURATION[1024] * SCALE
    for per_conn, label in ((1, "1 msg/connection"), (0, "many msgs/connection")):
        row = {"mode": label, "per_connection": per_conn}
        row["mxload"] = mxload_cell("mxload 1 KB x10 %s" % label, p, 10, 1024, "1k", per_conn,
                                    "mxsink-3", sink_pid=spid)
        if SMTP_SOURCE:
            row["smtp-source"] = smtp_source_cell(p, 10, 1024, per_conn == 0,
                                                  "smtp-source 1 KB x10 %s" % label,
                                                  "mxsink-3", spid, dur)
        out["rows"].append(row)
    tot = sink_totals("mxsink-3")
    out["mxsink_totals"] = tot
    if tot and tot["messages"] != accepted_by_sink.get("mxsink-3", 0):
        warn("mxsink (section 3) counted %d messages, the clients had %d accepted" % (
            tot["messages"], accepted_by_sink.get("mxsink-3", 0)))


def section_idle(res, n=10000):
    """mxgate (workers = auto) RSS before and with n idle client connections."""
    out = {"connections_wanted": n}
    res["idle"] = out
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 1024
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, soft), max(need, hard)))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        n = max(0, soft - 1024)
        warn("RLIMIT_NOFILE is %d: only %d idle connections" % (soft, n))
    out["connections_wanted"] = n
    sport = free_port()
    start("mxsink-4", [MXSINK, "--listen", "127.0.0.1:%d" % sport, "--quiet"], sport)
    gport = free_port()
    # mxgate inherits this process's descriptor limit (raised above).
    start("mxgate-idle", [MXGATE, "-c", mxgate_conf("mxgate-idle", gport, sport, "auto")], gport)
    gpid = procs["mxgate-idle"].pid
    # Warm it up so that the baseline includes the buffer rings and backend pool.
    rc, o, e, _, _ = run_timed(mxload_argv(gport, 10, "1k", seconds=1.0), 40)
    parse_mxload(rc, o, e, "idle-test warm-up")
    time.sleep(0.5)
    out["rss_before_kb"] = vm_rss_kb(gpid)
    out["fds_before"] = nfds(gpid)

    sel = selectors.DefaultSelector()
    socks = []
    state = {}
    established = 0
    failed = 0
    deadline = time.monotonic() + 90
    batch = 500
    try:
        i = 0
        while i < n and time.monotonic() < deadline:
            group = []
            for _ in range(min(batch, n - i)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", gport))
                if err not in (0, 115):     # EINPROGRESS
                    failed += 1
                    s.close()
                    continue
                socks.append(s)
                group.append(s)
                state[s] = [b"", 0]         # buffer, phase 0 banner / 1 EHLO reply / 2 idle
                sel.register(s, selectors.EVENT_READ)
                i += 1
            pending = len(group)
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    s = key.fileobj
                    st = state[s]
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        failed += 1
                        pending -= 1
                        sel.unregister(s)
                        st[1] = -1
                        continue
                    st[0] += data
                    if st[1] == 0 and b"\r\n" in st[0]:
                        if not st[0].startswith(b"220"):
                            failed += 1
                            pending -= 1
                            sel.unregister(s)
                            st[1] = -1
                            continue
                        st[0] = b""
                        st[1] = 1
                        s.send(b"EHLO idle.example.test\r\n")
                    elif st[1] == 1 and st[0].endswith(b"\r\n"):
                        last = st[0].rstrip(b"\r\n").split(b"\r\n")[-1]
                        if last[:4] == b"250 ":
                            st[1] = 2
                            pending -= 1
                            established += 1
                            sel.unregister(s)
        out["connections_established"] = established
        out["connections_failed"] = failed
        if established < n:
            warn("idle test: %d of %d connections got through banner and EHLO" % (established, n))
        time.sleep(1.0)
        out["rss_with_idle_kb"] = vm_rss_kb(gpid)
        out["fds_with_idle"] = nfds(gpid)
        # Still open? A readable idle socket means mxgate closed it (or wrote).
        probe = selectors.DefaultSelector()
        for s in socks:
            if state[s][1] == 2:
                probe.register(s, selectors.EVENT_READ)
        dropped = len(probe.select(timeout=0)) if established else 0
        probe.close()
        out["dropped_while_idle"] = dropped
        if dropped:
            warn("idle test: mxgate closed or wrote to %d idle connections" % dropped)
        if established:
            out["kb_per_connection"] = (out["rss_with_idle_kb"] - out["rss_before_kb"]) / established
    finally:
        sel.close()
        for s in socks:
            s.close()
    time.sleep(1.0)
    out["rss_after_close_kb"] = vm_rss_kb(gpid)
    log("idle: RSS %d kB -> %d kB with %d connections (%.2f kB each), %d kB after close" % (
        out["rss_before_kb"], out.get("rss_with_idle_kb", 0), established,
        out.get("kb_per_connection", 0.0), out["rss_after_close_kb"]))
    stop("mxgate-idle")
    if OPENSSL:
        idle_tls(out, sport)
    else:
        warn("openssl not installed: no idle TLS row")
    stop("mxsink-4")


def tls_conf(listeners, crt, key):
    """Config text for TLS listeners ({name: (port, "starttls" | "implicit")}) and the [tls] section."""
    text = ""
    for name, (port, mode) in listeners.items():
        text += "\n[listener %s]\nlisten = 127.0.0.1:%d\ntls = %s\nrelay_domains = *\n" % (name, port, mode)
    return text + "\n[tls]\ncertificate = %s\nkey = %s\n" % (crt, key)


def tls_listening(gate, listeners):
    """Raises SystemExit unless every TLS listener of gate (see tls_conf) accepts connections."""
    for name, (port, mode) in listeners.items():
        if not port_open(port):
            raise SystemExit("bench: %s does not listen on its %s port %d" % (gate, name, port))


IDLE_TLS_CONNS = 1000


def idle_tls(out, sport, n=IDLE_TLS_CONNS):
    """mxgate's RSS per idle implicit-TLS connection (handshake done, EHLO answered).

    Fewer connections than the plaintext row: each is a full handshake made here,
    one after the other, with Python's ssl."""
    crt, key = tls_test_cert(os.path.join(OUT, "tls"))
    gport = free_port()
    listeners = {"idle": (gport, "implicit")}
    pport = free_port()
    start("mxgate-idle-tls", [MXGATE, "-c", mxgate_conf("mxgate-idle-tls", pport, sport, "auto",
                                                        tls_conf(listeners, crt, key))], pport)
    tls_listening("mxgate-idle-tls", listeners)
    gpid = procs["mxgate-idle-tls"].pid
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conns = []

    def one():
        raw = socket.create_connection(("127.0.0.1", gport), timeout=10)
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        f = t.makefile("rb")
        if not f.readline().startswith(b"220"):
            raise OSError("no 220 greeting")
        t.sendall(b"EHLO idle.example.test\r\n")
        for _ in range(50):
            line = f.readline()
            if line[3:4] != b"-":
                break
        conns.append((t, f))

    row = {"connections_wanted": n}
    out["tls"] = row
    deadline = time.monotonic() + 120
    try:
        for _ in range(20):     # warm-up: first-use allocations are not per connection
            one()
        for t, fh in conns:
            t.close()
        conns.clear()
        time.sleep(0.5)
        row["rss_before_kb"] = vm_rss_kb(gpid)
        while len(conns) < n and time.monotonic() < deadline:
            one()
        row["connections_established"] = len(conns)
        time.sleep(1.0)
        row["rss_with_idle_kb"] = vm_rss_kb(gpid)
        if conns:
            row["kb_per_connection"] = (row["rss_with_idle_kb"] - row["rss_before_kb"]) / len(conns)
        log("idle TLS: RSS %d kB -> %d kB with %d connections (%.2f kB each)" % (
            row["rss_before_kb"], row["rss_with_idle_kb"], len(conns), row.get("kb_per_connection", 0.0)))
    except (OSError, ssl.SSLError) as e:
        warn("idle TLS test: %s" % e)
    finally:
        for t, fh in conns:
            t.close()
        stop("mxgate-idle-tls")


def redis_commandstats(port):
    """{command: calls} from INFO commandstats (redis-cli), or None."""
    try:
        r = subprocess.run([REDIS_CLI, "-p", str(port), "INFO", "commandstats"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        warn("redis-cli INFO commandstats failed: %s" % e)
        return None
    calls = {}
    for line in r.stdout.splitlines():
        if line.startswith("cmdstat_") and ":" in line:
            name, _, fields = line[len("cmdstat_"):].partition(":")
            for kv in fields.split(","):
                if kv.startswith("calls="):
                    calls[name.strip()] = int(kv[6:])
    if r.returncode != 0:
        warn("redis-cli INFO commandstats exited %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[-200:]))
        return None
    return calls


# Commands mxgate sends itself (proxy/store_redis.c: one EVALSHA per loop turn
# carrying that turn's checks, SCRIPT LOAD and AUTH when a link starts); any
# other command in commandstats ran inside that script (redis.call). Lease
# releases and refreshes are operations inside the same EVALSHA: mxgate sends
# no ZREM itself (it did before, so older results counted ZREM as sent).
REDIS_CLIENT_CMDS = ("evalsha", "eval", "script|load", "script", "auth", "hello", "ping", "select")

LIMITS_CONF = """
[limits]
connection_rate = 100000000/1h
concurrency = 100000
message_rate = 100000000/1h
recipient_rate = 100000000/1h
"""
LIMITS_ROUNDS = 2           # each mode measured twice per cell, interleaved
LIMITS_SECONDS = 3.0        # per timed run (x BENCH_SCALE)


def section_limits(res):
    """Limits off vs on (embedded store, Redis): mxload 1 KB x10 -> mxgate (workers 1) -> mxsink."""
    out = {"size": 1024, "connections": 10, "rounds": LIMITS_ROUNDS, "cells": [], "modes": []}
    res["limits"] = out
    sink_port = free_port()
    start("mxsink-5", [MXSINK, "--listen", "127.0.0.1:%d" % sink_port, "--quiet"], sink_port)
    sink_pid = procs["mxsink-5"].pid
    modes = []
    p = free_port()
    start("mxgate-nolimits", [MXGATE, "-c", mxgate_conf("mxgate-nolimits", p, sink_port, 1)], p)
    modes.append(("off", "mxgate-nolimits", p))
    p = free_port()
    start("mxgate-limits", [MXGATE, "-c", mxgate_conf("mxgate-limits", p, sink_port, 1, LIMITS_CONF)], p)
    modes.append(("embedded", "mxgate-limits", p))
    rport = None
    if REDIS_SERVER and REDIS_CLI:
        rport = free_port()
        start("redis", [REDIS_SERVER, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no"], rport)
        out["redis_version"] = (subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True,
                                               stdin=subprocess.DEVNULL, timeout=10).stdout.strip())
        p = free_port()
        conf = LIMITS_CONF + """
[redis]
address = 127.0.0.1:%d
key_prefix = mxbench:
on_failure = tempfail
""" % rport
        start("mxgate-redis", [MXGATE, "-c", mxgate_conf("mxgate-redis", p, sink_port, 1, conf)], p)
        modes.append(("redis", "mxgate-redis", p))
    else:
        warn("redis-server/redis-cli not installed: the Redis rows of the limits section are skipped")
    out["modes"] = [m[0] for m in modes]
    dur = LIMITS_SECONDS * SCALE

    def before():
        time.sleep(0.2)     # let the warm-up's last connections close (lease releases)
        return redis_commandstats(rport)

    def after(b):
        time.sleep(0.2)     # the last connections' releases reach Redis after mxload exits
        a = redis_commandstats(rport)
        if a is None or b is None:
            return None
        d = {k: a.get(k, 0) - b.get(k, 0) for k in a}
        d.pop("info", None)     # our own INFO calls
        return {k: v for k, v in d.items() if v}

    for per_conn in (0, 1):
        cell = {"per_connection": per_conn, "runs": {m[0]: [] for m in modes}}
        for rnd in range(LIMITS_ROUNDS):
            for mode, name, port in modes:
                what = "limits %s 1 KB x10%s #%d" % (mode, " 1/conn" if per_conn else "", rnd + 1)
                kw = {}
                if mode == "redis":
                    kw = {"before": before, "after": after, "redis": procs["redis"].pid}
                r = mxload_cell(what, port, 10, 1024, "1k", per_conn, "mxsink-5",
                                proxy_pid=procs[name].pid, sink_pid=sink_pid, seconds=dur, **kw)
                if r.get("extra") is not None and r.get("accepted"):
                    log("%-34s redis commands/msg %.2f: %s" % (what, sum(r["extra"].values()) / r["accepted"],
                                                                r["extra"]))
                cell["runs"][mode].append(r)
        # Aggregate the rounds: mean msgs/s, CPU and Redis commands over all accepted messages.
        for mode in cell["runs"]:
            runs = cell["runs"][mode]
            acc = sum(r.get("accepted") or 0 for r in runs)
            agg = {"msgs_per_s": [r.get("msgs_per_s") for r in runs], "accepted": acc,
                   "ok": all(r.get("ok") for r in runs),
                   "refused": sum(sum((r.get("mxload") or {}).get(k, 0) for k in
                                      ("refused_total", "rcpt_refused", "connect_errors", "disconnects", "timeouts"))
                                  for r in runs)}
            v = [x for x in agg["msgs_per_s"] if x is not None]
            agg["msgs_per_s_mean"] = sum(v) / len(v) if v else None
            if acc:
                agg["proxy_cpu_ms_per_msg"] = sum(r.get("proxy_cpu_s") or 0 for r in runs) * 1000.0 / acc
                fw = [(r.get("other_cpu_s") or 0) / r["wall_s"] for r in runs if r.get("wall_s")]
                agg["foreign_cpu"] = max(fw) if fw else None
                bw = [r["machine_busy_s"] / r["wall_s"] for r in runs if r.get("wall_s")]
                agg["machine_busy_cores"] = sum(bw) / len(bw) if bw else None
                if all(r.get("machine_busy_s") is not None for r in runs):
                    agg["machine_cpu_ms_per_msg"] = sum(r["machine_busy_s"] for r in runs) * 1000.0 / acc
            if mode == "redis" and acc:
                agg["redis_cpu_ms_per_msg"] = sum(r.get("redis_cpu_s") or 0 for r in runs) * 1000.0 / acc
                if all(r.get("extra") is not None for r in runs):
                    cmds = {}
                    for r in runs:
                        for k, n in r["extra"].items():
                            cmds[k] = cmds.get(k, 0) + n
                    agg["redis_calls"] = cmds
                    agg["redis_cmds_per_msg"] = sum(cmds.values()) / acc
                    agg["redis_client_cmds_per_msg"] = sum(n for k, n in cmds.items()
                                                           if k in REDIS_CLIENT_CMDS) / acc
                else:
                    warn("limits: no Redis commandstats for some runs")
            cell[mode] = agg
        out["cells"].append(cell)

    for mode, name, port in modes:
        p = procs.get(name)
        if p is not None and p.poll() is not None:
            warn("%s exited during the run (status %s); see %s" % (name, p.returncode, p.logpath))
        stop(name)
    if rport:
        out["redis_info_keyspace"] = subprocess.run(
            [REDIS_CLI, "-p", str(rport), "INFO", "keyspace"], capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=10).stdout.strip().splitlines()[1:]
    stop("redis")
    tot = sink_totals("mxsink-5")
    out["mxsink_totals"] = tot
    if tot and tot["messages"] != accepted_by_sink.get("mxsink-5", 0):
        warn("mxsink (limits section) counted %d messages, the clients had %d accepted" % (
            tot["messages"], accepted_by_sink.get("mxsink-5", 0)))
    for mode, name, port in modes:
        path = os.path.join(OUT, name + ".log")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, errors="replace") as fh:
                lines = fh.read().splitlines()
            out[name + "_log_lines"] = len(lines)
            if lines:
                warn("%s logged %d lines at log_level=warn, e.g. %s" % (name, len(lines), lines[0][:200]))


TLS_ROUNDS = 2              # handshake cells: each mode twice, interleaved
TLS_HS_SECONDS = 4.0        # per timed handshake run (x BENCH_SCALE)
TLS_HS_CONNS = 10
TLS_BENCH_SECONDS = 3.0     # per tlsbench phase (x BENCH_SCALE, at least 1 s)
TLS_HS_MODES = [            # (label, listener, mxload options)
    ("plain", "plain", []),
    ("implicit full", "implicit", ["--tls", "implicit"]),
    ("implicit resumed", "implicit", ["--tls", "implicit", "--tls-resume"]),
    ("starttls full", "starttls", ["--tls", "starttls"]),
    ("starttls resumed", "starttls", ["--tls", "starttls", "--tls-resume"]),
]
TLS_SIZES = [("100 KB", 100 * 1024, "100k"), ("1 MB", MiB, "1M")]


def tls_test_cert(d):
    """An ECDSA P-256 self-signed certificate (CN=localhost), made fresh for this run.

    Made here rather than by conf/make-test-certs.sh so that mxgate and tlsbench
    are measured with the same, known key type (the handshake cost depends on it)."""
    os.makedirs(d, exist_ok=True)
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    r = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "3650", "-subj", "/CN=localhost"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise SystemExit("bench: openssl req failed: %s" % (r.stderr or r.stdout).strip()[-300:])
    return os.path.abspath(crt), os.path.abspath(key)


def tls_version_line(mxgate=None):
    try:
        r = subprocess.run([mxgate or MXGATE, "-V"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "n/a"


def tls_bench_reference(crt, key, tlsbench=None):
    """build/tlsbench (wolfSSL alone, in memory): the yardstick; None when it is missing or fails."""
    tlsbench = tlsbench or TLSBENCH
    if not os.access(tlsbench, os.X_OK):
        warn("%s not found: the tlsbench reference row of the TLS section is skipped" % tlsbench)
        return None
    secs = max(1.0, TLS_BENCH_SECONDS * SCALE)
    argv = [tlsbench, "--cert", crt, "--key", key, "--seconds", "%g" % secs, "--json", "--resume", "--bulk"]
    rc, out, err, cpu, wall = run_timed(argv, 3 * secs + 60)
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        warn("tlsbench exited %d without a JSON report: %s" % (rc, (err or out).strip()[-300:]))
        return None
    j["argv"] = argv[1:]
    j["wall_s"] = round(wall, 3)
    log("tlsbench: full %s hs/s (server %s us CPU each), resumed %s hs/s (%s us), bulk decrypt %s GB/s" % (
        j.get("full_hs_per_s"), j.get("server_cpu_us_per_full_hs"), j.get("resumed_hs_per_s"),
        j.get("server_cpu_us_per_resumed_hs"), j.get("bulk_decrypt_gbps")))
    return j


def tls_hs_agg(runs):
    """The rounds of one handshake mode, summed: CPU and counts over all their connections."""
    agg = {"ok": all(r.get("ok") for r in runs), "runs": len(runs)}
    js = [r.get("mxload") or {} for r in runs]
    opened = sum(j.get("connections_opened", 0) for j in js)
    hs = sum(j.get("tls_handshakes", 0) for j in js)
    res = sum(j.get("tls_resumed", 0) for j in js)
    cpu = sum(r.get("proxy_cpu_s") or 0 for r in runs)
    el = sum(j.get("elapsed_s", 0) for j in js)
    agg.update({"connections": opened, "handshakes": hs, "resumed": res, "proxy_cpu_s": round(cpu, 2),
                "elapsed_s": round(el, 3), "msgs_per_s": [r.get("msgs_per_s") for r in runs]})
    if el:
        agg["conns_per_s"] = opened / el
        agg["hs_per_s"] = hs / el
    if opened and cpu:
        agg["cpu_us_per_conn"] = cpu * 1e6 / opened
    if hs and cpu:
        agg["cpu_us_per_hs"] = cpu * 1e6 / hs
        agg["hs_per_core_s"] = hs / cpu          # handshakes per second of mxgate CPU
        agg["resumed_share"] = res / hs
    for k in ("tls_version", "tls_cipher"):
        v = [j.get(k) for j in js if j.get(k)]
        agg[k] = v[-1] if v else None
    bw = [r["machine_busy_s"] / r["wall_s"] for r in runs if r.get("wall_s")]
    agg["machine_busy_cores"] = sum(bw) / len(bw) if bw else None
    lw = [r["loader_cpu_s"] / r["wall_s"] for r in runs if r.get("wall_s")]
    agg["loader_cores"] = max(lw) if lw else None
    gw = [(r.get("proxy_cpu_s") or 0) / r["wall_s"] for r in runs if r.get("wall_s")]
    agg["proxy_cores"] = max(gw) if gw else None
    fw = [(r.get("other_cpu_s") or 0) / r["wall_s"] for r in runs if r.get("wall_s")]
    agg["foreign_cpu"] = max(fw) if fw else None
    return agg


def section_tls(res):
    """Handshakes and bulk throughput over TLS, mxgate (workers 1) against wolfSSL alone (tlsbench);
    then the same key cells with mxgate and tlsbench built against Debian's own wolfSSL
    (BENCH_SYSTEM_WOLFSSL_BUILD, which `make bench` builds), so the two libraries are side by side."""
    res["tls"] = tls_measure(MXGATE, TLSBENCH, "", TLS_HS_MODES, TLS_SIZES)
    sysb = os.environ.get("BENCH_SYSTEM_WOLFSSL_BUILD")
    if sysb and not res["tls"].get("skipped"):
        mx, tb = os.path.abspath(os.path.join(sysb, "mxgate")), os.path.abspath(os.path.join(sysb, "tlsbench"))
        if os.access(mx, os.X_OK):
            res["tls_system"] = tls_measure(mx, tb, "-sys", TLS_HS_MODES[:3], TLS_SIZES[1:])
        else:
            warn("%s not found: no Debian-wolfSSL rows in the TLS section" % mx)


def tls_measure(mxgate, tlsbench, tag, hs_modes, sizes):
    """One mxgate binary (and its tlsbench) through the TLS cells; returns the section's figures."""
    out = {"connections": TLS_HS_CONNS, "rounds": TLS_ROUNDS, "hs": {}, "bulk": [],
           "mxgate_version": tls_version_line(mxgate)}
    if not OPENSSL:
        warn("openssl not installed: no test certificate, the TLS section is skipped")
        out["skipped"] = "no openssl"
        return out
    crt, key = tls_test_cert(os.path.join(OUT, "tls"))
    out["certificate"] = "ECDSA P-256, self-signed, CN=localhost (%s)" % crt
    sink_port = free_port()
    sink, gate = "mxsink-6" + tag, "mxgate-tls" + tag
    start(sink, [MXSINK, "--listen", "127.0.0.1:%d" % sink_port, "--quiet"], sink_port)
    sink_pid = procs[sink].pid
    ports = {"plain": free_port(), "starttls": free_port(), "implicit": free_port()}
    listeners = {"starttls": (ports["starttls"], "starttls"), "implicit": (ports["implicit"], "implicit")}
    start(gate, [mxgate, "-c", mxgate_conf(gate, ports["plain"], sink_port, 1, tls_conf(listeners, crt, key))],
          ports["plain"])
    gpid = procs[gate].pid
    tls_listening(gate, listeners)
    log("TLS: %s" % out["mxgate_version"])

    # 1. Handshakes: one message per connection, so each connection is one handshake.
    dur = TLS_HS_SECONDS * SCALE
    runs = {m[0]: [] for m in hs_modes}
    for rnd in range(TLS_ROUNDS):
        for label, lst, args in hs_modes:
            what = "tls hs %s 1 KB x%d 1/conn #%d" % (label, TLS_HS_CONNS, rnd + 1)
            runs[label].append(mxload_cell(what, ports[lst], TLS_HS_CONNS, 1024, "1k", 1, sink,
                                           proxy_pid=gpid, sink_pid=sink_pid, seconds=dur, args=args))
    plain = tls_hs_agg(runs["plain"])
    out["hs"]["plain"] = plain
    for label, lst, args in hs_modes[1:]:
        a = tls_hs_agg(runs[label])
        # What TLS adds to a connection: the plaintext connection's CPU taken away.
        if a.get("cpu_us_per_hs") is not None and plain.get("cpu_us_per_conn") is not None:
            a["tls_cpu_us_per_hs"] = a["cpu_us_per_hs"] - plain["cpu_us_per_conn"]
            if a["tls_cpu_us_per_hs"] > 0:
                a["tls_hs_per_core_s"] = 1e6 / a["tls_cpu_us_per_hs"]
        if "resumed" in label and a.get("handshakes") and a.get("resumed_share", 0) < 0.9:
            warn("TLS %s: only %d of %d handshakes were resumed" % (label, a["resumed"], a["handshakes"]))
        if "full" in label and a.get("resumed"):
            warn("TLS %s: %d handshakes were resumed" % (label, a["resumed"]))
        out["hs"][label] = a
    out["hs_runs"] = runs

    # 2. The yardstick, while mxgate is idle.
    tb = tls_bench_reference(crt, key, tlsbench)
    out["tlsbench"] = tb
    if tb:
        for label in out["hs"]:
            a = out["hs"][label]
            kind = "resumed" if "resumed" in label else "full"
            ref = tb.get("server_cpu_us_per_%s_hs" % kind)
            setup = tb.get("server_setup_us_per_hs") or 0
            if ref and a.get("tls_cpu_us_per_hs") is not None:
                a["ratio_tlsbench"] = a["tls_cpu_us_per_hs"] / ref
                a["ratio_tlsbench_with_setup"] = a["tls_cpu_us_per_hs"] / (ref + setup)
                a["ratio_tlsbench_whole_conn"] = a["cpu_us_per_hs"] / ref

    # 3. Bulk: plaintext vs STARTTLS, many messages per connection, side by side per size.
    for label, size, size_arg in sizes:
        row = {"size_label": label, "size": size, "conns": 10}
        for mode, lst, args in (("plain", "plain", []), ("starttls", "starttls", ["--tls", "starttls"])):
            r = mxload_cell("tls bulk %s %s x10" % (mode, label), ports[lst], 10, size, size_arg, 0,
                            sink, proxy_pid=gpid, sink_pid=sink_pid, args=args)
            j = r.get("mxload") or {}
            nbytes = j.get("bytes_accepted")
            if nbytes is None and j:
                nbytes = j.get("mb_per_s", 0) * j.get("elapsed_s", 0) * MiB
            cpu = r.get("proxy_cpu_s")
            if nbytes and cpu:
                gb = nbytes / 1e9
                r["proxy_cpu_s_per_gb"] = cpu / gb
                r["gb_per_s_per_core"] = gb / cpu
            row[mode] = r
        p, t = row["plain"], row["starttls"]
        if p.get("proxy_cpu_s_per_gb") and t.get("proxy_cpu_s_per_gb"):
            row["tls_cpu_s_per_gb"] = t["proxy_cpu_s_per_gb"] - p["proxy_cpu_s_per_gb"]
        out["bulk"].append(row)

    p = procs.get(gate)
    if p is not None and p.poll() is not None:
        warn("%s exited during the run (status %s); see %s" % (gate, p.returncode, p.logpath))
    stop(gate)
    tot = sink_totals(sink)
    out["mxsink_totals"] = tot
    if tot and tot["messages"] != accepted_by_sink.get(sink, 0):
        warn("mxsink (TLS section) counted %d messages, the clients had %d accepted" % (
            tot["messages"], accepted_by_sink.get(sink, 0)))
    path = os.path.join(OUT, gate + ".log")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, errors="replace") as fh:
            lines = fh.read().splitlines()
        out["log_lines"] = len(lines)
        if lines:
            warn("%s logged %d lines at log_level=warn, e.g. %s" % (gate, len(lines), lines[0][:200]))
    return out


# ------------------------------------------------------------------ report

def f(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if nd == "ms":
            return "%.3f" % v
        return "%.*f" % (nd, v)
    return str(v)


def ratio(a, b):
    if a is None or b is None or not b:
        return "-"
    return "%.2f" % (a / b)



def foreign(row, modes):
    """Most CPU (cores) used by other processes during any run of the row."""
    runs = [x for m in modes if row.get(m) for x in row[m].get("rounds", [row[m]])]
    v = [(x.get("other_cpu_s") or 0) / x["wall_s"] for x in runs if x.get("wall_s")]
    return "%.2f" % max(v) if v else "-"


def msgs_per_conn(row):
    """The msgs/conn column: 1, many, or many with the client pipelining."""
    if row["per_connection"]:
        return "1"
    return "many, pipelined" if row.get("pipelining") else "many"


def report(res):
    L = []
    meta = res["meta"]
    L.append("# mxgate benchmark results")
    L.append("")
    L.append("Command: `make bench` (= `scripts/bench.sh %s`), %s; %s, %d CPUs, kernel %s; %s; %s. "
             "Loopback only, all processes on the same %d CPUs; one run, so treat differences "
             "under ~10-15 %% as noise." % (BUILD, meta["date"], meta["cpu_model"], NCPU,
                                             meta["kernel"], meta["haproxy"], meta["postfix"], NCPU))
    L.append("")
    if warnings:
        L.append("**Warnings**")
        L.append("")
        for w in warnings:
            L.append("- WARNING: " + w)
        L.append("")

    P = res.get("proxies")
    if P:
        modes = P["modes"]
        has_h = "haproxy" in modes
        has_a = "mxgate-auto" in modes
        L.append("## 1. Direct vs through mxgate vs through haproxy (mxload -> [proxy] -> mxsink)")
        L.append("")
        L.append("mxgate: `workers = 1`, `log_level = warn`; haproxy: TCP mode, `nbthread 1`, `no log`. "
                 "mxload: one thread, no PIPELINING except in the rows marked \"pipelined\" (`--pipelining`: "
                 "MAIL, RCPT and DATA in one write). Each cell runs in %d rounds, every target once "
                 "per round in a rotated order, %s s per run (1 MB: %s s) after a %.1f s warm-up; "
                 "msgs/s, MB/s and CPU ms/msg are the medians of the rounds, and mxgate/haproxy CPU "
                 "is the median of the per-round ratios, with their range in brackets (a round's two "
                 "runs are seconds apart, so the pairing cancels most of the machine's slow spells). "
                 "MB/s are MiB/s of message bytes. CPU = utime+stime of the whole proxy process "
                 "(/proc/PID/stat, CLK_TCK %d) over the run / messages accepted. "
                 "\"msgs/conn\": many = all messages over the same connections; 1 = a new client "
                 "connection per message. \"foreign CPU\": the most CPU (in cores) that processes other than "
                 "mxload, the proxy and mxsink used during any run of the row: high values mean the "
                 "row was measured on a busy machine." % (
                     P.get("rounds", 1), f(DURATION[1024] * SCALE / P.get("rounds", 1), 2),
                     f(DURATION[MiB] * SCALE / P.get("rounds", 1), 2), WARMUP, CLK_TCK))
        L.append("")
        hdr = ["size", "conns", "msgs/conn", "direct msgs/s", "direct MB/s",
               "mxgate msgs/s", "mxgate MB/s", "mxgate/direct"]
        if has_h:
            hdr += ["haproxy msgs/s", "haproxy MB/s", "haproxy/direct"]
        hdr += ["mxgate CPU ms/msg"]
        if has_h:
            hdr += ["haproxy CPU ms/msg", "mxgate/haproxy CPU"]
        hdr += ["foreign CPU"]
        L.append("| " + " | ".join(hdr) + " |")
        L.append("|" + "---|" * len(hdr))
        for row in P["cells"]:
            d, g, h = row.get("direct"), row.get("mxgate"), row.get("haproxy")
            cols = [row["size_label"], str(row["conns"]), msgs_per_conn(row),
                    f(d.get("msgs_per_s")), f(d.get("mb_per_s")),
                    f(g.get("msgs_per_s")), f(g.get("mb_per_s")),
                    ratio(g.get("msgs_per_s"), d.get("msgs_per_s"))]
            if has_h:
                cols += [f(h.get("msgs_per_s")), f(h.get("mb_per_s")),
                         ratio(h.get("msgs_per_s"), d.get("msgs_per_s"))]
            cols += [f(g.get("proxy_cpu_ms_per_msg"), "ms")]
            if has_h:
                cols += [f(h.get("proxy_cpu_ms_per_msg"), "ms"), round_ratio(g, h)]
            cols += [foreign(row, [m for m in modes if m != "mxgate-auto"])]
            L.append("| " + " | ".join(cols) + " |")
            for m in modes:
                c = row.get(m)
                if c and not c.get("ok"):
                    L.append("| **WARNING** | %s | %s | %s had refused/failed messages or no report: see warnings | |" % (
                        row["conns"], msgs_per_conn(row), m))
        L.append("")
        if has_a:
            L.append("mxgate with `workers = auto` (%d workers), same cells:" % NCPU)
            L.append("")
            L.append("| size | conns | msgs/conn | msgs/s | MB/s | /direct | CPU ms/msg |%s" % (
                " /haproxy CPU |" if has_h else ""))
            L.append("|---|---|---|---|---|---|---|%s" % ("---|" if has_h else ""))
            for row in P["cells"]:
                a, d, h = row.get("mxgate-auto"), row.get("direct"), row.get("haproxy")
                cols = [row["size_label"], str(row["conns"]), msgs_per_conn(row),
                        f(a.get("msgs_per_s")), f(a.get("mb_per_s")),
                        ratio(a.get("msgs_per_s"), d.get("msgs_per_s")),
                        f(a.get("proxy_cpu_ms_per_msg"), "ms")]
                if has_h:
                    cols.append(round_ratio(a, h))
                L.append("| " + " | ".join(cols) + " |")
            L.append("")
        L.append("Where the CPU went (CPU-seconds per wall second of each measured run, %d CPUs in all): "
                 "mxload / proxy / mxsink / everything else on the machine." % NCPU)
        L.append("")
        L.append("| size | conns | msgs/conn | " + " | ".join(modes) + " |")
        L.append("|---|---|---|" + "---|" * len(modes))
        for row in P["cells"]:
            cols = [row["size_label"], str(row["conns"]), msgs_per_conn(row)]
            for m in modes:
                c = row.get(m) or {}
                w = c.get("wall_s") or 0
                if not w:
                    cols.append("-")
                    continue
                parts = [c.get("loader_cpu_s"), c.get("proxy_cpu_s"), c.get("sink_cpu_s"), c.get("other_cpu_s")]
                cols.append(" / ".join("-" if v is None else "%.2f" % (v / w) for v in parts))
            L.append("| " + " | ".join(cols) + " |")
        L.append("")
        tot = P.get("mxsink_totals")
        if tot:
            L.append("mxsink counted %d messages over the section; the clients had %d accepted "
                     "(warm-ups included)." % (tot["messages"], P.get("accepted_by_clients", 0)))
            L.append("")

    S = res.get("sinks")
    if S:
        L.append("## 2. mxsink vs Postfix smtp-sink, 1 MB messages, 10 connections")
        L.append("")
        L.append("Same driver against each sink, many messages per connection "
                 "(mxload; smtp-source `-s 10 -d -l 1048576`). Goal: mxsink >= 3x smtp-sink MB/s.")
        L.append("")
        L.append("| driver | sink | msgs/s | MB/s | sink CPU (cores) | driver CPU (cores) |")
        L.append("|---|---|---|---|---|---|")
        by = {}
        for r in S["rows"]:
            w = r.get("wall_s") or 1
            by[(r["driver"], r["sink"])] = r
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                r["driver"], r["sink"], f(r.get("msgs_per_s")), f(r.get("mb_per_s")),
                "-" if r.get("sink_cpu_s") is None else "%.2f" % (r["sink_cpu_s"] / w),
                "%.2f" % (r.get("loader_cpu_s", 0) / w)))
        L.append("")
        for drv in ("mxload", "smtp-source"):
            a, b = by.get((drv, "mxsink")), by.get((drv, "smtp-sink"))
            if a and b:
                L.append("- driven by %s: mxsink / smtp-sink MB/s = **%s** (goal >= 3)" % (
                    drv, ratio(a.get("mb_per_s"), b.get("mb_per_s"))))
        L.append("")

    D = res.get("loaders")
    if D:
        L.append("## 3. mxload vs Postfix smtp-source, 1 KB, 10 sessions, no PIPELINING, against one mxsink")
        L.append("")
        L.append("smtp-source `-s 10 -l 1024 -m N` (one message per connection) and with `-d` (all "
                 "messages over the same sessions); N calibrated for about %s s. Goal: mxload >= smtp-source." % f(DURATION[1024] * SCALE))
        L.append("")
        L.append("| mode | mxload msgs/s | smtp-source msgs/s | mxload/smtp-source | mxload CPU ms/msg | smtp-source CPU ms/msg |")
        L.append("|---|---|---|---|---|---|")
        for row in D["rows"]:
            a, b = row.get("mxload") or {}, row.get("smtp-source") or {}

            def perm(c, n):
                return "%.3f" % (c["loader_cpu_s"] * 1000.0 / n) if c and n else "-"
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                row["mode"], f(a.get("msgs_per_s")), f(b.get("msgs_per_s")) if b else "skipped",
                ratio(a.get("msgs_per_s"), b.get("msgs_per_s")),
                perm(a, a.get("accepted")), perm(b, b.get("messages"))))
        L.append("")

    I = res.get("idle")
    if I and "rss_before_kb" in I:
        L.append("## 4. mxgate memory with idle client connections")
        L.append("")
        L.append("mxgate `workers = auto`, warmed up; each client connection read the banner, sent EHLO, "
                 "read the reply, then idled. Goal: < 20 KB per connection.")
        L.append("")
        L.append("| idle connections | VmRSS before | VmRSS with them | per connection | VmRSS after close | fds open |")
        L.append("|---|---|---|---|---|---|")
        L.append("| %d | %d kB | %d kB | **%s kB** | %d kB | %d |" % (
            I.get("connections_established", 0), I["rss_before_kb"], I.get("rss_with_idle_kb", 0),
            f(I.get("kb_per_connection"), 2), I.get("rss_after_close_kb", 0), I.get("fds_with_idle", 0)))
        T = I.get("tls") or {}
        if T.get("kb_per_connection") is not None:
            L.append("")
            L.append("Idle TLS (implicit TLS 1.3, handshake done, EHLO answered; a separate mxgate, "
                     "`workers = auto`; %d connections made one after the other with Python's ssl):" %
                     T.get("connections_established", 0))
            L.append("")
            L.append("| idle TLS connections | VmRSS before | VmRSS with them | per connection |")
            L.append("|---|---|---|---|")
            L.append("| %d | %d kB | %d kB | **%s kB** |" % (
                T.get("connections_established", 0), T["rss_before_kb"], T.get("rss_with_idle_kb", 0),
                f(T.get("kb_per_connection"), 2)))
        L.append("")
    M = res.get("limits")
    if M and M.get("cells"):
        modes = M["modes"]
        L.append("## 5. Limits: off vs on (embedded store, Redis), 1 KB, 10 connections")
        L.append("")
        L.append("mxload -> mxgate (`workers = 1`, `log_level = warn`) -> mxsink. Limits on = every check "
                 "active but never reached: `connection_rate = 100000000/1h`, `concurrency = 100000`, "
                 "`message_rate = 100000000/1h`, `recipient_rate = 100000000/1h` (one recipient per "
                 "message); \"embedded\" without `[redis]`, \"redis\" with a local `redis-server` "
                 "(`--save '' --appendonly no`, %s), `on_failure = tempfail` so that a failed check "
                 "shows as a refusal. Each mode %d x %s s, interleaved (off, embedded, redis, off, ...), "
                 "each after a %.1f s warm-up; msgs/s = mean of the runs (each run in brackets), CPU "
                 "and Redis figures over all their messages. Goals: msgs/s >= 0.9x limits off; Redis "
                 "commands per message <= 2." % (M.get("redis_version", "n/a").split(" sha=")[0],
                                                  M["rounds"], f(LIMITS_SECONDS * SCALE), WARMUP))
        L.append("")
        L.append("| msgs/conn | limits | msgs/s | /off | mxgate CPU ms/msg | Redis cmds/msg (all) "
                 "| of which sent by mxgate | redis-server CPU ms/msg | machine CPU ms/msg | refused "
                 "| machine busy (cores of %d) | foreign CPU |" % NCPU)
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for cell in M["cells"]:
            off = cell.get("off") or {}
            for m in modes:
                a = cell.get(m) or {}
                runs = ", ".join(f(x) for x in a.get("msgs_per_s", []))
                L.append("| %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    "1" if cell["per_connection"] else "many", m, f(a.get("msgs_per_s_mean")), runs,
                    "-" if m == "off" else "**%s**" % ratio(a.get("msgs_per_s_mean"), off.get("msgs_per_s_mean")),
                    f(a.get("proxy_cpu_ms_per_msg"), "ms"),
                    "**%s**" % f(a.get("redis_cmds_per_msg"), 2) if "redis_cmds_per_msg" in a else "-",
                    f(a.get("redis_client_cmds_per_msg"), 2),
                    f(a.get("redis_cpu_ms_per_msg"), "ms"),
                    f(a.get("machine_cpu_ms_per_msg"), "ms"),
                    a.get("refused", "-"),
                    "-" if a.get("machine_busy_cores") is None else "%.2f" % a["machine_busy_cores"],
                    "-" if a.get("foreign_cpu") is None else "%.2f" % a["foreign_cpu"]))
        L.append("")
        for cell in M["cells"]:
            a = cell.get("redis") or {}
            if a.get("redis_calls") and a.get("accepted"):
                parts = ", ".join(("%s %.2f" % (k, n / a["accepted"])) if n / a["accepted"] >= 0.005
                                  else "%s %d calls in all" % (k, n)
                                  for k, n in sorted(a["redis_calls"].items(), key=lambda kv: -kv[1]))
                L.append("- Redis commands per message, %s per connection (INFO commandstats, "
                         "INFO itself excluded; commands run inside the scripts count too): %s." % (
                             "one message" if cell["per_connection"] else "many messages", parts))
        for cell in M["cells"]:
            off, a = cell.get("off") or {}, cell.get("redis") or {}
            if off.get("machine_cpu_ms_per_msg") and a.get("machine_cpu_ms_per_msg"):
                L.append("- CPU ceiling, %s per connection: the whole machine (foreign processes "
                         "included) spent %.3f ms of CPU per message with limits off and %.3f with "
                         "Redis (redis-server %s of it), so on these shared cores msgs/s with Redis "
                         "cannot pass about %.2fx of off even with no waiting at all (measured: %s)." % (
                             "one message" if cell["per_connection"] else "many messages",
                             off["machine_cpu_ms_per_msg"], a["machine_cpu_ms_per_msg"],
                             f(a.get("redis_cpu_ms_per_msg"), "ms"),
                             off["machine_cpu_ms_per_msg"] / a["machine_cpu_ms_per_msg"],
                             ratio(a.get("msgs_per_s_mean"), off.get("msgs_per_s_mean"))))
        L.append("")
        L.append("\"Redis cmds/msg (all)\" (issue 4's measure): the delta of the sum of every "
                 "`cmdstat_*:calls` of `INFO commandstats` over the timed run (the INFO calls excluded) / "
                 "messages accepted; Redis counts the commands a script runs (`redis.call`: TIME, INCR, "
                 "ZADD, ...) as well as the EVALSHA that ran it. \"of which sent by mxgate\" counts only "
                 "the commands on the wire (%s): the round trips. \"machine busy\" well under %d "
                 "cores means the run was bound by latency (waiting for Redis), not by CPU." % (
                     ", ".join(sorted({c.split("|")[0].upper() for c in REDIS_CLIENT_CMDS})), NCPU))
        L.append("")
    T = res.get("tls")
    if T and not T.get("skipped") and T.get("hs"):
        tb = T.get("tlsbench") or {}
        L.append("## 6. TLS: handshakes and throughput (mxload -> mxgate `workers = 1` -> mxsink)")
        L.append("")
        L.append("Library: `%s`; %s. One mxgate with three listeners (plain, `tls = starttls`, "
                 "`tls = implicit`), `[tls]` with that certificate and the default session tickets; "
                 "the backend link is plaintext. mxload: one thread, no PIPELINING, no certificate "
                 "check, X25519 first (core's client preferences)." % (
                     T.get("mxgate_version"), T.get("certificate", "-")))
        if tb:
            L.append("Reference: `build/tlsbench` (wolfSSL %s, AES-NI %s, SP asm %s; %s %s %s; "
                     "server and client in one thread, in memory, only the server's CPU counted)." % (
                         tb.get("wolfssl"), "on" if tb.get("aesni") else "off",
                         "on" if tb.get("sp_asm") else "off", tb.get("version"), tb.get("group"),
                         tb.get("cipher")))
        else:
            L.append("Reference: `build/tlsbench` **not run** (missing or failed, see warnings): "
                     "the ratio column is empty.")
        L.append("")
        L.append("**Handshakes.** 1 KB, %d connections, one message per connection "
                 "(`--per-connection 1`), so one handshake per connection; each mode %d x %s s, "
                 "interleaved, each after a %.1f s warm-up; figures over all the rounds. "
                 "\"CPU us/conn\": mxgate's utime+stime / connections (the whole connection: TCP, SMTP "
                 "dialog, relay to mxsink, TLS). \"TLS us/hs\": that minus the plaintext row's "
                 "CPU per connection, i.e. what TLS adds; \"hs/s per core\": 10^6 / TLS us/hs. Ratio = "
                 "TLS us/hs / tlsbench server CPU per handshake of the same kind (goal <= 1.3 for "
                 "full handshakes); \"+setup\" counts tlsbench's wolfSSL_new/free too (%s us), which "
                 "mxgate pays as well; \"whole\" uses the whole connection's CPU instead. \"cores\" and "
                 "\"foreign CPU\" (processes other than mxload, mxgate and mxsink): the most of any round, "
                 "in CPUs of %d; a busy machine makes every figure less reliable." % (
                     T["connections"], T["rounds"], f(TLS_HS_SECONDS * SCALE), WARMUP,
                     f(tb.get("server_setup_us_per_hs"), 2), NCPU))
        L.append("")
        L.append("| mode | conns/s | handshakes (resumed) | version, cipher | mxgate CPU us/conn | TLS us/hs "
                 "| hs/s per core (TLS part) | hs/s per core (whole conn) | tlsbench us/hs | ratio | +setup | whole "
                 "| cores: mxload / mxgate | foreign CPU |")
        L.append("|" + "---|" * 14)
        for label, _, _ in TLS_HS_MODES:
            a = T["hs"].get(label) or {}
            kind = "resumed" if "resumed" in label else "full"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, f(a.get("conns_per_s"), 0),
                "-" if label == "plain" else "%d (%d)" % (a.get("handshakes", 0), a.get("resumed", 0)),
                "-" if not a.get("tls_version") else "%s %s" % (a["tls_version"], a["tls_cipher"]),
                f(a.get("cpu_us_per_conn"), 1), f(a.get("tls_cpu_us_per_hs"), 1),
                f(a.get("tls_hs_per_core_s"), 0), f(a.get("hs_per_core_s"), 0),
                "-" if label == "plain" else f(tb.get("server_cpu_us_per_%s_hs" % kind), 1),
                "**%s**" % f(a.get("ratio_tlsbench"), 2) if a.get("ratio_tlsbench") is not None else "-",
                f(a.get("ratio_tlsbench_with_setup"), 2), f(a.get("ratio_tlsbench_whole_conn"), 2),
                "-" if a.get("loader_cores") is None else "%.2f / %.2f" % (a["loader_cores"], a["proxy_cores"]),
                f(a.get("foreign_cpu"), 2)))
            if a and not a.get("ok"):
                L.append("| **WARNING** | %s had refused/failed messages or no report: see warnings | | | | | | | | | | | | |" % label)
        L.append("")
        if tb:
            L.append("tlsbench alone: %s full handshakes/s (server %s us CPU each + %s us setup), %s resumed/s "
                     "(%s us), bulk decrypt %s GB/s on one core." % (
                         f(tb.get("full_hs_per_s"), 0), f(tb.get("server_cpu_us_per_full_hs"), 1),
                         f(tb.get("server_setup_us_per_hs"), 1), f(tb.get("resumed_hs_per_s"), 0),
                         f(tb.get("server_cpu_us_per_resumed_hs"), 1), f(tb.get("bulk_decrypt_gbps"), 2)))
            L.append("")
        L.append("**Throughput.** STARTTLS vs plaintext, 10 connections, many messages per connection, "
                 "%s s per cell (1 MB: %s s) after a %.1f s warm-up, the two modes back to back. "
                 "GB = 10^9 bytes of message; \"CPU s/GB\" = mxgate CPU-seconds per GB relayed; "
                 "\"GB/s per core\" = its inverse (goal for STARTTLS >= 3 with an AES-NI build); "
                 "\"TLS s/GB\" = STARTTLS minus plaintext CPU s/GB." % (
                     f(DURATION[100 * 1024] * SCALE), f(DURATION[MiB] * SCALE), WARMUP))
        L.append("")
        L.append("| size | mode | msgs/s | MB/s | mxgate CPU ms/msg | mxgate CPU s/GB | GB/s per core | TLS s/GB "
                 "| cores: mxload / mxgate / mxsink / foreign |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for row in T.get("bulk", []):
            for mode in ("plain", "starttls"):
                c = row.get(mode) or {}
                w = c.get("wall_s") or 0
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    row["size_label"], mode, f(c.get("msgs_per_s")), f(c.get("mb_per_s")),
                    f(c.get("proxy_cpu_ms_per_msg"), "ms"), f(c.get("proxy_cpu_s_per_gb"), 3),
                    "**%s**" % f(c.get("gb_per_s_per_core"), 2) if mode == "starttls" and c.get("gb_per_s_per_core")
                    else f(c.get("gb_per_s_per_core"), 2),
                    f(row.get("tls_cpu_s_per_gb"), 3) if mode == "starttls" else "-",
                    "-" if not w else " / ".join("-" if v is None else "%.2f" % (v / w) for v in
                                                 (c.get("loader_cpu_s"), c.get("proxy_cpu_s"), c.get("sink_cpu_s"),
                                                  c.get("other_cpu_s")))))
                if c and not c.get("ok"):
                    L.append("| **WARNING** | %s | had refused/failed messages or no report: see warnings | | | | | | |" % mode)
        L.append("")
        full = (T["hs"].get("implicit full") or {}).get("ratio_tlsbench")
        if full is not None:
            L.append("- mxgate CPU per full handshake (implicit, TLS part) / tlsbench server CPU per full "
                     "handshake = **%.2f** (goal <= 1.3)." % full)
        big = [r for r in T.get("bulk", []) if r.get("size") == MiB]
        if big and (big[0].get("starttls") or {}).get("gb_per_s_per_core"):
            L.append("- STARTTLS 1 MB: mxgate relays **%.2f GB/s per core** of its CPU (goal >= 3, AES-NI %s)." % (
                big[0]["starttls"]["gb_per_s_per_core"],
                "on" if "AES-NI on" in (T.get("mxgate_version") or "") else "off"))
        L.append("")
    S = res.get("tls_system")
    if T and S and not S.get("skipped") and S.get("hs"):
        L.append("**Both wolfSSL builds side by side**, the same cells in the same run (the Debian build: "
                 "`make BUILD=build-syswolfssl WOLFSSL=system`; implicit TLS, full and resumed handshakes; "
                 "STARTTLS 1 MB, 10 connections).")
        L.append("")
        L.append("| wolfSSL | tlsbench us/full hs | tlsbench bulk GB/s | mxgate TLS us/full hs | ratio "
                 "| mxgate TLS us/resumed hs | STARTTLS 1 MB MB/s | STARTTLS 1 MB GB/s per core | cipher |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for X in (T, S):
            tb = X.get("tlsbench") or {}
            full = X["hs"].get("implicit full") or {}
            res_ = X["hs"].get("implicit resumed") or {}
            big = [r for r in X.get("bulk", []) if r.get("size") == MiB]
            st = (big[0].get("starttls") or {}) if big else {}
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                (X.get("mxgate_version") or "-").split("(", 1)[-1].rstrip(")"),
                f(tb.get("server_cpu_us_per_full_hs"), 1), f(tb.get("bulk_decrypt_gbps"), 2),
                f(full.get("tls_cpu_us_per_hs"), 1), f(full.get("ratio_tlsbench"), 2),
                f(res_.get("tls_cpu_us_per_hs"), 1), f(st.get("mb_per_s")),
                f(st.get("gb_per_s_per_core"), 2), full.get("tls_cipher") or "-"))
        L.append("")
    return "\n".join(L) + "\n"


def meta():
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"
    cpu = "n/a"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    hv = first([HAPROXY, "-v"]) if HAPROXY else "haproxy: not installed"
    pv = first(["dpkg-query", "-W", "-f=postfix ${Version}", "postfix"])
    if not (SMTP_SINK and SMTP_SOURCE):
        pv = "postfix smtp-sink/smtp-source: not installed"
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "kernel": os.uname().release,
            "cpu_model": cpu, "haproxy": hv.replace("HAProxy version ", "haproxy ").split(" - ")[0],
            "postfix": pv, "cpus": NCPU, "clk_tck": CLK_TCK, "scale": SCALE}


def main():
    def on_term(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    res = {"meta": meta()}
    t0 = time.monotonic()
    sections = [("proxies", "direct / mxgate / haproxy", section_proxies),
                ("sinks", "mxsink vs smtp-sink", section_sinks),
                ("loaders", "mxload vs smtp-source", section_loaders),
                ("idle", "idle connections", section_idle),
                ("limits", "limits off / embedded / redis", section_limits),
                ("tls", "TLS: handshakes and throughput", section_tls)]
    names = [s[0] for s in sections]
    bad = [x for x in ONLY if x not in names]
    if bad:
        raise SystemExit("bench: BENCH_ONLY=%s: unknown section(s) %s; known: %s" % (
            ",".join(ONLY), ",".join(bad), ",".join(names)))
    try:
        for i, (name, title, fn) in enumerate(sections):
            if ONLY and name not in ONLY:
                continue
            log("%d/%d %s" % (i + 1, len(sections), title))
            fn(res)
    finally:
        stop_all()
        res["warnings"] = warnings
        res["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
        with open(os.path.join(OUT, "results.json"), "w") as fh:
            json.dump(res, fh, indent=1, default=str)
    md = report(res)
    md += "\nWhole run: %.0f s. Raw figures: %s/results.json.\n" % (res["meta"]["elapsed_s"], OUT)
    with open(os.path.join(OUT, "results.md"), "w") as fh:
        fh.write(md)
    sys.stdout.write(md)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
