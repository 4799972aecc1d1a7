# Shared by scripts/run and scripts/test: a venv with the package, and Mosquitto on the machine.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEARTH_VENV:-$ROOT/.venv}"
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
