#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build needs and is missing.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail
packages=(build-essential cmake pkg-config libcriterion-dev libjansson-dev libcjson-dev zlib1g-dev libopenblas-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
