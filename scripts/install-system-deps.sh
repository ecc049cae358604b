#!/usr/bin/env bash
# System packages the test suite needs that pip and cargo cannot bring: headless Chromium
# renders the monitoring report in its test. Skips what is present; needs root (or sudo)
# only when something is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v cargo >/dev/null || { echo "error: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
$sudo apt-get clean  # the downloaded .deb files are not needed once installed
