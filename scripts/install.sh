#!/usr/bin/env bash
# Install rvoskit and everything it needs into the current Python environment.
#   bash scripts/install.sh          # runtime: rvoskit + SAM2 + torch + transformers + Ray
#   bash scripts/install.sh --dev    # the same plus the test and reference packages
# On a machine without an NVIDIA GPU it installs the CPU build of torch 2.13.0 and builds SAM2
# without its CUDA extension and without torchvision (SAM2's video predictor does not need it;
# torchvision has no CPU build and would pull a multi-GB CUDA torch). With a GPU, pip's default
# (CUDA) torch is used.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip"
extras="all"
[[ "${1:-}" == "--dev" ]] && extras="dev"

if ! $PY -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install "torch>=2.5"
  else
    $PIP install "torch==2.13.0"
  fi
fi
if ! $PY -c "import sam2" 2>/dev/null; then
  # sam2 is source-only on PyPI; no build isolation (it would download CUDA torch to build),
  # no CUDA extension, no dependencies (torchvision); its real runtime deps come from rvoskit[tracks].
  SAM2_BUILD_CUDA=0 $PIP install --no-build-isolation --no-deps "sam2==1.1.0"
fi
$PIP install -e ".[$extras]"
