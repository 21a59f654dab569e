"""What scripts/install.sh promises about the environment it made (CI runs it before the tests)."""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: the `pip check` lines install.sh explains as expected (and nothing else)
EXPECTED = re.compile(r"^(sam2 \S+ requires torchvision|(imagecorruptions-imaug|vos-benchmark) \S+ requires opencv-python)[,:]")


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
        return True
    except md.PackageNotFoundError:
        return False


def test_only_the_headless_opencv():
    assert _installed("opencv-python-headless")
    assert not _installed("opencv-python"), "the GUI build opencv-python is installed: rerun bash scripts/install.sh"
    import cv2

    files = md.files("opencv-python-headless") or []
    assert any(Path(cv2.__file__).name == f.name and "cv2" in str(f) for f in files)


def test_cpu_machine_has_a_cpu_torch():
    """torch.version.cuda is None, read from torch/version.py (importing torch takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None:
        pytest.skip("torch not installed")
    gpu = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    if gpu:
        pytest.skip("a GPU machine may have a CUDA torch")
    version = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    cuda = re.search(r"^cuda(?:: *Optional\[str\])? *= *(.+)$", version, re.M)
    assert cuda is not None
    assert cuda.group(1).strip() == "None", f"torch {md.version('torch')} is a CUDA {cuda.group(1)} build on a machine without a GPU"


def test_pip_check_has_only_the_explained_lines():
    res = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip() and not ln.startswith("No broken")]
    assert [ln for ln in lines if not EXPECTED.match(ln)] == []


def test_install_script_explains_what_it_leaves():
    text = (Path(__file__).resolve().parents[1] / "scripts" / "install.sh").read_text()
    # the probe of the CPU index has a timeout, and the explanation of the expected pip lines is printed
    assert "download.pytorch.org/whl/cpu" in text and "timeout=5" in text
    assert "requires torchvision" in text and "requires opencv-python" in text
