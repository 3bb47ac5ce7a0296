#!/usr/bin/env bash
# Installs the Debian packages payd needs to build, test and benchmark, only those
# that are missing. Idempotent; works as root or through sudo; prints what it does.
#   scripts/deps.sh            build + test packages
#   scripts/deps.sh --bench    also the benchmark baselines (nginx, ModSecurity, wrk, h2load)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config git ca-certificates
  libssl-dev openssl libh2o-evloop-dev libinih-dev libjansson-dev
  libsqlite3-dev sqlite3 libhyperscan-dev libcurl4-openssl-dev libpq-dev libhiredis-dev
  p11-kit libp11-kit-dev
)
test_pkgs=(
  libcmocka-dev clang libclang-rt-14-dev softhsm2 opensc curl nghttp2-client
  postgresql redis-server haproxy python3 python3-yaml prometheus chromium
)
bench_pkgs=(wrk nghttp2-client nginx libnginx-mod-http-modsecurity modsecurity-crs)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
if [[ "${1:-}" == "--bench" ]]; then want+=("${bench_pkgs[@]}"); fi
# Node.js may come from elsewhere (nodesource bundles npm); only ask Debian when absent
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then want+=(nodejs npm); fi

sudo=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then sudo=(sudo); fi

# The system users payd runs as when started as root (docs/vault.md): payd serves the
# network, payd-vault holds the keys and cards. payd is a member of payd-vault's group,
# which may read the two credentials payd needs and connect to a standalone vault's
# socket. payd itself creates no user.
ensure_users() {
  if [[ $(id -u) -ne 0 && ${#sudo[@]} -eq 0 ]]; then
    echo "deps: not root and no sudo: create the users payd and payd-vault yourself (see docs/vault.md)" >&2
    return 0
  fi
  local made=()
  if ! getent passwd payd-vault >/dev/null; then
    "${sudo[@]}" useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "payd vault (keys and cards)" payd-vault
    made+=(payd-vault)
  fi
  if ! getent passwd payd >/dev/null; then
    "${sudo[@]}" useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --groups payd-vault --comment "payd (network-facing service)" payd
    made+=(payd)
  elif ! id -nG payd | tr ' ' '\n' | grep -qx payd-vault; then
    "${sudo[@]}" usermod -a -G payd-vault payd
    made+=("payd in group payd-vault")
  fi
  if ((${#made[@]} > 0)); then echo "deps: created ${made[*]}"; fi
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#want[@]} packages present"
  ensure_users
  exit 0
fi

if [[ $(id -u) -ne 0 && ${#sudo[@]} -eq 0 ]]; then
  echo "deps: missing packages (${missing[*]}) and not root and no sudo" >&2; exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# the package lists may be absent on a fresh machine; refresh them once
if [[ ! -d /var/lib/apt/lists ]] || [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]] \
   || ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/payd-deps.log 2>&1; then
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/payd-deps.log 2>&1 \
    || { tail -n 30 /tmp/payd-deps.log >&2; echo "deps: apt-get install failed" >&2; exit 1; }
fi
echo "deps: installed ${#missing[@]} packages"
ensure_users
