# Shared by scripts/run and scripts/test: a venv with the package, and Mosquitto on the machine.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEARTH_VENV:-$ROOT/.venv}"
# The Matter bridge's sidecar is not part of the installed package: the gateway finds it here ([matter]).
export HEARTH_MATTER_DIR="${HEARTH_MATTER_DIR:-$ROOT/matter}"
PYTHON="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

find_mosquitto() {
  command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true
}

ensure_mosquitto() {
  if [ -z "$(find_mosquitto)" ]; then
    echo "installing Mosquitto (apt)…" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  fi
}

ensure_venv() {
  local extras="$1"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Hearth needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # A regular (not editable) install: what runs is what a user gets from `pip install`.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT$extras"
}

# The mock-BlueZ tests (tests/adapters/test_ble_scanner.py) need dbus-daemon, and dbus-python (pulled in
# by python-dbusmock in the test extras) builds against libdbus and GLib headers.
ensure_ble_test_deps() {
  local missing=()
  command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus)
  for pkg in libdbus-1-dev libglib2.0-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} for the BLE tests (apt)…" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The Zigbee2MQTT device-database test (tests/adapters/test_z2m_database.py) needs Node and the
# zigbee-herdsman-converters pinned in tests/z2mdb/package-lock.json; without them it skips (and fails
# with HEARTH_REQUIRE_Z2MDB=1, as in CI). npm ci runs only when the lock is newer than node_modules.
ensure_z2mdb_deps() {
  local dir="$ROOT/tests/z2mdb"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm for the Zigbee2MQTT database test (apt)…" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null \
      || echo "npm ci --prefix tests/z2mdb failed: the Zigbee2MQTT database test will skip" >&2
  fi
}

# The Matter bridge's sidecar (matter/, docs/matter.md): Node.js 20.19+ (matter.js 0.17's engines) and the npm
# packages pinned in matter/package-lock.json. Without them the bridge is off and its tests skip (they fail with
# HEARTH_REQUIRE_MATTER=1, as in CI). npm ci runs only when the lock is newer than node_modules.
ensure_matter_deps() {
  local dir="$ROOT/matter"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm for the Matter bridge (apt)…" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "Node.js $(node --version) is older than 20.19, which matter.js needs: the Matter bridge and its tests" \
         "cannot run (install Node.js 20.19 or later, e.g. from nodejs.org)" >&2
    return 0
  fi
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null \
      || echo "npm ci --prefix matter failed: the Matter bridge cannot run and its tests will skip" >&2
  fi
}

# tests/test_service.py checks the unit of `hearth service install` with systemd-analyze verify (it skips without
# it, and fails with HEARTH_REQUIRE_SYSTEMD=1, as in CI). Only the tool is needed: no systemd has to be running.
ensure_systemd_analyze() {
  if ! command -v systemd-analyze >/dev/null 2>&1 && [ ! -x /usr/bin/systemd-analyze ]; then
    echo "installing systemd (for systemd-analyze, the service unit test) (apt)…" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  fi
}
