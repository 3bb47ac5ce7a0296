#!/usr/bin/env python3
"""deploy/grafana_json: deploy/grafana/payd.json is a dashboard Grafana can load and reads only
documented metrics.

Usage: check_grafana.py PROMTOOL SOURCE_DIR

Checks: valid JSON; schemaVersion 36 or later; a datasource variable DS_PROMETHEUS (type
prometheus) that every panel and target uses; the reference's nine widgets and the two of payd
(payments by outcome, WAF blocks), each once; unique panel ids, every panel on the 24-column grid
with no two overlapping; every target an expression with a refId; every metric an expression or
a variable's query reads documented (docs/metrics.md, docs/monitoring.md "External metrics",
payd.rules.yml's recording rules); and every expression valid PromQL (promtool check rules over
a file of recording rules made from them, Grafana's variables substituted).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metric_names  # noqa: E402

# (what the panel shows, a words its title must hold): the reference's nine, then payd's two
REQUIRED = [
    ("service CPU", "Service CPU"),
    ("service memory", "Service memory"),
    ("active connections", "Active connections"),
    ("target response time", "Target response time"),
    ("database CPU (COMMIT p99 as its proxy)", "COMMIT latency p99"),
    ("database connections", "Database connections"),
    ("API requests", "API requests"),
    ("API latency", "API latency"),
    ("stream incoming records", "Stream incoming records"),
    ("payments by outcome", "Payments by outcome"),
    ("WAF blocks", "WAF blocks"),
]
DS_UID = "${DS_PROMETHEUS}"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_grafana.py PROMTOOL SOURCE_DIR")
    promtool, src = sys.argv[1], sys.argv[2]
    path = os.path.join(src, "deploy/grafana/payd.json")
    errors = []
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: {e}")

    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        errors.append(f"schemaVersion {dash.get('schemaVersion')!r}: want 36 or later")
    variables = dash.get("templating", {}).get("list", [])
    ds = [v for v in variables if v.get("name") == "DS_PROMETHEUS"]
    if len(ds) != 1 or ds[0].get("type") != "datasource" or ds[0].get("query") != "prometheus":
        errors.append("templating: want one variable DS_PROMETHEUS of type datasource, query prometheus")

    allowed = metric_names.documented(os.path.join(src, "docs/metrics.md"), os.path.join(src, "docs/monitoring.md"),
                                      os.path.join(src, "deploy/prometheus/payd.rules.yml"))
    exprs = []   # (where, expression with Grafana's variables substituted)
    for v in variables:
        q = v.get("query")
        if v.get("type") == "query":
            q = q.get("query") if isinstance(q, dict) else q
            if v.get("datasource", {}).get("uid") != DS_UID:
                errors.append(f"variable {v.get('name')}: datasource is not {DS_UID}")
            inner = q[len("label_values("):q.rindex(",")] if q.startswith("label_values(") else q
            exprs.append((f"variable {v.get('name')}", metric_names.grafana_vars(inner)))

    panels = dash.get("panels", [])
    ids, cells = set(), {}
    for p in panels:
        title = p.get("title", "")
        if p.get("id") in ids:
            errors.append(f"panel {title!r}: id {p.get('id')} twice")
        ids.add(p.get("id"))
        if p.get("datasource", {}).get("uid") != DS_UID:
            errors.append(f"panel {title!r}: datasource is not {DS_UID}")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] < 0 or g["x"] + g["w"] > 24:
            errors.append(f"panel {title!r}: gridPos {g} not on the 24-column grid")
        else:
            for cx in range(g["x"], g["x"] + g["w"]):
                for cy in range(g["y"], g["y"] + g["h"]):
                    if (cx, cy) in cells:
                        errors.append(f"panel {title!r} overlaps {cells[(cx, cy)]!r}")
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        targets = p.get("targets", [])
        if not targets:
            errors.append(f"panel {title!r}: no target")
        refs = set()
        for t in targets:
            if t.get("datasource", {}).get("uid") != DS_UID:
                errors.append(f"panel {title!r} target {t.get('refId')}: datasource is not {DS_UID}")
            if not t.get("refId") or t["refId"] in refs:
                errors.append(f"panel {title!r}: a target without a refId or with one twice")
            refs.add(t.get("refId"))
            if not t.get("expr"):
                errors.append(f"panel {title!r} target {t.get('refId')}: no expr")
                continue
            exprs.append((f"panel {title!r} target {t.get('refId')}", metric_names.grafana_vars(t["expr"])))

    for what, words in REQUIRED:
        n = sum(1 for p in panels if words in p.get("title", ""))
        if n != 1:
            errors.append(f"{what}: {n} panels titled with {words!r}, want 1")

    for where, e in exprs:
        for name in sorted(metric_names.names(e) - allowed):
            errors.append(f"{where}: metric {name} is not documented (docs/metrics.md, docs/monitoring.md)")

    # PromQL syntax: promtool parses every expression as a recording rule
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (_, e) in enumerate(exprs):
            f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}\n")
        tmp = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", tmp], capture_output=True, text=True)
        if r.returncode != 0:
            errors.append("an expression is not valid PromQL (expr<N> is the N-th of variables then targets):\n"
                          + r.stdout + r.stderr)
    finally:
        os.unlink(tmp)

    if errors:
        print(f"{path}:")
        for e in errors:
            print("  " + e)
        sys.exit(1)
    print(f"ok: {path}: {len(panels)} panels, {len(exprs)} expressions, all documented metrics, valid PromQL")


if __name__ == "__main__":
    main()
