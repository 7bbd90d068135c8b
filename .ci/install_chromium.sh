#!/usr/bin/env bash
# Debian's chromium for tests/trainer/search/test_server.py::test_page_in_headless_chromium (the
# search page rendered headless, screenshot checked). That test is skipped without `chromium` on
# PATH; this makes CI run it. Never fails CI by itself: without root/sudo or apt-get it says why the
# browser test will be skipped and returns 0.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "ci: chromium present ($(command -v chromium))"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ci: no chromium and no apt-get: the headless-browser test of the search page will be SKIPPED"; exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "ci: no chromium, and not root (no password-less sudo) to apt-get it: the headless-browser test of the search page will be SKIPPED"; exit 0
fi
echo "ci: installing Debian's chromium (apt-get) for the search page's browser test"
if "${SUDO[@]}" apt-get update -qq \
   && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null \
   && command -v chromium >/dev/null 2>&1; then
  echo "ci: $(chromium --version 2>/dev/null || echo chromium) installed"
else
  echo "ci: apt-get install chromium failed: the headless-browser test of the search page will be SKIPPED"
fi
exit 0
