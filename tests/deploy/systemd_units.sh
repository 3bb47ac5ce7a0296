#!/usr/bin/env bash
# deploy/systemd_units: deploy/systemd/payd.service and payd-vault.service pass
# `systemd-analyze verify` with nothing to say (an unknown key is only a warning there, so
# any output fails the test), and `systemd-analyze security --offline=yes` rates each at an
# exposure of 2.0 or lower. The units name /usr/bin/payd and /usr/bin/payd-vault, which verify
# requires to exist: the copies checked here name the binaries just built instead. Also: the
# example /etc/payd/payd.ini the unit reads (deploy/systemd/payd.ini) is accepted by payd.
# Skipped (exit 77) only when systemd-analyze is not installed.
# Usage: systemd_units.sh SOURCE_DIR PAYD PAYD_VAULT
set -euo pipefail
src=$1 payd=$2 vault=$3
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed (package systemd); the units were not checked"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/payd-vault |$vault |" "$src/deploy/systemd/payd-vault.service" > "$tmp/payd-vault.service"
sed "s|/usr/bin/payd |$payd |" "$src/deploy/systemd/payd.service" > "$tmp/payd.service"
grep -q "^ExecStart=$vault " "$tmp/payd-vault.service" && grep -q "^ExecStart=$payd " "$tmp/payd.service"

payctl=$(dirname "$payd")/payctl
sed "s|/usr/bin/payctl |$payctl |" "$src/deploy/systemd/payd-backup.service" > "$tmp/payd-backup.service"
cp "$src/deploy/systemd/payd-backup.timer" "$tmp/payd-backup.timer"
grep -q "^ExecStart=$payctl " "$tmp/payd-backup.service"

out=$(systemd-analyze verify --man=no "$tmp/payd-vault.service" "$tmp/payd.service" "$tmp/payd-backup.service" \
      "$tmp/payd-backup.timer" 2>&1) || {
    echo "$out"; echo "FAIL: systemd-analyze verify"; exit 1; }
# a unit file of ours that the checked copy is not (paths): nothing else may be said
if [[ -n "$out" ]]; then
    echo "$out"; echo "FAIL: systemd-analyze verify has warnings"; exit 1
fi
echo "systemd-analyze verify: the units ok (payd-vault, payd, payd-backup and its timer), no warnings"

for u in payd-vault payd; do
    if ! sec=$(systemd-analyze security --offline=yes "$tmp/$u.service" 2>&1); then
        # exit status 0 unless --threshold; a failure here is the tool's
        echo "$sec"; echo "FAIL: systemd-analyze security --offline=yes $u.service"; exit 1
    fi
    level=$(sed -n "s/.*Overall exposure level for $u.service: \([0-9.]*\).*/\1/p" <<<"$sec")
    if [[ -z "$level" ]]; then
        echo "$sec"; echo "FAIL: no exposure level for $u.service"; exit 1
    fi
    echo "$u.service: exposure $level"
    if ! awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
        grep '✗' <<<"$sec" || true
        echo "FAIL: $u.service exposure $level is above 2.0"; exit 1
    fi
done

# the unit's configuration file: every key known, every value valid
"$payd" --config "$src/deploy/systemd/payd.ini" --print-config >/dev/null
echo "deploy/systemd/payd.ini: accepted by payd --print-config"
