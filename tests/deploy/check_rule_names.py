#!/usr/bin/env python3
"""Part of deploy/prometheus_rules: every metric deploy/prometheus/payd.rules.yml reads is
documented (docs/metrics.md, docs/monitoring.md "External metrics", or a recording rule of the
same file), and every alert carries the labels severity and alarm and the annotations summary
and description. promtool checks the syntax and runs the unit tests; this checks the names.

Usage: check_rule_names.py SOURCE_DIR
"""
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metric_names  # noqa: E402

ALARMS = {"cpu", "memory", "db", "unhealthy", "api_4xx", "api_5xx", "backup", "monitoring"}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_rule_names.py SOURCE_DIR")
    src = sys.argv[1]
    path = os.path.join(src, "deploy/prometheus/payd.rules.yml")
    allowed = metric_names.documented(os.path.join(src, "docs/metrics.md"), os.path.join(src, "docs/monitoring.md"),
                                      path)
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    errors, seen = [], set()
    for g in doc.get("groups", []):
        for r in g.get("rules", []):
            name = r.get("alert") or r.get("record")
            for m in sorted(metric_names.names(r.get("expr", "")) - allowed):
                errors.append(f"{name}: metric {m} is not documented (docs/metrics.md, docs/monitoring.md)")
            if "alert" in r:
                labels, notes = r.get("labels", {}), r.get("annotations", {})
                if labels.get("severity") not in ("warning", "critical"):
                    errors.append(f"{name}: label severity must be warning or critical")
                if labels.get("alarm") not in ALARMS:
                    errors.append(f"{name}: label alarm {labels.get('alarm')!r} is not one of {sorted(ALARMS)}")
                seen.add(labels.get("alarm"))
                for k in ("summary", "description"):
                    if not notes.get(k):
                        errors.append(f"{name}: no annotation {k}")
    for a in sorted(ALARMS - seen):
        errors.append(f"no alert for the alarm {a}")
    if errors:
        print(f"{path}:")
        for e in errors:
            print("  " + e)
        sys.exit(1)
    print(f"ok: {path}: every metric documented, every alarm has an alert")


if __name__ == "__main__":
    main()
