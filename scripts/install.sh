#!/usr/bin/env bash
# Install rvoskit and everything it needs into the current Python environment.
#   bash scripts/install.sh          # runtime: rvoskit + SAM2 + torch + transformers + Ray
#   bash scripts/install.sh --dev    # the same plus the test and reference packages
#
# torch: on a machine without an NVIDIA GPU, torch 2.13.0 comes from the PyTorch CPU wheel index
# (https://download.pytorch.org/whl/cpu) when that index answers within a few seconds; the public
# PyPI torch is the CUDA build with several GB of nvidia-* and triton wheels. Where the CPU index
# cannot be reached (an offline mirror), pip's own configuration is used. Either way the script
# checks afterwards that a GPU-less machine got a CPU torch (torch.version.cuda is None).
# With a GPU, pip's default (CUDA) torch is used.
#
# SAM2 (source-only on PyPI) is built without build isolation (which would download a CUDA torch
# to build it), without its optional CUDA extension and without its dependencies; its real runtime
# dependencies come from rvoskit[tracks]. torchvision, which SAM2 declares but its video predictor
# never imports, is installed from the same CPU index when that index is reachable (so `pip check`
# is clean); otherwise it is left out and pip reports "sam2 1.1.0 requires torchvision" (see below).
#
# OpenCV: only opencv-python-headless may be installed. imagecorruptions-imaug (frost textures,
# reference of the corruption tests) and vos-benchmark (reference of the J&F tests) declare the GUI
# build opencv-python, which needs libGL and wins the `import cv2`; they are installed with
# --no-deps, and their real dependencies are listed in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip"
extras="all"
[[ "${1:-}" == "--dev" ]] && extras="dev"
TORCH_VERSION=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi

# Does the PyTorch CPU index answer within a few seconds? (probed once)
cpu_index=unknown
cpu_index_ok() {
  if [[ $cpu_index == unknown ]]; then
    if "$PY" - "$CPU_INDEX/torch/" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=5).close()  # headers only: the body is not read
EOF
    then cpu_index=yes; else cpu_index=no; fi
  fi
  [[ $cpu_index == yes ]]
}

torchvision_ok=0
if ! $PY -c "import torch" 2>/dev/null; then
  if [[ $has_gpu == 1 ]]; then
    say "NVIDIA GPU found: installing the CUDA torch from pip's index"
    $PIP install "torch>=2.5" torchvision && torchvision_ok=1 || $PIP install "torch>=2.5"
  elif cpu_index_ok; then
    say "no GPU: installing the CPU build of torch $TORCH_VERSION (and torchvision) from $CPU_INDEX"
    if $PIP install --index-url "$CPU_INDEX" "torch==$TORCH_VERSION" torchvision; then
      torchvision_ok=1
    else
      $PIP install --index-url "$CPU_INDEX" "torch==$TORCH_VERSION"
    fi
  else
    say "no GPU, and $CPU_INDEX cannot be reached: installing torch $TORCH_VERSION with pip's own configuration"
    $PIP install "torch==$TORCH_VERSION"
  fi
fi
$PY -c "import torchvision" 2>/dev/null && torchvision_ok=1 || true
if [[ $torchvision_ok == 0 && $has_gpu == 0 ]]; then
  # a CPU torch from an earlier run without torchvision: add the matching CPU torchvision if the index answers
  torch_version=$($PY -c "import torch; print(torch.__version__)")
  if [[ $torch_version == *+cpu ]] && cpu_index_ok; then
    $PIP install --index-url "$CPU_INDEX" "torch==$torch_version" torchvision && torchvision_ok=1 || true
  fi
fi

if ! $PY -c "import sam2" 2>/dev/null; then
  SAM2_BUILD_CUDA=0 $PIP install --no-build-isolation --no-deps "sam2==1.1.0"
fi

# rvoskit itself; the reference packages that declare opencv-python come without their dependencies
# (their real ones are in pyproject.toml's corrupt / test extras).
no_deps=("imagecorruptions-imaug==1.1.5")
[[ $extras == dev ]] && no_deps+=("vos-benchmark==0.1.0")
explain_expected() {
  say "pip's resolver / 'pip check' lists these on purpose; they are expected and harmless:"
  if [[ $torchvision_ok == 0 ]]; then
    say "  'sam2 1.1.0 requires torchvision': SAM2 declares it, but neither rvoskit nor SAM2's video predictor"
    say "    imports it, and torchvision from pip's index would pull a CUDA torch onto a CPU machine."
  fi
  say "  '${no_deps[*]%%==*} ... requires opencv-python': installed without dependencies so that only"
  say "    opencv-python-headless is installed (it provides the same cv2 without libGL)."
  if [[ $extras != dev ]]; then
    say "  'imagecorruptions-imaug ... requires scikit-image': rvoskit only reads its frost textures;"
    say "    the reference corruption code that needs them comes with --dev."
  fi
}
explain_expected
$PIP install --no-deps "${no_deps[@]}"
$PIP install -e ".[$extras]"
# rvoskit's compiled kernels (numba: convert mevis, pseudolabel native, corrupt's legacy noise and blurs):
# compiled once here into numba's on-disk cache, then loaded by every run (rvoskit/_jit.py)
$PY -m rvoskit._jit

# Only the headless OpenCV: an earlier install (rvoskit 0.1's script) may have pulled the GUI build.
# Both wheels own the same cv2/ folder, so removing one breaks the other: reinstall the headless one.
if $PIP show opencv-python >/dev/null 2>&1; then
  say "removing the GUI build opencv-python (needs libGL, takes over 'import cv2'); keeping opencv-python-headless"
  headless=$($PY -c "import importlib.metadata as m; print(m.version('opencv-python-headless'))")
  $PIP uninstall -y opencv-python
  $PIP install --force-reinstall --no-deps "opencv-python-headless==$headless"
fi

# Check: a GPU-less machine must have a CPU torch.
if [[ $has_gpu == 0 ]]; then
  cuda=$($PY -c "import torch; print(torch.version.cuda or '')")
  if [[ -n $cuda ]]; then
    printf '\n\033[1;37;41m WARNING: CUDA torch on a machine without a GPU \033[0m\n'
    echo "  torch $($PY -c 'import torch; print(torch.__version__)') is a CUDA $cuda build; it and its nvidia-* / triton"
    echo "  wheels (several GB) are of no use here. Replace it with the CPU build:"
    echo "    $PIP uninstall -y torch torchvision triton \$($PIP list --format=freeze | grep -o '^nvidia-[^=]*')"
    echo "    $PIP install --index-url $CPU_INDEX torch==$TORCH_VERSION"
    echo
  fi
fi
# pip check, less the expected lines explained above: anything else is worth a look.
expected="^(sam2 [^ ]+ requires torchvision|(imagecorruptions-imaug|vos-benchmark) [^ ]+ requires opencv-python),|^No broken requirements"
[[ $extras != dev ]] && expected="$expected|^imagecorruptions-imaug [^ ]+ requires scikit-image,"
unexpected=$($PIP check 2>&1 | grep -v -E "$expected" || true)
if [[ -n $unexpected ]]; then
  say "pip check reports problems beyond the expected ones:"
  echo "$unexpected"
else
  say "pip check: nothing beyond the expected lines explained above."
fi
$PY -c "import cv2, torch, rvoskit; print('[install] rvoskit', rvoskit.__version__, '| torch', torch.__version__, '(CUDA:', torch.version.cuda, ') | OpenCV', cv2.__version__)"
