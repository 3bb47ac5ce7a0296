"""The metric names a PromQL expression reads, and the names the docs allow (tests/deploy).

documented(metrics_md, monitoring_md, rules_yml) -> set of names: every metric of docs/metrics.md's
tables (a histogram also as _bucket, _sum and _count), every external metric of the table under
"## External metrics" in docs/monitoring.md, and every recording rule of payd.rules.yml.

names(expr) -> set of the metric names an expression selects. It is a reading of PromQL good for
the expressions of this repository's rules and dashboard, not a parser: strings, label matchers,
ranges, grouping clauses, numbers and function calls are removed, the identifiers left are
metric names. Grafana's variables must be substituted first (grafana_vars).
"""
import re

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan",
             # aggregations, which "sum by (x) (...)" leaves before "by" rather than "("
             "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
             "topk", "quantile"}


def grafana_vars(expr):
    """Grafana's variables as PromQL would see them once Grafana substitutes them."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{[A-Za-z0-9_]+(:[a-z]+)?\}|\$[A-Za-z0-9_]+", ".*", expr)
    return expr


def names(expr):
    e = re.sub(r'"([^"\\]|\\.)*"|\'([^\'\\]|\\.)*\'|`[^`]*`', '""', expr)   # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                          # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                         # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", e)
    e = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?(ms|[smhdwy])?", " ", e)  # numbers, durations
    found = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        rest = e[m.end():].lstrip()
        if rest.startswith("("):          # a function or an aggregation
            continue
        if m.group(0).lower() in _KEYWORDS:
            continue
        found.add(m.group(0))
    return found


def _table_names(text):
    """Backticked names in the first column of the Markdown tables of text."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([A-Za-z_:][A-Za-z0-9_:]*)`\s*\|\s*([a-z]*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def documented(metrics_md, monitoring_md, rules_yml):
    allowed = set()
    with open(metrics_md, encoding="utf-8") as f:
        for name, kind in _table_names(f.read()).items():
            allowed.add(name)
            if kind == "histogram":
                allowed.update({name + "_bucket", name + "_sum", name + "_count"})
    with open(monitoring_md, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## External metrics$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if m is None:
        raise SystemExit(f"{monitoring_md}: no '## External metrics' section")
    for name, kind in _table_names(m.group(1)).items():
        allowed.add(name)
        if kind == "histogram":
            allowed.update({name + "_bucket", name + "_sum", name + "_count"})
    with open(rules_yml, encoding="utf-8") as f:
        allowed.update(re.findall(r"^\s*-?\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*$", f.read(), re.M))
    return allowed
