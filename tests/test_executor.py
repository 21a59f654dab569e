"""rvoskit.executor: the three executors give the same results; errors, windows, workers that die
with their parent, and two stages (convert refytvos, corrupt) on a local Ray instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor


def _square(x: int) -> int:
    if x == 7:
        raise RvosError("seven is bad", item=f"unit {x}")
    return x * x


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))
    return x * x


def test_resolve_executor_rules():
    assert resolve_executor(None, 1) == Executor("local", 1)
    assert resolve_executor(None, 3).kind == "process"
    assert resolve_executor("ray", 1, "auto").ray_address == "auto"
    for bad in [("pool", 1, None), ("local", 4, None), ("process", 2, "auto"), ("process", 0, None)]:
        with pytest.raises(RvosError):
            resolve_executor(*bad)


@pytest.mark.parametrize("ex", [Executor(), Executor("process", 2)])
def test_imap_results_order_and_errors(ex):
    kw = {"start_method": "fork"}  # fast pools here; the workers' own test below uses spawn
    units = list(range(7))
    ordered = list(imap(_slow_square, units, ex, ordered=True, **kw))
    assert ordered == [(u, u * u) for u in units]
    assert sorted(imap(_slow_square, units, ex, window=3, **kw)) == ordered
    with pytest.raises(RvosError, match="unit 7: seven is bad"):
        list(imap(_square, range(10), ex, **kw))
    failed = []
    got = list(imap(_square, range(10), ex, on_error=lambda u, e: failed.append((u, str(e))), **kw))
    assert sorted(got) == [(u, u * u) for u in range(10) if u != 7] and failed == [(7, "unit 7: seven is bad")]


def test_process_workers_die_with_their_parent(tmp_path):
    """SIGKILL the process that owns a pool: its workers go too (PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pids = tmp_path / "pids"
    script = textwrap.dedent(
        f"""
        import os, time
        from rvoskit.executor import Executor, imap

        def work(i):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            time.sleep(60)

        if __name__ == "__main__":
            list(imap(work, range(2), Executor("process", 2)))
        """
    )
    (tmp_path / "main.py").write_text(script)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "main.py")], cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
            time.sleep(0.1)
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    assert not alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # pragma: no cover  (no room for a Ray instance here)
            pytest.skip(f"cannot start a local Ray instance: {exc}")
    yield ray
    if started:
        ray.shutdown()


def test_ray_imap_and_errors(ray_local):
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
    ex = Executor("ray")
    assert list(imap(_slow_square, range(6), ex, ordered=True)) == [(u, u * u) for u in range(6)]
    with pytest.raises(RvosError, match="unit 7: seven is bad"):  # the stage's own error, unwrapped
        list(imap(_square, range(9), ex))


def test_convert_and_corrupt_on_ray_match_local(ray_local, tmp_path):
    from rvoskit.corrupt.video import corrupt_dataset
    from rvoskit.datasets.refytvos import convert_refytvos
    from rvoskit.datasets.synthetic import make_refytvos
    from rvoskit.format import open_dataset

    root = make_refytvos(tmp_path / "rytvos", num_videos=3, num_frames=4, height=48, width=64)
    a = convert_refytvos(root, "train", tmp_path / "a", show_progress=False)
    b = convert_refytvos(root, "train", tmp_path / "b", executor="ray", show_progress=False)
    da, db = open_dataset(a), open_dataset(b)
    for name in ("videos", "expressions"):
        pd.testing.assert_frame_equal(getattr(da, name).reset_index(drop=True), getattr(db, name).reset_index(drop=True))
    for vid in da.videos["video_id"]:
        pd.testing.assert_frame_equal(da.masks(vid).reset_index(drop=True), db.masks(vid).reset_index(drop=True))

    opts = dict(corruption="gaussian_noise", severity=3, seed=5)
    ca = corrupt_dataset(a, tmp_path / "ca", **opts)
    cb = corrupt_dataset(a, tmp_path / "cb", executor="ray", **opts)
    files = sorted(p.relative_to(ca) for p in (Path(ca) / "frames").rglob("*.png"))
    assert len(files) == 12 and files == sorted(p.relative_to(cb) for p in (Path(cb) / "frames").rglob("*.png"))
    assert all((Path(ca) / f).read_bytes() == (Path(cb) / f).read_bytes() for f in files)
