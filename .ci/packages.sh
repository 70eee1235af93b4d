#!/usr/bin/env bash
# Debian packages hotline's Makefile needs on a fresh machine (as root): python3 with venv
# (Debian splits venv/ensurepip into python3-venv), debootstrap for the Asterisk sandbox, and
# Prometheus for the scrape test. Installs only what is missing.
set -euo pipefail
missing=()
command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3 python3-venv)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v prometheus >/dev/null || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[packages] installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
