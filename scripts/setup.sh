#!/usr/bin/env bash
# Installs what strata needs from Debian's packages, only when something is missing (then it is
# quick). Used by scripts/demo.sh and scripts/test.sh; safe to run on its own.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp      # LibTorch 1.13; OpenBLAS instead of the slow reference BLAS
  libeigen3-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libcli11-dev libstb-dev libbenchmark-dev liblbfgspp-dev
  python3 python3-numpy python3-torch python3-sklearn   # fixtures and reference peers
  nodejs python3-pil                    # LRP: face-api's own tfjs run as reference; demo photos
)

# npm (to fetch npm @vladmandic/face-api): Debian's own package, unless node already brings one.
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
