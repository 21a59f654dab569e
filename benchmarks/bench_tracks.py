"""Benchmark ``rvoskit tracks generate`` against SAM2's public API (CPU, random weights).

Prints, for SAM2.1 Hiera-t at each ``--sizes`` on ``--frames`` real frames of the bedroom fixture
(960x540):

A. the cost breakdown of one video through :func:`rvoskit.tracks.generate_video` (grid prompts):
   encoder, prompting (SAM decoder + AMG post-processing), propagation, I/O, and the wall time
   over the time inside SAM2's model calls;
B. rvoskit against the reference: the same 8 mask prompts (two frames, batches of 4; rectangles
   with small holes, which SAM2 fills, and a ring) tracked by rvoskit and by SOLA's driver on
   SAM2's public API (JPEG folder, ``init_state``, ``add_new_mask``, ``propagate_in_video``
   forward and backward per batch) with a predictor the reference builds itself with SAM2's
   defaults (``build_sam2_video_predictor``, post-processing on, ``fill_hole_area`` 8; the same
   seeded random weights, checked equal). The reference's hole filling runs with rvoskit's CPU
   connected components (:func:`rvoskit.tracks.sam2_model.sam2_connected_components`), as SAM2's
   CUDA build runs it on a GPU; SAM2 as installed without ``sam2._C`` would skip it. The runs
   alternate reference, rvoskit, reference, rvoskit ... (``--pairs``, at least 3); printed: the
   median rvoskit / reference ratio of CPU time (one torch thread; steadier than wall time on a
   shared machine) and of wall time, with min-max, and the agreement (pixels that differ, largest
   object-pointer difference);
C. feature sharing: 8 prompts of one frame tracked as one batch in one inference state vs each in
   its own inference state (goal >= 2x);
D. frames/s of Hiera-L at 1024 px with bf16 on CUDA, when a GPU is present (else "not measured").

Defaults (``--sizes 256 --frames 8 --pairs 3``): about 95 s of CPU time on one core (4 min 21 s
wall on the shared 2-core development machine, where the process got a fraction of a core);
``--sizes 256 512`` about four times that.

With ``--scale T N S`` it runs only E: a T-frame video (the 16 bedroom frames repeated) with N
ground-truth objects, i.e. N tracks over T frames, through :func:`rvoskit.tracks.generate_tracks` at
S px, printing stage seconds, rvoskit's overhead ratio, the store's size and the peak memory
(MeViS scale: ``--scale 200 64 256``; at 128 px it takes about 12 minutes on one busy core).

    python benchmarks/bench_tracks.py [--frames 8] [--sizes 256] [--pairs 3] [--threads 1] [--scale T N S]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from rvoskit.format import DatasetWriter, open_dataset
from rvoskit.format import rle as rlemod
from rvoskit.tracks import ModelSpec, TrackOptions, generate_video, load_sam2, resolve_config
from rvoskit.tracks.sam2_model import (
    FrameSource,
    Timers,
    VideoSession,
    inference_context,
    sam2_connected_components,
)

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT / "tests/data/sam2_bedroom/JPEGImages/bedroom"
H, W = 540, 960


def make_dataset(tmp: Path, n: int) -> Path:
    names = [f"{i:05d}" for i in range(n)]
    with DatasetWriter(tmp / "ds", dataset="bench", split="valid", frame_root=FRAMES) as w:
        w.add_video(dict(video_id="bedroom", split="valid", num_frames=n, height=H, width=W, frames=names, frame_files=[f"{x}.jpg" for x in names]))
        w.add_masks("bedroom", [])
    return tmp / "ds"


def rect_prompts(n_frames: int) -> list[tuple[int, list[np.ndarray]]]:
    """8 prompt masks: 4 on frame 0, 4 on frame T//2 (two SOLA batches of 4). Rectangles with two
    small holes each (about 2x2 and 3x3 low-res pixels at 256 px: SAM2 fills holes of <= 8), the
    last of each frame a ring whose large hole stays."""
    out = []
    yy, xx = np.ogrid[:H, :W]
    for f, off in ((0, 0), (n_frames // 2, 40)):
        ms = []
        for k in range(4):
            m = np.zeros((H, W), np.uint8)
            y, x = 60 + 110 * k, 100 + 180 * k + off
            if k < 3:
                m[y : y + 100, x : x + 160] = 1
                m[y + 20 : y + 37, x + 20 : x + 50] = 0
                m[y + 60 : y + 85, x + 90 : x + 135] = 0
            else:
                d = ((yy - y - 50) ** 2 + ((xx - x - 80) * 0.6) ** 2) ** 0.5
                m[(d <= 50) & (d > 25)] = 1
            ms.append(m)
        out.append((f, ms))
    return out


def rvoskit_track(predictor, paths, batches, timers=None):
    timers = timers or Timers()
    sess = VideoSession(predictor, FrameSource(paths, predictor.image_size, item="bedroom", timers=timers), timers=timers)
    out = []
    with inference_context("cpu"):
        for f, masks in batches:
            out += sess.track(f, masks)
    return out, timers


def reference_predictor(size: int):
    """SAM2's video predictor as SAM2 builds it (its defaults), with rvoskit's seeded random weights."""
    from sam2.build_sam import build_sam2_video_predictor

    spec = ModelSpec("sam2.1_hiera_t", image_size=size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        pred = build_sam2_video_predictor(resolve_config(spec.config), ckpt_path=None, device="cpu", hydra_overrides_extra=[f"++model.image_size={size}"])
    ours, theirs = load_sam2(spec).state_dict(), pred.state_dict()
    assert pred.fill_hole_area == 8 and all(torch.equal(ours[k], theirs[k]) for k in ours), "weights differ"
    return pred.eval()


def sola_track(predictor, jpeg_dir: Path, batches):
    """SOLA generate_tokens_grid.py l.142-237 on sam2 1.1.0's public API (tokens from output_dict_per_obj)."""
    out = []
    with torch.inference_mode(), sam2_connected_components(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm bars are in the way, not warnings; keep the output readable
        state = predictor.init_state(video_path=str(jpeg_dir))
        T = state["num_frames"]
        for f, masks in batches:
            predictor.reset_state(state)
            mlist = [[None] * T for _ in masks]
            for i, m in enumerate(masks):
                predictor.add_new_mask(state, frame_idx=f, obj_id=i, mask=m.astype(bool))
            for reverse in (False, True):
                for t, _, logits in predictor.propagate_in_video(state, reverse=reverse):
                    for i in range(len(masks)):
                        mlist[i][t] = (logits[i, 0] > 0.0).cpu().numpy()
            for i in range(len(masks)):
                od = state["output_dict_per_obj"][i]
                outs = {**od["non_cond_frame_outputs"], **od["cond_frame_outputs"]}
                ptr = torch.cat([outs[t]["obj_ptr"] for t in range(T)]).cpu().numpy()
                out.append((np.stack(mlist[i]), ptr))
    return out


def summary(ratios: list[float]) -> str:
    return f"median {np.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"


def scale_run(tmp: Path, T: int, n: int, size: int) -> None:
    """E. T frames, n GT tracks (4 prompts per prompt frame) at ``size`` px, through generate_tracks."""
    import os
    import resource

    from rvoskit.format.trackstore import TrackStore
    from rvoskit.tracks import generate_tracks

    names = [f"{i:05d}" for i in range(T)]
    rows = []
    for k in range(n):
        m = np.zeros((H, W), np.uint8)
        y, x = 30 + 60 * (k % 8), 20 + 110 * (k // 8 % 8)
        m[y : y + 50, x : x + 100] = 1
        c = rlemod.encode(m)
        rows.append(dict(video_id="long", obj_id=k, frame_idx=(k // 4) * (T // -(-n // 4)), height=H, width=W, rle=c, area=int(m.sum()), bbox=[x, y, 100, 50]))
    with DatasetWriter(tmp / "long", dataset="bench", split="train", frame_root=FRAMES) as w:
        w.add_video(dict(video_id="long", split="train", num_frames=T, height=H, width=W, frames=names, frame_files=[f"{i % 16:05d}.jpg" for i in range(T)]))
        w.add_objects([dict(video_id="long", obj_id=k, anno_id=None, category=None) for k in range(n)])
        w.add_expressions([dict(video_id="long", exp_id="0", exp_index=0, text="all", obj_ids=list(range(n)))])
        w.add_masks("long", rows)
    summary = generate_tracks(tmp / "long", tmp / "long_tracks", model=ModelSpec("sam2.1_hiera_t", image_size=size), options=TrackOptions(prompts=("gt",)), threads=torch.get_num_threads())
    s = summary["stage_seconds"]
    ptr, _ = TrackStore(tmp / "long_tracks").tokens("long")
    files = {p.name: p.stat().st_size for p in (tmp / "long_tracks").rglob("*") if p.is_file()}
    print(f"E. {T} frames x {n} GT tracks at {size} px: {summary['seconds']:.1f} s wall ({summary['seconds_per_frame']:.2f} s/frame); stages "
          + ", ".join(f"{k} {v:.1f}" for k, v in s.items()))  # fmt: skip
    print(f"  overhead ratio wall / SAM2 calls = {summary['seconds'] / (s['encoder'] + s['tracking']):.3f}; tokens {ptr.shape} {ptr.dtype}; "
          f"store {sum(files.values()) / 2**20:.1f} MB; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (pid {os.getpid()})")  # fmt: skip


def timed(fn, *a, **k):
    """``(wall seconds, CPU seconds of this process, result)``: on a shared machine the CPU time
    (one torch thread) is the steadier measure, so the ratios below use it."""
    t0, c0 = time.perf_counter(), time.process_time()
    r = fn(*a, **k)
    return time.perf_counter() - t0, time.process_time() - c0, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--pairs", type=int, default=3, help="alternating reference/rvoskit pairs of part B (>= 3)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale", type=int, nargs=3, metavar=("T", "N", "S"), help="only part E: T frames, N tracks, S px")
    args = ap.parse_args()
    if args.pairs < 3:
        ap.error("--pairs must be at least 3")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", message="no SAM2 checkpoint")
    T = args.frames
    tmp = Path(tempfile.mkdtemp(prefix="bench_tracks_"))
    try:
        if args.scale:
            return scale_run(tmp, *args.scale)
        ds = open_dataset(make_dataset(tmp, T))
        paths = ds.frame_paths("bedroom")
        jpeg_dir = tmp / "jpeg"  # SAM2's init_state wants <int>.jpg files: the reference gets a copy
        jpeg_dir.mkdir()
        for i, p in enumerate(paths):
            shutil.copy(p, jpeg_dir / f"{i}.jpg")
        print(f"SAM2.1 Hiera-t, random weights, CPU, {args.threads} thread(s), denormals flushed; bedroom {T} frames {W}x{H}\n")
        for S in args.sizes:
            pred = load_sam2(ModelSpec("sam2.1_hiera_t", image_size=S))
            # warm up (first calls allocate)
            rvoskit_track(pred, paths[:2], [(0, rect_prompts(2)[0][1][:1])])

            # A. cost breakdown of one video through generate_video
            opts = TrackOptions(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_tracks=4)
            timers = Timers()
            wall, cpu, res = timed(generate_video, ds, "bedroom", pred, opts, frame_mode="eval", timers=timers)
            s = timers.seconds
            sam2 = s["encoder"] + s["decoder"] + s["tracking"]
            io = s["frames"] + s["masks"] + s["write"]
            print(f"[{S} px] A. one video, grid prompts (4x4 points, eval frames), {len(res.track_ids)} tracks, {res.info['encoder_calls']} encoder calls")
            print(f"  encoder {s['encoder']:.2f} s | prompting {s['decoder'] + s['prompting']:.2f} s (decoder {s['decoder']:.2f}, AMG post {s['prompting']:.2f})"
                  f" | propagation {s['tracking']:.2f} s | I/O {io:.2f} s (frames {s['frames']:.2f}, masks {s['masks']:.2f}, rows {s['write']:.2f})")  # fmt: skip
            c = timers.cpu_seconds
            sam2_cpu = c["encoder"] + c["decoder"] + c["tracking"]
            print(f"  total {wall:.2f} s wall ({cpu:.2f} s CPU) = {wall / T:.3f} s/frame; SAM2 model calls {sam2:.2f} s wall ({sam2_cpu:.2f} s CPU)")
            print(f"  overhead ratio total / SAM2 model calls (goal <= 1.10): CPU time {cpu / sam2_cpu:.3f}, wall {wall / sam2:.3f}; "
                  f"counting the AMG post-processing, which SAM2's own generator does too, as SAM2 work: CPU {cpu / (sam2_cpu + c['prompting']):.3f}, "
                  f"wall {wall / (sam2 + s['prompting']):.3f}")  # fmt: skip

            # B. same prompts: rvoskit vs SOLA's driver on SAM2's public API, alternating
            batches = rect_prompts(T)
            ref_pred = reference_predictor(S)
            sola_track(ref_pred, jpeg_dir, [(0, batches[0][1][:1])])  # warm up the reference too
            cpu_r, wall_r, calls = [], [], 0
            agree = None
            for _ in range(args.pairs):
                w_s, t_s, ref = timed(sola_track, ref_pred, jpeg_dir, batches)
                w_r, t_r, (ours, tm_r) = timed(rvoskit_track, pred, paths, batches)
                cpu_r.append(t_r / t_s)
                wall_r.append(w_r / w_s)
                calls = tm_r.calls["encoder"]
                if agree is None:
                    diff = max(int(np.count_nonzero(rlemod.decode_batch(o.rles, H, W).astype(bool) != r[0])) for o, r in zip(ours, ref))
                    dptr = max(float(np.abs(o.obj_ptr - r[1]).max()) for o, r in zip(ours, ref))
                    agree = (diff, dptr)
                print(f"  pair: reference {t_s:.2f} s CPU ({w_s:.2f} wall), rvoskit {t_r:.2f} s CPU ({w_r:.2f} wall)")
            print(f"[{S} px] B. 8 prompts (2 frames x batches of 4, holes and rings), rvoskit / SAM2's public API ({args.pairs} pairs, alternating; "
                  f"rvoskit {calls} encoder calls): CPU time {summary(cpu_r)}; wall {summary(wall_r)}")  # fmt: skip
            print(f"  agreement: {agree[0]} pixels differ (largest over tracks and frames), max |object pointer difference| {agree[1]:.2e}")

            # C. feature sharing: one batch of 8 vs 8 inference states
            eight = [(0, rect_prompts(T)[0][1] + rect_prompts(T)[1][1])]
            _, t_b, _ = timed(rvoskit_track, pred, paths, eight)
            t_sep = 0.0
            for m in eight[0][1]:
                _, dt, _ = timed(rvoskit_track, pred, paths, [(0, [m])])
                t_sep += dt
            print(f"[{S} px] C. 8 prompts of frame 0: one batch {t_b:.2f} s CPU, each in its own inference state {t_sep:.2f} s CPU; "
                  f"ratio = {t_sep / t_b:.2f}x (goal >= 2x)\n")  # fmt: skip

        # D. GPU throughput
        if torch.cuda.is_available():
            dev = "cuda:0"
            pred = load_sam2(ModelSpec("sam2_hiera_l", device=dev))
            batches = rect_prompts(T)
            timers = Timers(dev)
            sess = VideoSession(pred, FrameSource(paths, 1024, timers=timers), timers=timers)
            with inference_context(dev):
                sess.track(0, batches[0][1][:1])  # warm up
                t0 = time.perf_counter()
                sess = VideoSession(pred, FrameSource(paths, 1024, timers=timers), timers=timers)
                for f, masks in batches:
                    sess.track(f, masks)
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"D. {torch.cuda.get_device_name(0)}: Hiera-L 1024 px bf16, 8 tracks over {T} frames: {dt:.2f} s = {T / dt:.2f} video frames/s, {8 * T / dt:.1f} track-frames/s")
        else:
            print("D. GPU: not measured (no CUDA device on this machine)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
