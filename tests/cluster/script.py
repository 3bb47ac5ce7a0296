#!/usr/bin/env python3
"""deploy/local/cluster itself: bad usage, cluster.json, HAProxy's reaction to a dead node, start,
and a `down` that signals only the processes the script started.

    script.py BINDIR
"""
import json
import re
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import cluster_script
from cluster_script import cl

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLUSTER = cluster_script.PATH


def cluster(*args):
    r = subprocess.run([CLUSTER] + list(args), capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def expect(cond, what):
    if not cond:
        raise AssertionError(what)
    print("script: ok: " + what, flush=True)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def haproxy_state(d, name):
    return cl.haproxy_server_states({"dir": d}).get(name)


def balance(info):
    req = urllib.request.Request(info["api_url"] + "/v1/balance",
                                 headers={"Authorization": "Bearer " + info["secret_key"]})
    with urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=info["ca"])) as r:
        return r.status


def main():
    bindir = sys.argv[1]
    d = tempfile.mkdtemp(prefix="payd-cluster-")
    os.chmod(d, 0o700)  # any owner and mode: the script makes what it needs reachable
    try:
        rc, out = cluster("up", d, "--bin", bindir, "--set", "nodot=1")
        expect(rc == 2 and "--set nodot=1: expected section.key=value" in out, "a bad --set is refused (exit 2)")
        rc, out = cluster("down", d)
        expect(rc == 1 and "holds no cluster" in out, "down on a directory with no cluster says so (exit 1)")
        rc, out = cluster("up", d, "--bin", "/nonexistent")
        expect(rc == 1 and "/nonexistent/payd not found" in out, "missing binaries are named (exit 1)")

        t0 = time.monotonic()
        rc, out = cluster("up", d, "--nodes", "2", "--bin", bindir, "--no-prometheus")
        expect(rc == 0, "up with 2 nodes (%.0f s)" % (time.monotonic() - t0) + ("" if rc == 0 else ": " + out))
        with open(os.path.join(d, "cluster.json")) as f:
            info = json.load(f)
        expect(info["api_url"].startswith("https://127.0.0.1:") and os.path.isabs(info["ca"]) and
               info["secret_key"].startswith("sk_test_"), "cluster.json: api_url, ca, secret_key")
        expect(len(info["nodes"]) == 2 and all(set(n) >= {"name", "pid", "api", "admin"} for n in info["nodes"]),
               "cluster.json: nodes with name, pid, api, admin")
        pg = info["postgres"]
        expect(pg["url"].startswith("postgresql://") and pg["primary"]["pid"] > 0 and pg["standby"]["port"] > 0,
               "cluster.json: postgres url, primary and standby")
        expect(info["redis"]["url"].startswith("redis://127.0.0.1:") and info["haproxy"]["stats_url"] and
               len(info["vault"]) == 2 and all(v["pid"] > 0 for v in info["vault"]), "cluster.json: redis, haproxy, vault")
        r = subprocess.run(["redis-cli", "-u", info["redis"]["url"], "ROLE"], capture_output=True, text=True)
        expect(r.stdout.startswith("master"), "the redis url works with redis-cli -u and names the master")
        expect(balance(info) == 200, "a request through HAProxy")
        # what runs is deploy/topology.txt's services (which deploy/compose.yaml has too: deploy/compose)
        with open(os.path.join(ROOT, "deploy", "topology.txt")) as f:
            topo = {ln.split()[1] for ln in f if ln.startswith("service ")}
        with open(os.path.join(d, "state.json")) as f:
            started = {re.sub(r"^(redis-sentinel)-\d+$", r"\1", p["name"]) for p in json.load(f)["procs"]}
        expect(started <= topo and topo - started == {"payd-3", "prometheus"},
               "the parts started are deploy/topology.txt's services (%s)" % ", ".join(sorted(started)))
        rc, out = cluster("up", d, "--bin", bindir)
        expect(rc == 1 and "already runs" in out, "up on a running cluster is refused")
        rc, out = cluster("status", d)
        expect(rc == 0 and "payd-2" in out and "haproxy=UP" in out, "status: every part runs")

        # a dead node leaves HAProxy's rotation within 10 s; the other keeps serving
        victim = info["nodes"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        t0 = time.monotonic()
        while haproxy_state(d, victim["name"]) != "DOWN" and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        took = time.monotonic() - t0
        expect(haproxy_state(d, victim["name"]) == "DOWN" and took <= 10, "HAProxy marks a SIGKILLed node down in %.1f s "
               "(bound 10 s)" % took)
        expect(all(balance(info) == 200 for _ in range(10)), "requests pass through the other node")
        rc, out = cluster("status", d)
        expect(rc == 1 and "running=False" in out, "status reports the dead node (exit 1)")
        rc, out = cluster("start", d, victim["name"])
        expect(rc == 0 and haproxy_state(d, victim["name"]) == "UP", "start brings the node back into HAProxy")
        rc, out = cluster("start", d, "nosuch")
        expect(rc == 1 and "no process named nosuch" in out, "start of an unknown part is refused (exit 1)")
        os.kill(info["vault"][1]["pid"], signal.SIGKILL)
        rc, out = cluster("start", d, "payd-vault-2")
        expect(rc == 0, "start brings a SIGKILLed vault back")
        rc, out = cluster("status", d)
        expect(rc == 0 and "running=False" not in out, "status lists what runs now, not the incarnations before a start")

        # down signals only what it started: a recorded pid whose start time differs is left alone
        with open(os.path.join(d, "state.json")) as f:
            state = json.load(f)
        hp = next(p for p in state["procs"] if p["name"] == "haproxy")
        hp["start"] += 1
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump(state, f)
        rc, out = cluster("down", d)
        pids = [p["pid"] for p in state["procs"] if p["name"] != "haproxy"]
        time.sleep(0.5)
        expect(rc == 0 and not any(alive(p) for p in pids), "down stops every process it started")
        expect(alive(hp["pid"]), "down leaves a pid alone that is no longer the process it started")
        os.kill(hp["pid"], signal.SIGTERM)
    except AssertionError as e:
        print("script: FAILED: %s (logs in %s)" % (e, d), flush=True)
        cluster("down", d)
        return 1
    subprocess.run(["rm", "-rf", d])
    print("script: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
