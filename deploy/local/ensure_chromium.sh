#!/bin/sh
# Debian's Chromium (and a CJK font for the console's Chinese pages) for the browser tests
# (tests/integration/supervision/test_console_browser.py: Playwright drives /usr/bin/chromium;
# no browser is ever downloaded by Playwright). Installs only what is missing; with sudo when
# not root. A machine where it cannot be installed gets a message, and the test says why it
# skips (in CI, where CI is set, it fails instead).
set -u
missing=""
[ -x /usr/bin/chromium ] || missing="chromium"
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null | head -n 1)" ]; then
    missing="$missing fonts-wqy-microhei"
fi
[ -n "$missing" ] || exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "ensure_chromium: need root or sudo to install:$missing (the browser test will skip)" >&2; exit 0; fi
echo "ensure_chromium: apt-get install -y$missing"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >/dev/null || {
    $sudo apt-get update >/dev/null 2>&1 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing >/dev/null
} || echo "ensure_chromium: could not install$missing (the browser test will skip)" >&2
exit 0
