# Browser-test dependencies, sourced by scripts/test: Debian's Chromium at /usr/bin/chromium.
# The Playwright package comes with the test extras; its own browser download does not work on
# these machines, so the tests drive this Chromium (executable_path="/usr/bin/chromium").
# shellcheck shell=bash

ensure_browser_test_deps() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  echo "installing Chromium for the browser tests (apt)…" >&2
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # No recommends: they pull in printing, avahi and desktop services a headless browser has no use
  # for. The fonts are there so pages (and screenshots) render text.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core fonts-liberation >/dev/null
}
