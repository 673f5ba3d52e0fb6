#!/usr/bin/env bash
# Makes a Debian 12 machine with Node 20 ready to run and test Keyfarm, doing only what is missing:
#   - apt packages: redis-server, postgresql (the embedded servers), chromium (browser tests), wrk (benchmarks),
#     prometheus (only its promtool is used: it checks and unit-tests the alert rules),
#     systemd (only systemd-analyze: it verifies the units in deploy/systemd),
#     libsecp256k1-1 (the native crypto backend; without it the farm falls back to the WASM build)
#   - node_modules: `npm ci` when absent or older than package-lock.json
#   - dist/: `npm run build` (tsc, then the .lua/.sql assets copied beside the JavaScript)
# Safe to run any number of times. Installing packages needs root or sudo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'ensure-deps: %s\n' "$*"; }

missing_packages() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || echo redis-server
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || echo postgresql
  command -v chromium >/dev/null 2>&1 || echo chromium
  command -v wrk >/dev/null 2>&1 || echo wrk
  command -v promtool >/dev/null 2>&1 || echo prometheus
  # systemd-analyze verify checks the units in deploy/systemd; pg_dump/pg_restore come with postgresql.
  command -v systemd-analyze >/dev/null 2>&1 || echo systemd
  compgen -G '/usr/lib/*-linux-gnu/libsecp256k1.so.1' >/dev/null || compgen -G '/usr/lib/libsecp256k1.so.1' >/dev/null || echo libsecp256k1-1
}

install_packages() {
  local packages=("$@") as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      say "missing packages: ${packages[*]}; run as root, or install them: apt-get install ${packages[*]}" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  say "installing ${packages[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

mapfile -t packages < <(missing_packages)
if [ "${#packages[@]}" -gt 0 ]; then install_packages "${packages[@]}"; fi

built=0
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)"
  # npm ci runs the `prepare` script, which is the build.
  npm ci --no-audit --no-fund
  built=1
fi
if [ "$built" -eq 0 ]; then
  say "building (npm run build)"
  npm run --silent build
fi
