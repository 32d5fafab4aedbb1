#!/usr/bin/env bash
# Configures and builds strata (Release, Ninja, ccache) into ./build. Incremental when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${STRATA_JOBS:-$(nproc)}"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j "$jobs"
