"""vos-benchmark (hkchengrex/vos-benchmark 0.1.0, the fastest public J&F evaluator) as a user runs
it, with one worker process; the reference of bench_eval.py.

    python benchmarks/reference/vos_benchmark_eval.py GT_ROOT PRED_ROOT OUT.json [--all-frames]

GT_ROOT / PRED_ROOT: <sequence>/<frame>.png label maps. Writes {sequence: {obj: [J, F]}} (percent)
to OUT.json for the identity check, and removes the results.csv vos-benchmark writes into PRED_ROOT.
"""

import json
import os
import sys

from vos_benchmark.benchmark import benchmark

gt, pred, out = sys.argv[1:4]
_, _, _, metrics = benchmark([gt], [pred], num_processes=1, verbose=False, skip_first_and_last="--all-frames" not in sys.argv)
os.remove(os.path.join(pred, "results.csv"))
with open(out, "w") as f:
    json.dump({seq: {str(o): [float(j[o]), float(fm[o])] for o in j} for seq, (j, fm) in metrics[0].items()}, f)
