#!/usr/bin/env bash
# The mutation check: applies deliberate faults to the money and security paths, one at
# a time, and asserts that the test suite fails for each. A fault the tests let pass
# is a test that cannot fail.
#
#   scripts/mutation-check.sh [FAULT...]     (default: every fault; `--list` names them)
#
# It works in a scratch worktree of HEAD (the checkout is never touched) with one test
# build reused between faults; each fault is one exact replacement in one file, so the
# script fails loudly when the code it targets has changed. CTEST_ARGS narrows the
# tests run per fault (default: the whole suite, as `make test` runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# name|file|text to find|replacement (no '|' in the name, file or text to find)
faults=(
  "reverse-void-posting|src/pay/ledger.c|p->kind = \"void\";
    add(p, \"merchant_holds\", authorized);
    add(p, \"card_holds\", -authorized);|p->kind = \"void\";
    add(p, \"merchant_holds\", -authorized);
    add(p, \"card_holds\", authorized);"
  "skip-idempotency-claim|src/api/op.c|if (op->has_idem && !op->claimed) {|if (0 && op->has_idem && !op->claimed) {"
  "accept-wrong-webhook-signature|src/events/signature.c|    return matched ? 0 : PD_ERR_AUTH;|    (void)matched;
    return 0;"
  "skip-audit-append|src/vault/state.c|    int r = pd_audit_append(v->db, &v->audit, v->now(), &rec);|    (void)rec;
    int r = 0;"
  "skip-refund-cap|src/api/refunds.c|        if (f->amount > remaining) {|        if (0 && f->amount > remaining) {"
  "skip-refund-cap-in-the-write|src/pay/transitions.c|f->amount > ch->amount_captured - ch->amount_refunded)|0)"
  "setup-decline-saves-the-card|src/pay/setup.c|bool approved = res->outcome == PD_PROC_APPROVED;|bool approved = res->outcome != PD_PROC_UNKNOWN;"
  "recovery-skips-setup-intents|src/pay/recovery.c|        r = pd_seti_list_processing(db, &arena, older_than, resolve_seti, &a);|        (void)resolve_seti, r = 0;"
)

if [[ ${1:-} == --list ]]; then
  for f in "${faults[@]}"; do echo "${f%%|*}"; done
  exit 0
fi
want=("$@")

work=$(mktemp -d /tmp/payd-mutation.XXXXXX)
cleanup() { git -C "$root" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git -C "$root" worktree add --detach -q "$work/tree" HEAD
ln -s "$root/../shared" "$work/shared" 2>/dev/null || true
cd "$work/tree"

apply() { # file find replace: exactly one occurrence, replaced
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, find, repl = sys.argv[1], sys.argv[2], sys.argv[3]
s = open(path).read()
n = s.count(find)
if n != 1:
    sys.exit(f"mutation-check: {path}: the text to replace occurs {n} times (the code changed?)")
open(path, 'w').write(s.replace(find, repl))
EOF
}

survived=0 killed=0
for f in "${faults[@]}"; do
  # fields may hold newlines: split on the first three bars only
  name=${f%%|*}; rest=${f#*|}; file=${rest%%|*}; rest=${rest#*|}; find=${rest%%|*}; repl=${rest#*|}
  if [[ ${#want[@]} -gt 0 && ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  git checkout -q -- .
  apply "$file" "$find" "$repl"
  echo "== $name ($file)"
  # make expands '$' in a variable's value ('$|' is one of its own): pass it as '$$'
  args=${CTEST_ARGS:-}
  if make test TEST_BUILD="$work/build" CTEST_ARGS="${args//\$/\$\$}" >"$work/$name.log" 2>&1; then
    echo "   SURVIVED: the tests passed with this fault (log: kept below)"
    tail -5 "$work/$name.log"
    survived=$((survived + 1))
  else
    failed=$(grep -E '^\s+[0-9]+ - ' "$work/$name.log" | sed 's/^\s*[0-9]* - //' | tr '\n' ' ' || true)
    echo "   killed by: ${failed:-the build (log: kept below)}"
    [[ -n $failed ]] || tail -15 "$work/$name.log"
    killed=$((killed + 1))
  fi
done
git checkout -q -- .
echo "$killed killed, $survived survived"
[[ $survived -eq 0 ]]
