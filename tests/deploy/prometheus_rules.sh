#!/usr/bin/env bash
# deploy/prometheus_rules: deploy/prometheus/payd.rules.yml parses (promtool check rules), its
# unit tests pass (promtool test rules payd.rules.test.yml: each alert fires and stays silent
# where it should), and it reads only documented metrics (check_rule_names.py).
# Usage: prometheus_rules.sh PROMTOOL PYTHON3 SOURCE_DIR
set -euo pipefail
promtool=$1 python=$2 src=$3
"$promtool" check rules "$src/deploy/prometheus/payd.rules.yml"
"$promtool" test rules "$src/deploy/prometheus/payd.rules.test.yml"
"$python" "$(dirname "$0")/check_rule_names.py" "$src"
