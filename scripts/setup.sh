#!/usr/bin/env bash
# Installs the Debian packages lrnn needs to build and test. Idempotent and quiet when
# everything is already there. Needs root (or sudo) and apt.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config git
  libopenblas-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libsentencepiece-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-dev   # libFuzzer targets
  fortune-mod fortunes-min fortunes   # the demo's training corpus (scripts/demo.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
