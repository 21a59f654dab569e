"""Shared fixtures: paths to the bundled real data and a converted copy of the example."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
EXAMPLE = REPO / "examples" / "refdavis-judo"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: real fixtures copied from ../shared/fixtures with their PROVENANCE."""
    return DATA


@pytest.fixture(scope="session")
def example_root() -> Path:
    """examples/refdavis-judo: the bundled mini Ref-DAVIS17 (real judo frames and DAVIS-format masks)."""
    return EXAMPLE


@pytest.fixture(scope="session")
def judo_dataset(tmp_path_factory) -> Path:
    """The example converted to the common format (read-only for tests)."""
    from rvoskit.datasets.refdavis import convert_refdavis

    out = tmp_path_factory.mktemp("judo") / "refdavis-val"
    return convert_refdavis(EXAMPLE, "val", out)


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch on one CPU thread with denormals flushed for the module (SAM2 runs comparable across
    machines); the thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_num_threads(threads)
