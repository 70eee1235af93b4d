#!/usr/bin/env bash
# Debian packages hotline's Makefile needs on a fresh machine (as root): python3 with venv
# (Debian splits venv/ensurepip into python3-venv), debootstrap for the Asterisk sandbox and,
# with --tests, Prometheus (its binaries: the scrape test and promtool for the alert rules) and
# espeak-ng and sox (the voice prompts' build test; the prompts themselves are committed),
# and Chromium, Noto CJK fonts and poppler-utils (the reports: Chromium prints the HTML report
# to PDF and the tests look at the pictures, pdftoppm rasterises the PDF; the pages' tests
# drive the same Chromium through Playwright, which talks to it directly and needs no
# chromedriver; without a CJK font every Chinese character would draw as a box), and
# baresip-core (a real softphone as an agent's phone: testbed/baresip.py runs Debian 12's
# baresip 1.0.0 on the host against the sandbox Asterisk on 127.0.0.1).
# Installs only what is missing, and no recommended packages: Prometheus recommends
# node-exporter, a daemon that would listen on every interface for a demo that needs neither.
set -euo pipefail
missing=()
command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${1:-}" = "--tests" ]; then
  command -v prometheus >/dev/null || missing+=(prometheus)
  # espeak-ng and sox: the prompt tests render a prompt as `make prompts` does
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v pdftoppm >/dev/null || missing+=(poppler-utils)
  [ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
  command -v baresip >/dev/null || missing+=(baresip-core)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[packages] installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
