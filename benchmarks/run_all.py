"""Run every benchmark and write one markdown table (the README's benchmark table).

    python benchmarks/run_all.py [--out benchmarks/RESULTS.md] [--quick] [--only eval,corrupt] [--skip tracks] [--update]

Each ``bench_*.py`` runs as its own process with ``RVOSKIT_BENCH_JSON`` set; the rows it reports
through ``_ab.report`` (ratio reference / rvoskit: median with min-max over alternating pairs, the
goal and whether it is met) become the table. A benchmark that reports no rows (bench_tracks.py and
the ones of other areas keep their own output) gets one row with the last line of its output; the
full output of every benchmark is kept in ``<out>.log``. ``--quick`` passes smaller sizes (fewer
frames, the same number of pairs) for a shared or slow machine; the table says so. ``--update`` keeps
the rows of the benchmarks not run this time (from ``<out>.json``) and says in the header when each
part was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, default args, --quick args)
BENCHMARKS = {
    "convert": ("bench_convert.py", [], ["--videos", "400", "--small-videos", "12"]),  # quick: ~75 MB mask_dict.json
    "eval": ("bench_eval.py", [], ["--frames", "30"]),  # default: the whole sequences (153 frames)
    "pseudolabel": ("bench_pseudolabel.py", [], ["--tracks", "24", "--frames", "40"]),
    "corrupt": ("bench_corrupt.py", [], ["--frames", "50"]),
    "scaling": ("bench_scaling.py", [], []),
    "tracks": ("bench_tracks.py", [], []),
    "metrics": ("bench_metrics.py", [], ["--frames", "100", "--videos", "3"]),
    "selection": ("bench_selection.py", [], ["--quick"]),
    "other_metrics": ("bench_other_metrics.py", [], ["--samples", "1000"]),
    "moments": ("bench_moments.py", [], []),
}


def _cell(v) -> str:
    return "" if v is None else str(v).replace("|", "\\|")


def table(rows: list[dict]) -> str:
    out = ["| benchmark | case | reference | rvoskit vs reference (median, min-max) | goal | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "ratio" in r:
            val = (f"**{r['ratio']}x** ({r['ratio_min']}-{r['ratio_max']}) wall, {r['cpu_ratio']}x cpu; {r['pairs']} pairs; "
                   f"{r['ref_s']} s vs {r['ours_s']} s" + (f"; rvoskit peak {r['ours_mib']} MiB" if r.get("ours_mib") else ""))
        else:
            val = r.get("value", "")
        met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
        out.append(f"| {_cell(r['benchmark'])} | {_cell(r['case'])} | {_cell(r.get('reference'))} | {_cell(val)} | {_cell(r.get('goal'))} | {met} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--update", action="store_true", help="keep the other benchmarks' rows of <out>.json")
    a = ap.parse_args()
    names = [n for n in BENCHMARKS if (not a.only or n in a.only.split(",")) and n not in a.skip.split(",")]
    rows: list[dict] = []
    log_parts = []
    t_all = time.perf_counter()
    for name in names:
        script, args, quick = BENCHMARKS[name]
        path = HERE / script
        if not path.is_file():
            continue
        fd, jpath = tempfile.mkstemp(prefix=f"rvoskit-bench-{name}-", suffix=".jsonl")
        os.close(fd)
        cmd = [sys.executable, str(path), *(quick if a.quick else args)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env={**os.environ, "RVOSKIT_BENCH_JSON": jpath}, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        text = p.stdout + p.stderr
        print(text, flush=True)
        log_parts.append(f"## {name} ({secs:.0f} s, exit {p.returncode})\n\n$ {' '.join(cmd[1:])}\n\n{text}\n")
        got = [json.loads(line) for line in Path(jpath).read_text().splitlines() if line.strip()]
        os.unlink(jpath)
        if got:
            rows += got
        else:  # its own output: the lines that state a goal or a ratio (no progress bars)
            lines = [ln.strip() for ln in text.splitlines() if any(w in ln for w in ("goal", "ratio", "median")) and "it/s]" not in ln]
            for ln in lines[:6] or [next((x.strip() for x in reversed(text.splitlines()) if x.strip()), "")]:
                rows.append({"benchmark": script[:-3], "case": "(its own output)", "value": ln[:300], "met": None})
        if p.returncode != 0:
            rows.append({"benchmark": script[:-3], "case": "FAILED", "value": f"exit {p.returncode}", "met": False})
        print(f"== {name}: {secs:.0f} s", flush=True)
    head = (f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `python benchmarks/run_all.py{' --quick' if a.quick else ''}` "
            f"on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
            f"({time.perf_counter() - t_all:.0f} s in all). Ratios are reference time / rvoskit time (higher is faster), "
            "alternating runs, median with min-max; CPU ratios count user + sys time of the whole process tree.")
    if a.update and Path(a.out + ".json").is_file():
        ran = {BENCHMARKS[n][0][:-3] for n in names}
        kept = [r for r in json.loads(Path(a.out + ".json").read_text()) if r["benchmark"] not in ran]
        order = [script[:-3] for script, _, _ in BENCHMARKS.values()]
        rows = sorted(kept + rows, key=lambda r: order.index(r["benchmark"]) if r["benchmark"] in order else len(order))
        old_head = Path(a.out).read_text(encoding="utf-8").split("\n| benchmark |")[0].strip() if Path(a.out).is_file() else ""
        head = f"{head} Benchmarks run: {', '.join(names)}.\n\nThe other rows: {old_head}"
        if Path(a.out + ".log").is_file():
            log_parts.insert(0, Path(a.out + ".log").read_text(encoding="utf-8"))
    md = f"{head}\n\n{table(rows)}\n"
    Path(a.out).write_text(md, encoding="utf-8")
    Path(a.out + ".log").write_text("\n".join(log_parts), encoding="utf-8")
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
