#!/usr/bin/env python3
"""Checks one /metrics scrape (text format 0.0.4) on stdin for torn histograms.

A histogram is torn when, within one series, a cumulative bucket is below the bucket
before it, or _count differs from the +Inf bucket. Prints one line per torn series and
exits 1 if any; exits 2 when the input is not a scrape (no histogram at all)."""
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LE = re.compile(r'(^|,)le="([^"]*)"')


def main():
    hists = set()
    buckets = {}  # (family, other labels) -> [(le, value)]
    counts = {}
    for line in sys.stdin:
        line = line.rstrip('\n')
        if line.startswith('# TYPE ') and line.endswith(' histogram'):
            hists.add(line.split()[2])
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(3) or '', float(m.group(4))
        if name.endswith('_bucket') and name[:-7] in hists:
            le = LE.search(labels)
            rest = LE.sub('', labels).strip(',')
            buckets.setdefault((name[:-7], rest), []).append((float(le.group(2)), value))
        elif name.endswith('_count') and name[:-6] in hists:
            counts[(name[:-6], labels)] = value
    if not hists:
        print('no histogram in the scrape', file=sys.stderr)
        return 2
    torn = 0
    for key, bs in buckets.items():
        bs.sort()
        vals = [v for _, v in bs]
        if any(b < a for a, b in zip(vals, vals[1:])) or counts.get(key) != vals[-1]:
            print(f'torn: {key[0]}{{{key[1]}}} buckets {vals} count {counts.get(key)}')
            torn += 1
    return 1 if torn else 0


if __name__ == '__main__':
    sys.exit(main())
