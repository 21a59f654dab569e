"""The compiled (numba) kernels: every module that holds one is compiled by the install, from one list."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numba

from rvoskit import _jit

REPO = Path(__file__).resolve().parents[1]


def test_every_kernel_module_is_listed_and_warmed_by_the_install():
    using = set()
    for path in (REPO / "rvoskit").rglob("*.py"):
        if re.search(r"^\s*@(numba\.)?njit\b", path.read_text(), re.M):
            using.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    assert using == set(_jit.KERNEL_MODULES)
    assert re.search(r"^\$PY -m rvoskit\._jit$", (REPO / "scripts" / "install.sh").read_text(), re.M)


def test_every_kernel_is_cached_on_disk_and_warm_compiles_it():
    """cache=True on every kernel (else each run pays the compile), and warm() leaves each one compiled."""
    _jit.warm_all()
    for name in _jit.KERNEL_MODULES:
        mod = importlib.import_module(name)
        kernels = [v for v in vars(mod).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
        assert kernels, name
        for k in kernels:
            assert k._cache.__class__.__name__ != "NullCache", f"{name}.{k.__name__}"
        assert any(k.signatures for k in kernels), name
