"""Side-by-side timing of whole commands: reference and rvoskit alternate (A B A B ...), each run
is a fresh process, and the ratio reference / rvoskit is reported per pair, then as the median with
its min-max. Wall time is what a user waits; CPU time (user + sys of the process and its children)
is printed next to it because this machine is shared and wall time swings with the load.

Every benchmark reports its rows through :func:`report`; with ``RVOSKIT_BENCH_JSON`` set (by
``benchmarks/run_all.py``) the rows are also appended to that file as JSON lines.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mib: float


@dataclass
class Pairs:
    name: str
    ref: list[Run] = field(default_factory=list)
    ours: list[Run] = field(default_factory=list)

    def ratios(self, what: str = "wall") -> list[float]:
        return [getattr(a, what) / max(getattr(b, what), 1e-9) for a, b in zip(self.ref, self.ours)]

    def summary(self, what: str = "wall") -> tuple[float, float, float]:
        r = self.ratios(what)
        return statistics.median(r), min(r), max(r)


def run(cmd: list[str] | str, *, cwd=None, env=None, quiet: bool = True) -> Run:
    """Run one command to completion; wall seconds, CPU seconds (its own and its children's), peak RSS."""
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    # Linux keeps a process's peak RSS across exec, so a child forked from this (large) process
    # would report ours: GNU time, itself small, forks the command and reports its own peak.
    rss_file = None
    if os.path.exists("/usr/bin/time"):
        fd, rss_file = tempfile.mkstemp(prefix="rvoskit-bench-rss-")
        os.close(fd)
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd]
    out = subprocess.DEVNULL if quiet else None
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE if quiet else None)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    peak = ru.ru_maxrss / 1024
    if rss_file:
        try:
            peak = int(open(rss_file).read().split()[-1]) / 1024
        finally:
            os.unlink(rss_file)
    return Run(wall, ru.ru_utime + ru.ru_stime, peak)


def alternate(name: str, ref, ours, pairs: int = 3, *, before=None, verbose: bool = True) -> Pairs:
    """``pairs`` x (reference, rvoskit), alternating; ``ref`` / ``ours``: commands or callables
    returning a :class:`Run`. ``before()`` runs before every run (e.g. to remove an output)."""
    res = Pairs(name)
    for i in range(pairs):
        for which, cmd, dest in (("reference", ref, res.ref), ("rvoskit", ours, res.ours)):
            if before:
                before()
            r = cmd() if callable(cmd) else run(cmd)
            dest.append(r)
            if verbose:
                print(f"    pair {i + 1} {which:>9}: {r.wall:7.2f} s wall  {r.cpu:7.2f} s cpu  {r.peak_mib:6.0f} MiB", flush=True)
    return res


def fmt(p: Pairs) -> str:
    m, lo, hi = p.summary("wall")
    cm, clo, chi = p.summary("cpu")
    rw = statistics.median(r.wall for r in p.ref)
    ow = statistics.median(r.wall for r in p.ours)
    return (f"{p.name}: reference {rw:.2f} s, rvoskit {ow:.2f} s -> ratio {m:.2f}x (min {lo:.2f}, max {hi:.2f}) wall; "
            f"{cm:.2f}x ({clo:.2f}-{chi:.2f}) cpu; {len(p.ref)} pairs")


def report(benchmark: str, case: str, p: Pairs | None = None, *, reference: str = "", goal: str = "", met: bool | None = None,
           value: str | None = None, note: str = "") -> None:
    """Print one result row and append it to ``$RVOSKIT_BENCH_JSON`` (run_all.py's table)."""
    row = {"benchmark": benchmark, "case": case, "reference": reference, "goal": goal, "met": met, "note": note}
    if p is not None:
        m, lo, hi = p.summary("wall")
        cm, clo, chi = p.summary("cpu")
        row.update(ratio=round(m, 2), ratio_min=round(lo, 2), ratio_max=round(hi, 2), cpu_ratio=round(cm, 2),
                   cpu_min=round(clo, 2), cpu_max=round(chi, 2), pairs=len(p.ref),
                   ref_s=round(statistics.median(r.wall for r in p.ref), 3), ours_s=round(statistics.median(r.wall for r in p.ours), 3),
                   ref_mib=round(max(r.peak_mib for r in p.ref)), ours_mib=round(max(r.peak_mib for r in p.ours)))
        print("  " + fmt(p) + (f"  [goal {goal}: {'met' if met else 'NOT met'}]" if goal else ""), flush=True)
    if value is not None:
        row["value"] = value
        print(f"  {case}: {value}" + (f"  [goal {goal}: {'met' if met else 'NOT met'}]" if goal else ""), flush=True)
    path = os.environ.get("RVOSKIT_BENCH_JSON")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


PY = sys.executable


_COMPILED = False


def compile_rvoskit() -> None:
    """Write rvoskit's bytecode (``__pycache__``, git-ignored) once, as ``pip install`` does for an
    installed package: this checkout is an editable install, and with ``PYTHONDONTWRITEBYTECODE``
    set (as on the benchmark machine) every rvoskit run would compile its modules from source
    (~0.1-0.2 s) while the reference packages load their installed bytecode."""
    global _COMPILED
    if not _COMPILED:
        import compileall
        from pathlib import Path

        compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "rvoskit"), quiet=1)
        _COMPILED = True


def rvoskit_cmd(*args: str) -> list[str]:
    """The ``rvoskit`` command as a user runs it (the console script of this Python), its bytecode
    compiled first (:func:`compile_rvoskit`)."""
    compile_rvoskit()
    return [PY, "-m", "rvoskit.cli", *args]
