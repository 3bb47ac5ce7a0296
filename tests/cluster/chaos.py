#!/usr/bin/env python3
"""The chaos test (issue 15): a 3-node cluster under a retrying payments load, through five faults.

    chaos.py --bin DIR [--keep]

It brings the cluster up with deploy/local/cluster (DIR holds payd, payd-vault and payctl), starts
a webhook receiver, and runs clients that create confirmed payments (manual capture), capture
them and refund some, each step retried with its idempotency key on errors and timeouts. During
the load, one after another:
  1. SIGKILL a payd node, and start it again;
  2. SIGKILL one vault instance (started again afterwards);
  3. fail PostgreSQL over to the standby;
  4. SIGKILL the Redis master (Sentinel promotes the replica);
  5. a rolling restart of all payd nodes with SIGTERM.
Then it asserts that every acknowledged payment, capture and refund is in payd; that no logical
payment was authorized twice and the simulator's record agrees with payd's books
(`payctl ledger verify --with-processor`); that the webhook receiver got every event at least
once; and that the stream holds every event. It prints, per fault, the failed requests (answers
a client had to retry: 5xx, 429, connection errors, timeouts) and the longest time without a
successful answer. Exit 0 when every assertion holds.
"""
import argparse
import http.client
import http.server
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import cluster_script
from cluster_script import cl

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = cluster_script.PATH
CLIENTS = 6
LOAD_BETWEEN_FAULTS_S = 6
RETRY_BUDGET_S = 90  # a client retries one step this long before the test fails
SERVICE_BACK_S = 30  # the longest any fault may keep every client from a successful answer


def log(msg):
    print("chaos: " + msg, flush=True)


class Stats:
    """requests and their outcomes, by the fault window they fell in; a stretch without any
    successful answer counts against the window in which it began"""

    def __init__(self):
        self.mu = threading.Lock()
        self.window = "warm-up"
        self.failed = {}
        self.ok = {}
        self.last_ok = time.monotonic()
        self.last_ok_window = self.window
        self.longest_gap = {}
        self.kinds = {}  # window -> {answer: count} of the failed requests

    def set_window(self, name):
        with self.mu:
            self.window = name

    def record(self, success, kind=None):
        with self.mu:
            w = self.window
            if not success and kind is not None:
                k = self.kinds.setdefault(w, {})
                k[kind] = k.get(kind, 0) + 1
            if success:
                now = time.monotonic()
                gw = self.last_ok_window
                self.longest_gap[gw] = max(self.longest_gap.get(gw, 0.0), now - self.last_ok)
                self.last_ok, self.last_ok_window = now, w
                self.ok[w] = self.ok.get(w, 0) + 1
            else:
                self.failed[w] = self.failed.get(w, 0) + 1


class Api:
    """one keep-alive HTTPS connection to HAProxy; reconnects after any error"""

    def __init__(self, info):
        u = urllib.parse.urlparse(info["api_url"])
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=info["ca"])
        self.auth = "Bearer " + info["secret_key"]
        self.conn = None

    def call(self, method, path, form=None, key=None, timeout=10):
        """(status, body dict); raises OSError / http.client errors on transport failure"""
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        headers = {"Authorization": self.auth}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            return r.status, json.loads(data or b"{}")
        except ValueError:
            return r.status, {"raw": data[:200].decode(errors="replace")}


def retried(api, stats, method, path, form, key):
    """the step's answer once it is not one a client retries; a retryable failure is counted"""
    deadline = time.monotonic() + RETRY_BUDGET_S
    while True:
        try:
            st, body = api.call(method, path, form, key)
            if st < 500 and st != 429 and st != 409:
                stats.record(st < 400)
                return st, body
            # 409 idempotency_key_in_use: the first attempt is still running somewhere
            code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
            kind = "%d %s" % (st, code) if code else str(st)
        except (OSError, http.client.HTTPException) as e:
            st, body, kind = 0, None, type(e).__name__
        stats.record(False, kind)
        if time.monotonic() > deadline:
            raise AssertionError("%s %s (key %s) still failing after %d s: %s %s" % (method, path, key,
                                                                                  RETRY_BUDGET_S, st, body))
        time.sleep(0.2)


class Client(threading.Thread):
    def __init__(self, n, info, stats, stop):
        super().__init__(daemon=True)
        self.n, self.api, self.stats, self.stop = n, Api(info), stats, stop
        self.done = []  # (intent id, amount, logical id, refund id or None)
        self.failed = []  # (intent id, logical id): payments answered as failed
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                self.one("c%d-%d" % (self.n, i), 1000 + i)
                i += 1
        except AssertionError as e:
            self.error = str(e)

    def one(self, logical, amount):
        st, pi = retried(self.api, self.stats, "POST", "/v1/payment_intents",
                         {"amount": amount, "currency": "usd", "confirm": "true", "payment_method": "pm_card_visa",
                          "capture_method": "manual", "metadata[logical]": logical}, "chaos-%s-create" % logical)
        if st == 402 and pi["error"].get("code") == "processing_error":
            # the authorization's outcome was lost to a fault and the recovery worker settled it as
            # failed (docs/payments.md): a definitive answer, checked against the processor below
            self.failed.append((pi["error"]["payment_intent"]["id"], logical))
            return
        if st != 200 or pi.get("status") != "requires_capture":
            raise AssertionError("create %s: %d %s" % (logical, st, pi))
        st, cap = retried(self.api, self.stats, "POST", "/v1/payment_intents/%s/capture" % pi["id"], {},
                          "chaos-%s-capture" % logical)
        if st != 200 or cap.get("status") != "succeeded":
            raise AssertionError("capture %s: %d %s" % (logical, st, cap))
        refund = None
        if amount % 3 == 0:
            st, rf = retried(self.api, self.stats, "POST", "/v1/refunds",
                             {"payment_intent": pi["id"], "amount": amount // 2}, "chaos-%s-refund" % logical)
            if st != 200 or rf.get("status") != "succeeded":
                raise AssertionError("refund %s: %d %s" % (logical, st, rf))
            refund = rf["id"]
        self.done.append((pi["id"], amount, logical, refund))


class Hooks(http.server.ThreadingHTTPServer):
    """records the id of every event delivered to it"""

    def __init__(self):
        self.ids = set()
        self.mu = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(h):
                body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
                try:
                    eid = json.loads(body)["id"]
                    with self.mu:
                        self.ids.add(eid)
                except (ValueError, KeyError):
                    pass
                h.send_response(200)
                h.send_header("Content-Length", "0")
                h.end_headers()

            def log_message(h, *a):
                pass

        super().__init__(("127.0.0.1", 0), H)


def cluster(*args, check=True):
    r = subprocess.run([CLUSTER] + list(args), capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if check and r.returncode != 0:
        raise AssertionError("deploy/local/cluster %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r


def load(d):
    with open(os.path.join(d, "cluster.json")) as f:
        return json.load(f)


def get(api, path):
    """GET path, waiting out a 429 (a plan or an edge limit: the checks read thousands of objects);
    a keep-alive connection that went idle while a check ran (HAProxy closes it after `timeout
    client`) is opened again once, as any HTTP client does for a GET"""
    for _ in range(100):
        try:
            st, body = api.call("GET", path)
        except (OSError, http.client.HTTPException):
            st, body = api.call("GET", path)  # Api.call dropped the dead connection
        if st != 429:
            return st, body
        time.sleep(0.5)
    return st, body


def list_all(api, path):
    """every object of a list endpoint, following has_more"""
    out, after = [], None
    while True:
        q = "?limit=100" + ("&starting_after=" + after if after else "")
        st, body = get(api, path + q)
        if st != 200:
            raise AssertionError("GET %s: %d %s" % (path, st, body))
        out += body["data"]
        if not body.get("has_more"):
            return out
        after = body["data"][-1]["id"]


def resp(sock_file):
    """one RESP reply from a file-like socket"""
    line = sock_file.readline()
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"-"):
        return rest.decode()
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = sock_file.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [resp(sock_file) for _ in range(n)]
    raise ValueError("bad RESP reply %r" % line)


def stream_ids(port, partitions=3):
    """the `id` field of every entry in payd:txn:0..N-1 (with repeats)"""
    ids = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        for p in range(partitions):
            key = "payd:txn:%d" % p
            req = "*4\r\n$6\r\nXRANGE\r\n$%d\r\n%s\r\n$1\r\n-\r\n$1\r\n+\r\n" % (len(key), key)
            s.sendall(req.encode())
            for _entry_id, fields in resp(f) or []:
                kv = dict(zip(fields[0::2], fields[1::2]))
                ids.append(kv.get("id"))
    return ids


def redis_master(info):
    """the master's port as the sentinels report it now"""
    port = cl.redis_master_port({"redis": {"sentinels": info["redis"]["sentinels"]}})
    if port is None:
        raise AssertionError("no sentinel answers")
    return port


def faults(d, info, stats):
    def window(name, fn):
        stats.set_window(name)
        log("fault: " + name)
        fn()
        time.sleep(LOAD_BETWEEN_FAULTS_S)

    def kill_node():
        os.kill(info["nodes"][0]["pid"], signal.SIGKILL)
        time.sleep(2)
        cluster("start", d, info["nodes"][0]["name"])

    def kill_vault():
        os.kill(load(d)["vault"][0]["pid"], signal.SIGKILL)
        time.sleep(3)
        cluster("start", d, "payd-vault-1")

    def kill_redis():
        os.kill(load(d)["redis"]["pid"], signal.SIGKILL)
        # started again it is a master with stale data; Sentinel turns it into the new master's replica
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if redis_master(info) != info["redis"]["port"]:
                    log("sentinel promoted the replica (port %d)" % redis_master(info))
                    cluster("start", d, "redis")
                    return
            except AssertionError:
                pass
            time.sleep(0.5)
        raise AssertionError("Sentinel did not promote the replica within 40 s")

    window("1 SIGKILL node1, start it again", kill_node)
    window("2 SIGKILL vault0", kill_vault)
    window("3 PostgreSQL failover", lambda: cluster("failover-postgres", d))
    window("4 SIGKILL the Redis master (started again)", kill_redis)
    window("5 rolling restart (SIGTERM)", lambda: cluster("rolling-restart", d))


def verify(d, info, bindir, clients, hooks):
    api = Api(info)
    done = [x for c in clients for x in c.done]
    log("%d logical payments completed (create, capture, %d refunds)" % (len(done), sum(1 for x in done if x[3])))
    # every acknowledged payment, capture and refund is there
    for pi_id, amount, logical, refund in done:
        st, pi = get(api, "/v1/payment_intents/" + pi_id)
        assert st == 200 and pi["status"] == "succeeded" and pi["amount_received"] == amount, (pi_id, st, pi)
        assert pi["metadata"].get("logical") == logical, pi
        if refund:
            st, rf = get(api, "/v1/refunds/" + refund)
            assert st == 200 and rf["status"] == "succeeded" and rf["amount"] == amount // 2, (refund, st, rf)
    # no logical payment made twice: one intent per logical id, and only those the clients made
    intents = list_all(api, "/v1/payment_intents")
    by_id = {pi["id"]: pi for pi in intents}
    unlisted = {x[0] for x in done} - set(by_id)
    assert not unlisted and len(by_id) == len(intents), \
        "the list's pages miss %d intents (%s...) or repeat some" % (len(unlisted), sorted(unlisted)[:3])
    per_logical = {}
    for pi in intents:
        per_logical.setdefault(pi["metadata"].get("logical"), []).append(pi["id"])
    dup = {k: v for k, v in per_logical.items() if len(v) > 1}
    assert not dup, "logical payments with two intents: %s" % dup
    failed = [x for c in clients for x in c.failed]
    log("%d payments answered as failed (processing_error after a fault)" % len(failed))
    started = {x[2] for x in done} | {x[1] for x in failed}
    extra = set(per_logical) - started
    # an intent whose client was stopped mid-retry at the end is the only acceptable extra
    assert len(extra) <= len(clients), "intents no client completed: %s" % extra
    # the processor authorized each payment once, captured it once and refunded what payd says
    sim = sqlite3.connect("file:%s?mode=ro" % info["simulator_db"], uri=True)
    auths = {r[0]: r[1:] for r in sim.execute(
        "SELECT charge_id, status, amount, amount_captured, amount_refunded FROM auths WHERE merchant_id = ?",
        (info["merchant"],))}
    sim.close()
    held = [a for a in auths.values() if a[0] in ("authorized", "captured")]
    assert len(held) == len(done), "the simulator holds %d authorizations, the clients completed %d payments" % (
        len(held), len(done))
    for pi_id, amount, logical, refund in done:
        pi = by_id[pi_id]
        a = auths.get(pi["latest_charge"])
        # (status, amount, amount_captured, amount_refunded)
        assert a is not None and a[:3] == ("captured", amount, amount) and a[3] == (amount // 2 if refund else 0), \
            "simulator record of %s: %s" % (pi_id, a)
    for pi_id, logical in failed:
        pi = by_id.get(pi_id)
        assert pi is not None, "failed payment %s not in the list" % pi_id
        a = auths.get(pi["latest_charge"])
        assert pi["status"] == "requires_payment_method" and (a is None or a[0] not in ("authorized", "captured")), \
            "failed payment %s: %s, simulator %s" % (pi_id, pi["status"], a)
    # the books verify, and agree with the processor's record (after recovery settled what a fault left)
    deadline = time.monotonic() + 120
    while True:
        v0 = os.path.join(d, "vault", "payd-vault-1")
        r = subprocess.run([os.path.join(bindir, "payctl"), "--config", info["nodes"][1]["config"], "--vault-socket",
                            v0 + "/vault.sock", "--credential", v0 + "/credentials/admin", "ledger", "verify",
                            "--with-processor", "--simulator-db", info["simulator_db"]], capture_output=True, text=True)
        out = (r.stdout + r.stderr).strip()
        if r.returncode == 0 and " 0 in flight" in out or (r.returncode == 0 and "in flight" not in out):
            log("ledger: " + out.replace("\n", "; "))
            break
        if time.monotonic() > deadline:
            raise AssertionError("payctl ledger verify --with-processor: %d %s" % (r.returncode, out))
        time.sleep(2)
    # every event reached the webhook receiver at least once, and the stream. Deliveries
    # trail the load (one endpoint, a few attempts in flight per node), so the backlog is
    # waited out while it shrinks; a minute without progress fails.
    events = list_all(api, "/v1/events")
    want = {e["id"] for e in events}
    t0 = time.monotonic()
    progress_at, best = t0, None
    while True:
        with hooks.mu:
            missing_hooks = want - hooks.ids
        sids = stream_ids(redis_master(load(d)))
        missing_stream = want - set(sids)
        left = len(missing_hooks) + len(missing_stream)
        if left == 0:
            break
        if best is None or left < best:
            progress_at, best = time.monotonic(), left
        if time.monotonic() - progress_at > 60 or time.monotonic() - t0 > 400:
            raise AssertionError("%d events: %d never reached the webhook receiver (%s...), %d not in the stream "
                                 "(%s...), after %.0f s" % (len(want), len(missing_hooks), sorted(missing_hooks)[:3],
                                                            len(missing_stream), sorted(missing_stream)[:3],
                                                            time.monotonic() - t0))
        time.sleep(2)
    log("%d events: all delivered to the webhook receiver and all in the stream (%d stream entries, %d repeats); "
        "the last of them %.0f s after the ledger check" % (len(want), len(sids), len(sids) - len(set(sids)),
                                                            time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--keep", action="store_true", help="leave the cluster running and its directory in place")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="payd-chaos-")
    stats, stop = Stats(), threading.Event()
    clients = []
    hooks = Hooks()
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    ok = False
    try:
        t0 = time.monotonic()
        cluster("up", d, "--nodes", "3", "--bin", args.bin, "--no-prometheus",
                "--set", "api.drain_grace_ms=2000",
                # every client is 127.0.0.1 here: the per-address rule would refuse the load itself
                "--set", "waf.ip_rate_limit=100000000", "--edge-rate", "100000000")
        log("cluster up in %.0f s" % (time.monotonic() - t0))
        info = load(d)
        st, ep = Api(info).call("POST", "/v1/webhook_endpoints",
                                {"url": "http://127.0.0.1:%d/hook" % hooks.server_address[1], "enabled_events[]": "*"})
        assert st == 200, (st, ep)
        clients = [Client(n, info, stats, stop) for n in range(CLIENTS)]
        stats.last_ok = time.monotonic()
        for c in clients:
            c.start()
        time.sleep(LOAD_BETWEEN_FAULTS_S)
        faults(d, info, stats)
        stats.set_window("after")
        time.sleep(2)
        stop.set()
        for c in clients:
            c.join(RETRY_BUDGET_S + 30)
        errors = [c.error for c in clients if c.error]
        assert not errors, "clients failed: %s" % errors
        log("per fault: failed requests (retried by the client) / successful / longest without a success")
        for w in sorted(set(stats.ok) | set(stats.failed)):
            kinds = ", ".join("%s: %d" % kv for kv in sorted(stats.kinds.get(w, {}).items()))
            log("  %-44s %5d / %5d / %.2f s  %s" % (w, stats.failed.get(w, 0), stats.ok.get(w, 0),
                                                      stats.longest_gap.get(w, 0.0), kinds))
        # the bounds: service back within 30 s of failover-postgres, and no fault
        # (nor its aftermath) keeps every client from a success that long
        for w, gap in stats.longest_gap.items():
            assert gap < SERVICE_BACK_S, "%s: %.1f s without a successful answer (bound %d s)" % (w, gap, SERVICE_BACK_S)
        verify(d, load(d), args.bin, clients, hooks)
        ok = True
    except AssertionError as e:
        log("FAILED: %s" % e)
    finally:
        hooks.shutdown()
        if not args.keep:
            cluster("down", d, check=False)
            if ok:
                subprocess.run(["rm", "-rf", d])
            else:
                log("logs kept in %s" % d)
    log("passed" if ok else "failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
