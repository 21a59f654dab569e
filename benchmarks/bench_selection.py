"""Benchmark of the selection model's training: rvoskit's batched loop vs a batch-1 loop like SOLA's.

    python benchmarks/bench_selection.py                 # CPU throughput + peak memory (a few minutes)
    python benchmarks/bench_selection.py --quick         # smaller, for a smoke run
    python benchmarks/bench_selection.py --gpu-epoch     # also time one MeViS-scale epoch on CUDA

Everything uses SOLA's model configuration (width 1024 = RoBERTa-large, 2 layers, 32 negatives:
32.98 M parameters) on synthetic object tokens (``rvoskit.selection.synthetic``). The text encoder is
a *random-weight* RoBERTa-large (24 layers, 1024 wide: the shapes, hence the cost, of
``all-roberta-large-v1``; no weights are downloaded) with the bundled MiniLM's tokenizer.

1. Throughput on the same data, one epoch each, expressions per second:
   * reference: a batch-1 loop like SOLA's ``train.py``: per step it loads the expression's tokens,
     runs the text encoder (with autograd, as SOLA does: its loss back-propagates into RoBERTa, which
     is kept out of the optimizer), forward, BCE + alignment loss, backward, SOLA's per-parameter
     grad-norm bookkeeping, clipping, AdamW step. (SOLA also parses every track's RLE JSON per
     sample; not emulated, so the reference is if anything too fast.)
   * rvoskit batch 1: the loop of ``rvoskit.selection.train`` (token cache, prefetch, ``train_step``)
     with ``train.batch_size=1`` and text features encoded once beforehand (as rvoskit caches them).
   * rvoskit batched: the same with ``train.batch_size=8``, batches grouped by video (shared video
     encoding).
   Wall and CPU time are printed; the ratios are given for both (CPU time is steadier when other
   jobs share the machine). torch runs with ``--threads`` threads (1 by default).
2. Peak memory (peak RSS ``VmHWM`` of a fresh process) of one training step on a MeViS-size expression
   (64 tracks x 200 frames), and of a batch of 8 expressions of one such video.
3. ``--joint``: joint training on two data sets against one data set of the same total size (same
   videos, expressions, tracks and frames; the two sets use different track source names and the
   same video ids), through the whole ``rvoskit.selection.train`` path (loading, token checks, one
   epoch, checkpoint and metrics files), runs alternated one / two / one / two ... (``--pairs``, 3),
   median ratio two / one with min-max, for the epoch (wall) and for the whole call (wall and CPU). Only this part runs
   with ``--joint``.
4. ``--gpu-epoch``: one epoch at MeViS scale (1,662 videos, 23,051 expressions, 67 tracks, 80 frames
   by default) on synthetic in-memory tokens on ``cuda``; SOLA reports ~7 h for 13-15 epochs on one
   RTX 3090.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rvoskit.selection.config import load_config
from rvoskit.selection.data import (
    Batch,
    TokenCache,
    batch_indices,
    labelled_samples,
    make_batch,
    open_stores,
    prefetch,
)
from rvoskit.selection.losses import selection_loss
from rvoskit.selection.model import TrackSelectionModel, count_parameters
from rvoskit.selection.synthetic import make_synthetic
from rvoskit.selection.text import TextFeature, default_encoder_dir
from rvoskit.selection.training import resolve_device, train_step

ROBERTA_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, max_position_embeddings=514)


def random_roberta_large():
    """A random-weight RoBERTa-large (the cost of all-roberta-large-v1) and the bundled MiniLM's tokenizer."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    model = RobertaModel(RobertaConfig(vocab_size=30522, pad_token_id=0, **ROBERTA_LARGE)).eval()
    return model, AutoTokenizer.from_pretrained(default_encoder_dir(), local_files_only=True)


def encode_once(model, tokenizer, texts) -> tuple[float, dict[str, TextFeature]]:
    """What rvoskit caches: each distinct text encoded once (seconds, {text: features})."""
    t0 = time.perf_counter()
    feats = {}
    with torch.no_grad():
        for t in sorted(set(texts)):
            h = model(**tokenizer([t], return_tensors="pt")).last_hidden_state[0].numpy().astype(np.float32)
            feats[t] = TextFeature(h, h.mean(0))
    return time.perf_counter() - t0, feats


def sola_like_epoch(samples, stores, model, roberta, tokenizer, cfg, seed=42) -> tuple[float, float]:
    """One epoch of a batch-1 loop like SOLA's train.py (see the module docstring); (wall, CPU) seconds."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-6)
    order = np.random.default_rng(seed).permutation(len(samples))
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in order:
        s = samples[i]
        parts = []  # SOLA loads every candidate's tokens from disk for every sample
        for source in dict.fromkeys(src for src, _ in s.candidates):
            obj, ids = stores[source].tokens(s.video_id)
            index = {int(t): r for r, t in enumerate(ids)}
            parts.append(obj[[index[t] for src, t in s.candidates if src == source]])
        tokens = torch.from_numpy(np.concatenate(parts)[None].astype(np.float32))
        enc = tokenizer([s.text], padding="longest", return_tensors="pt")
        out = roberta(**enc)  # with autograd, as in SOLA
        mask = enc["attention_mask"].unsqueeze(-1).float()
        sentence = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        words = out.last_hidden_state
        logits, pooled = model(tokens, words)
        labels = torch.from_numpy(s.labels)[None]
        losses = selection_loss(model, logits, pooled, labels, torch.ones_like(labels, dtype=torch.bool), sentence, cfg["loss"])
        opt.zero_grad()
        losses["loss"].backward()
        total = math.sqrt(sum(p.grad.norm(2).item() ** 2 for p in model.parameters() if p.grad is not None))
        if total > 1.0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def rvoskit_epoch(samples, features, stores, cfg, seed=42) -> tuple[float, float]:
    """One epoch of rvoskit's training loop (the code path of ``train()`` without checkpoints and
    metrics files): seeded order, batches grouped by video, token cache, prefetch, ``train_step``."""
    dev = torch.device("cpu")
    torch.manual_seed(seed)
    model = TrackSelectionModel.from_config(cfg["model"], 1024).train()
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["optim"]["lr"]))
    tokens = TokenCache(stores, 64)
    order = batch_indices(samples, cfg["train"]["batch_size"], group_by_video=cfg["train"]["group_by_video"], rng=np.random.default_rng([seed, 1]))
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in prefetch(make_batch([samples[i] for i in ix], features, tokens) for ix in order):
        train_step(model, opt, batch, cfg, dev)
    return time.perf_counter() - t0, time.process_time() - c0


def throughput(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_selection_"))
    print(f"data: {args.videos} videos x {args.expressions} expressions, {args.gt}+{args.grid} tracks (gt+grid), {args.frames} frames")
    world = make_synthetic(tmp / "data", videos=args.videos, tracks={"gt": args.gt, "grid": args.grid}, frames=args.frames, expressions=args.expressions, seed=0)
    from rvoskit.format import open_dataset

    stores = open_stores(world["tracks"])
    samples = labelled_samples(open_dataset(world["dataset"]), stores, world["labels"])
    t0 = time.perf_counter()
    roberta, tok = random_roberta_large()
    print(f"random RoBERTa-large built in {time.perf_counter() - t0:.1f} s ({sum(p.numel() for p in roberta.parameters()) / 1e6:.0f} M parameters)")
    enc_seconds, features = encode_once(roberta, tok, [s.text for s in samples])
    cfg = load_config(None, ["optim.lr=5e-6"])
    torch.manual_seed(0)
    model = TrackSelectionModel.from_config(cfg["model"], 1024)
    n = len(samples)
    print(f"model: {count_parameters(model) / 1e6:.2f} M parameters (SOLA's configuration), torch threads {torch.get_num_threads()}")
    runs = {"reference (batch 1, like SOLA)": sola_like_epoch(samples, stores, model, roberta, tok, cfg)}
    del roberta, model
    for label, extra in (("rvoskit batch 1", ["train.batch_size=1", "train.group_by_video=false"]), ("rvoskit batched (8, by video)", ["train.batch_size=8"])):
        runs[label] = rvoskit_epoch(samples, features, stores, load_config(None, ["optim.lr=5e-6", *extra]))
    print(f"\nthroughput, {n} expressions, one epoch each (CPU; ratios use CPU time, which other jobs on the machine disturb less):")
    for label, (wall, cpu) in runs.items():
        print(f"  {label:32s} wall {wall:7.1f} s ({n / wall:6.2f} expr/s)   CPU {cpu:7.1f} s ({n / cpu:6.2f} expr/s)")
    print(f"  (rvoskit encodes each distinct text once: {enc_seconds:.1f} s for {len(features)} texts, reused every epoch)")
    (ref, ref_c), (b1, b1_c), (bb, bb_c) = runs.values()
    print(f"ratio batched / reference : {ref_c / bb_c:.2f}x CPU, {ref / bb:.2f}x wall")
    print(f"ratio batch-1 / reference : {ref_c / b1_c:.2f}x CPU, {ref / b1:.2f}x wall   (text features cached)")
    print(f"ratio batched / batch-1   : {b1_c / bb_c:.2f}x CPU, {b1 / bb:.2f}x wall   (batching + shared video encoding)")
    return runs


def memory_probe(expressions: int, tracks: int, frames: int) -> dict:
    """Run in a fresh process: RSS before / after one training step of SOLA's model on one video."""
    torch.manual_seed(0)
    cfg = load_config(None, [])
    dev = torch.device("cpu")
    model = TrackSelectionModel.from_config(cfg["model"], 1024)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-6)
    L = 20
    batch = Batch(
        tokens=torch.randn(1, tracks, frames, 256),
        track_mask=torch.ones(1, tracks, dtype=torch.bool),
        frame_mask=torch.ones(1, frames, dtype=torch.bool),
        group=torch.zeros(expressions, dtype=torch.long),
        words=torch.randn(expressions, L, 1024),
        word_mask=torch.ones(expressions, L, dtype=torch.bool),
        sentence=torch.randn(expressions, 1024),
        labels=(torch.rand(expressions, tracks) < 0.05).float(),
        samples=[None] * expressions,
    )
    base = _vm_hwm_mb()
    t0 = time.perf_counter()
    train_step(model.train(), opt, batch, cfg, dev)
    first = time.perf_counter() - t0
    peak = _vm_hwm_mb()
    t0 = time.perf_counter()
    train_step(model, opt, batch, cfg, dev)
    return {"rss_before_mb": base, "peak_mb": max(peak, _vm_hwm_mb()), "step_s": time.perf_counter() - t0, "first_step_s": first}


def _vm_hwm_mb() -> float:
    """Peak resident set size of this process (``VmHWM``; unlike ``ru_maxrss`` it is not inherited
    from the parent across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(args) -> None:
    print(f"\npeak memory, SOLA's model, one training step on {args.mem_tracks} tracks x {args.mem_frames} frames (CPU, fresh process):")
    for b in (1, 8):
        cmd = [sys.executable, __file__, "--threads", str(args.threads), "--_probe", f"{b},{args.mem_tracks},{args.mem_frames}"]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(
            f"  {b} expression{'s' if b > 1 else ' '} of the video: peak RSS {r['peak_mb']:7.0f} MB (process with the model, before the step "
            f"{r['rss_before_mb']:.0f} MB, +{r['peak_mb'] - r['rss_before_mb']:.0f} MB), step {r['step_s']:.2f} s"
        )


def gpu_epoch(args) -> None:
    if not torch.cuda.is_available():
        print("\nMeViS-scale epoch on GPU: not measured (no GPU)")
        return
    dev = resolve_device("cuda")
    cfg = load_config(None, [f"train.batch_size={args.batch_size}"])
    torch.manual_seed(0)
    model = TrackSelectionModel.from_config(cfg["model"], 1024).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-6)
    per_video = args.mevis_expressions / args.mevis_videos
    n_batches = math.ceil(args.mevis_expressions / args.batch_size)
    N, T, L, B = args.mevis_tracks, args.mevis_frames, 20, args.batch_size
    G = max(1, math.ceil(B / per_video))  # videos per batch when grouped by video

    def batch():
        return Batch(
            torch.randn(G, N, T, 256, device=dev), torch.ones(G, N, dtype=torch.bool, device=dev), torch.ones(G, T, dtype=torch.bool, device=dev),
            torch.arange(B, device=dev) % G, torch.randn(B, L, 1024, device=dev), torch.ones(B, L, dtype=torch.bool, device=dev),
            torch.randn(B, 1024, device=dev), (torch.rand(B, N, device=dev) < 0.05).float(), [None] * B,
        )

    for _ in range(3):
        train_step(model, opt, batch(), cfg, dev)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(n_batches):
        train_step(model, opt, batch(), cfg, dev)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    print(
        f"\nMeViS-scale epoch on {torch.cuda.get_device_name(dev)}: {args.mevis_expressions} expressions in {n_batches} batches of {B} "
        f"({N} tracks x {T} frames), {sec / 60:.1f} min ({args.mevis_expressions / sec:.1f} expr/s), peak GPU memory "
        f"{torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB; SOLA: ~7 h for 13-15 epochs on one RTX 3090 (~28-32 min/epoch)"
    )


def joint(args) -> None:
    """Two data sets vs one of the same total size through ``train()`` (module docstring, part 3)."""
    import statistics

    from rvoskit.selection.training import train

    tmp = Path(tempfile.mkdtemp(prefix="bench_joint_"))
    v = args.joint_videos
    kw = dict(frames=args.frames, expressions=args.expressions, seed=0)
    one = make_synthetic(tmp / "one", videos=2 * v, tracks={"gt": args.gt, "grid": args.grid}, **kw)
    a = make_synthetic(tmp / "a", videos=v, tracks={"gt": args.gt, "grid": args.grid}, **kw)
    b = make_synthetic(tmp / "b", videos=v, tracks={"oracle": args.gt, "auto": args.grid}, **{**kw, "seed": 1})
    base = [f"text.cache_dir={tmp / 'text'}", "train.epochs=1", f"train.batch_size={args.batch_size}", *args.joint_set]

    def cfg_for(sets):
        cfg = load_config(None, base)
        cfg["data"]["train"] = {name: {"dataset": w["dataset"], "tracks": w["tracks"], "labels": w["labels"]} for name, w in sets.items()}
        return cfg

    cfgs = {"one": cfg_for({"one": one}), "two": cfg_for({"a": a, "b": b})}
    n = one["expressions"]
    print(f"joint: one set of {2 * v} videos vs two sets of {v} videos; {n} expressions, {args.gt}+{args.grid} tracks, {args.frames} frames; "
          f"model overrides {args.joint_set or 'none (SOLA)'}; torch threads {torch.get_num_threads()}")
    train(cfgs["one"], tmp / "warm", log=lambda m: None)  # text features cached, imports warm
    times: dict[str, list[tuple[float, float, float]]] = {"one": [], "two": []}
    for k in range(args.pairs):
        for label in ("one", "two"):
            t0, c0 = time.perf_counter(), time.process_time()
            res = train(cfgs[label], tmp / f"run_{label}_{k}", log=lambda m: None)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            times[label].append((res["metrics"][0]["train_seconds"], total, cpu))
            print(f"  pair {k + 1} {label}: epoch {times[label][-1][0]:6.2f} s wall, whole call {total:6.2f} s wall, {cpu:6.2f} s CPU")
    for i, what in enumerate(("epoch, wall", "whole call, wall", "whole call, CPU time (steadier on a shared machine)")):
        r = [t2[i] / t1[i] for t1, t2 in zip(times["one"], times["two"])]
        print(f"ratio two sets / one set ({what}): median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}) over {len(r)} pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--expressions", type=int, default=14, help="per video (MeViS train: 23,051 / 1,662 = 13.9)")
    ap.add_argument("--gt", type=int, default=3)
    ap.add_argument("--grid", type=int, default=29)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--mem-tracks", type=int, default=64)
    ap.add_argument("--mem-frames", type=int, default=200)
    ap.add_argument("--gpu-epoch", action="store_true", help="time one MeViS-scale epoch on CUDA")
    ap.add_argument("--joint", action="store_true", help="only part 3: two data sets vs one of the same total size")
    ap.add_argument("--joint-videos", type=int, default=2, help="videos per set in --joint (the single set has twice as many)")
    ap.add_argument("--joint-set", action="append", default=[], metavar="KEY=VALUE", help="config override for --joint (e.g. model.width=128)")
    ap.add_argument("--pairs", type=int, default=3, help="alternated (one, two) pairs in --joint")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--mevis-videos", type=int, default=1662)
    ap.add_argument("--mevis-expressions", type=int, default=23051)
    ap.add_argument("--mevis-tracks", type=int, default=67)
    ap.add_argument("--mevis-frames", type=int, default=80)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings on a shared machine)")
    ap.add_argument("--_probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._probe:
        b, n, t = (int(x) for x in args._probe.split(","))
        print(json.dumps(memory_probe(b, n, t)))
        return
    if args.quick:
        args.videos, args.expressions, args.grid, args.frames, args.mem_tracks, args.mem_frames = 2, 4, 5, 16, 16, 40
    if args.joint:
        joint(args)
        return
    throughput(args)
    memory(args)
    if args.gpu_epoch or torch.cuda.is_available():
        gpu_epoch(args)
    else:
        print("\nMeViS-scale epoch on GPU: not measured (no GPU)")


if __name__ == "__main__":
    main()
