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


def test_no_kernel_uses_blas_and_every_kernel_module_prepares_numba():
    """rvoskit commands load numba without its BLAS probe (rvoskit._jit.prepare_numba), which is
    right only while no kernel needs BLAS (np.dot, np.linalg, @) or cffi, and every kernel module
    calls prepare_numba before importing numba."""
    for name in _jit.KERNEL_MODULES:
        src = (REPO / Path(*name.split("."))).with_suffix(".py").read_text()
        assert not re.search(r"np\.dot|np\.linalg|np\.matmul|\w\s@\s\w|np\.vdot|np\.inner|np\.outer|cffi", src), name
        first_numba = re.search(r"^(from numba|import numba)", src, re.M).start()
        assert 0 <= src.find("\nprepare_numba()") < first_numba, name


PROBE = """
import sys
from rvoskit.cli import main
sys.argv = ["rvoskit"] + sys.argv[1:]
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
import numba.np.arraymath as am
import numba.core.typing.cffi_utils as cu
print("SCIPY_LINALG", "scipy.linalg" in sys.modules, "NUMBA_BLAS", am._HAVE_BLAS)
print("PYCPARSER", "pycparser" in sys.modules, "NUMBA_CFFI", cu.SUPPORTED)
import importlib.util, scipy.linalg, numpy as np
print("LINALG_OK", float(scipy.linalg.norm(np.ones(4))), "CFFI_OK", end=" ")
if importlib.util.find_spec("cffi") is None:  # not installed (numba does not need it)
    print("absent")
else:
    import cffi
    print(cffi.FFI().sizeof("int"))
"""


def test_a_command_skips_numbas_blas_probe_and_a_program_keeps_it(tmp_path):
    """`rvoskit convert mevis` (numba kernels) runs without importing scipy.linalg (~0.3 s) or cffi's
    C parser, gives the same tables as the library call in a plain process, and both still import
    after; in a user's program (no rvoskit.cli.main) numba keeps its BLAS and np.dot compiles."""
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from rvoskit.datasets.mevis import convert_mevis
    from rvoskit.datasets.synthetic import make_mevis

    root = make_mevis(tmp_path / "mv", num_videos=2, num_frames=3)
    r = subprocess.run([sys.executable, "-c", PROBE, "convert", "mevis", str(root), "--out", str(tmp_path / "cmd"), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "SCIPY_LINALG False NUMBA_BLAS False" in r.stdout and "PYCPARSER False NUMBA_CFFI False" in r.stdout, r.stdout
    import importlib.util

    cffi_ok = "CFFI_OK absent" if importlib.util.find_spec("cffi") is None else "CFFI_OK 4"
    assert f"LINALG_OK 2.0 {cffi_ok}" in r.stdout, r.stdout
    convert_mevis(root, "train", tmp_path / "lib")
    for t in ("videos", "objects", "expressions", "masks"):
        assert pq.read_table(tmp_path / "cmd" / f"{t}.parquet").equals(pq.read_table(tmp_path / "lib" / f"{t}.parquet"))
    user = ("import numpy as np, numba\nfrom rvoskit.datasets import maskdict_scan as m\nm.warm()\n"
            "f = numba.njit(lambda a: np.dot(a, a))\nprint('DOT', f(np.ones(3)))")
    r = subprocess.run([sys.executable, "-c", user], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "DOT 3.0" in r.stdout, r.stderr
