"""``rvoskit tracks generate`` against SAM2 1.1.0's public API, run here as the reference.

The reference side builds its own SAM2 with ``sam2.build_sam`` (SAM2's defaults: post-processing on,
``fill_hole_area = 8``; random weights drawn under the same seed as rvoskit's, checked equal) and
drives ``SAM2VideoPredictor`` exactly as a user would: a JPEG folder, ``init_state``,
``add_new_mask``, ``propagate_in_video`` forward and reverse; grid prompts come from
``SAM2AutomaticMaskGenerator`` (as SOLA's ``generate_prompts_grid.py`` drives it) on the frame as
``imageio``/PIL decode it. Both sides: Hiera-t (SAM 2.1 and SAM 2), 256 px, one thread, denormals
flushed, 3 real bedroom frames.

The reference runs SAM2's hole filling as a CUDA build of SAM2 on a GPU runs it: its connected
components come from :func:`rvoskit.tracks.sam2_model.connected_components` (the CUDA kernel's
labels and areas, tested against a port of the kernel below) through
:func:`~rvoskit.tracks.sam2_model.sam2_connected_components`; SAM2 as installed here (no ``sam2._C``)
would skip it with a warning on every frame, and the test makes that warning an error.

torchvision: ``SAM2AutomaticMaskGenerator`` imports it (``ToTensor``/``Resize``/``Normalize`` in
``sam2/utils/transforms.py``, ``batched_nms`` in ``sam2/automatic_mask_generator.py``). When it
does not import (a CPU-only torch with no matching torchvision build, as on the development
machine) the reference is imported with a minimal stand-in of those five names, written from
torchvision's own code (``transforms/functional.py`` ``to_tensor``/``resize``/``normalize``,
``transforms/_functional_tensor.py`` ``resize``, ``ops/boxes.py`` ``batched_nms``, the CPU kernel
``csrc/ops/cpu/nms_kernel.cpp``); it exists only in this module and only while SAM2's modules are
imported. Where torchvision imports, the real one is used.
"""

from __future__ import annotations

import shutil
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rvoskit.format import DatasetWriter
from rvoskit.format import rle as rlemod
from rvoskit.format.trackstore import TrackStore
from rvoskit.tracks import ModelSpec, load_sam2, resolve_config
from rvoskit.tracks.sam2_model import connected_components, sam2_connected_components

DATA = Path(__file__).parent / "data"
FRAMES = DATA / "sam2_bedroom/JPEGImages/bedroom"
T, H, W, SIZE = 3, 540, 960, 256
CONFIGS = ["sam2.1_hiera_t", "sam2_hiera_t"]
HOLE_WARNING = r"(?s).*Skipping the post-processing step"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


# -- the CUDA kernel's connected components -----------------------------------------------------


def test_connected_components_equal_sams_cuda_kernel():
    """Same labels and areas as SAM2's kernel (a serial port of connected_components.cu, under
    tests/reference/ with its licenses) on random masks, rings and holes, including masks whose
    components' first pixels are in odd rows and columns (the kernel labels by 2x2 block)."""
    sys.path.insert(0, str(Path(__file__).parent / "reference/sam2_connected_components"))
    try:
        from cc_kernel import get_connected_componnets as kernel
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    cases = [(rng.random((2, 1, h, w)) < p).astype(np.uint8) for (h, w), p in zip([(8, 8), (16, 12), (64, 64), (10, 30), (32, 32)], [0.3, 0.5, 0.55, 0.7, 0.45])]
    ring = np.zeros((1, 1, 16, 16), np.uint8)
    ring[0, 0, 3:12, 3:12] = 1
    ring[0, 0, 5:10, 5:10] = 0
    ring[0, 0, 7, 7] = 1  # an island inside the ring's hole
    diag = np.eye(12, dtype=np.uint8)[None, None][:, :, :, ::-1].copy()  # 8-connected only
    diag[0, 0, 1, 1] = 1  # a single pixel in an odd row and column
    cases += [ring, 1 - ring, diag, np.zeros((1, 1, 4, 6), np.uint8), np.ones((1, 1, 4, 6), np.uint8)]
    for m in cases:
        want_labels, want_counts = kernel(m)
        labels, counts = connected_components(torch.from_numpy(m.astype(bool)))
        assert labels.dtype == torch.int32 and counts.dtype == torch.int32
        assert np.array_equal(labels.numpy(), want_labels) and np.array_equal(counts.numpy(), want_counts)
    with pytest.raises(RuntimeError, match="even"):
        connected_components(torch.ones(1, 1, 5, 6, dtype=torch.bool))


def test_hole_filling_patch_is_scoped():
    """Inside the block SAM2's fill_holes_in_mask_scores fills holes of <= max_area low-res pixels
    (8-connected background components, ring holes included) with 0.1; outside it SAM2 is as
    installed again (here: no sam2._C, so it warns and leaves the mask as it was)."""
    import sam2.utils.misc as misc
    from sam2.utils.misc import fill_holes_in_mask_scores

    original = misc.get_connected_components
    logits = torch.full((2, 1, 16, 16), 5.0)
    logits[0, 0, 2:4, 2:4] = -3.0  # 4-pixel hole: filled
    logits[0, 0, 6:10, 6:10] = -3.0  # 16-pixel hole: kept
    logits[1, 0, 4:12, 4:12] = -2.0  # a ring ...
    logits[1, 0, 6:10, 6:10] = 4.0
    logits[1, 0, 7:9, 7:9] = -1.0  # ... whose 4-pixel inner hole is filled; the ring (48 px) is kept
    with sam2_connected_components(), sam2_connected_components():  # nesting restores once
        out = fill_holes_in_mask_scores(logits, 8)
        assert misc.get_connected_components is not original
    assert misc.get_connected_components is original
    assert torch.all(out[0, 0, 2:4, 2:4] == 0.1) and torch.all(out[0, 0, 6:10, 6:10] == -3.0)
    assert torch.all(out[1, 0, 7:9, 7:9] == 0.1) and torch.all(out[1, 0, 4:6, 4:12] == -2.0)
    changed = (out != logits).sum().item()
    assert changed == 8
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="Skipping the post-processing"):
            assert torch.equal(fill_holes_in_mask_scores(logits, 8), logits)


# -- the reference: SAM2's public API -----------------------------------------------------------


def _build_reference(config: str):
    """SAM2's video predictor as SAM2 builds it (defaults), random weights under rvoskit's seed."""
    from sam2.build_sam import build_sam2_video_predictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ModelSpec(config).seed)
        pred = build_sam2_video_predictor(resolve_config(config), ckpt_path=None, device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"])
    assert pred.fill_hole_area == 8  # SAM2's default post-processing
    ours = load_sam2(ModelSpec(config, image_size=SIZE)).state_dict()
    theirs = pred.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)  # same weights
    return pred.eval()


def _jpeg_folder(tmp: Path) -> Path:
    """SAM2's init_state reads <int>.jpg files: byte copies of the frames."""
    d = tmp / "jpeg"
    d.mkdir()
    for i in range(T):
        shutil.copyfile(FRAMES / f"{i:05d}.jpg", d / f"{i}.jpg")
    return d


def _public_api_tracks(pred, jpeg_dir: Path, batches: list[tuple[int, list[np.ndarray]]]):
    """Each batch: reset_state, add_new_mask per prompt, propagate forward then reverse.
    Returns ``[(masks (T, H, W) bool, obj_ptr (T, 256))]`` per prompt, in batch order."""
    out = []
    with torch.inference_mode(), sam2_connected_components(), warnings.catch_warnings():
        warnings.filterwarnings("error", message=HOLE_WARNING)  # hole filling must run
        state = pred.init_state(video_path=str(jpeg_dir))
        for frame_idx, masks in batches:
            pred.reset_state(state)
            for i, m in enumerate(masks):
                pred.add_new_mask(state, frame_idx=frame_idx, obj_id=i, mask=m.astype(bool))
            got = np.zeros((len(masks), T, H, W), bool)
            for reverse in (False, True):
                for t, obj_ids, logits in pred.propagate_in_video(state, reverse=reverse):
                    for k, obj_id in enumerate(obj_ids):
                        got[obj_id, t] = (logits[k, 0] > 0.0).numpy()
            for i in range(len(masks)):
                od = state["output_dict_per_obj"][state["obj_id_to_idx"][i]]
                outs = {**od["non_cond_frame_outputs"], **od["cond_frame_outputs"]}
                out.append((got[i], torch.cat([outs[t]["obj_ptr"] for t in range(T)]).numpy()))
    return out


def _generate(dataset: Path, out: Path, config: str, *extra: str) -> TrackStore:
    import typer

    from rvoskit.commands import tracks as tracks_command

    app = typer.Typer()  # `rvoskit tracks` alone: the test does not depend on the other commands
    tracks_command.register(app)
    app.command("version", hidden=True)(lambda: None)  # a second command keeps `tracks` a subcommand
    args = ["tracks", "generate", str(dataset), "--out", str(out), "--sam2-config", config, "--image-size", str(SIZE), "--device", "cpu", "--threads", "1", *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return TrackStore(out)


def _assert_same_tracks(store: TrackStore, ref) -> None:
    rows = store.tracks("bedroom")
    ptr, ids = store.tokens("bedroom")
    assert list(ids) == list(range(len(ref))) and ptr.shape == (len(ref), T, 256)
    for track_id, (masks, obj_ptr) in enumerate(ref):
        r = rows[rows["track_id"] == track_id].sort_values("frame_idx")
        ours = rlemod.decode_batch(list(r["rle"]), H, W).astype(bool)
        for t in range(T):
            diff = int(np.count_nonzero(ours[t] != masks[t]))
            assert diff == 0, f"track {track_id} frame {t}: {diff} pixels differ from SAM2's public API"
        assert ptr[track_id].dtype == np.float32 and np.array_equal(ptr[track_id], obj_ptr), f"track {track_id}: object pointers differ"


# -- GT prompts: holes and rings ----------------------------------------------------------------


def _disc(cy, cx, r) -> np.ndarray:
    yy, xx = np.ogrid[:H, :W]
    return ((yy - cy) ** 2 + ((xx - cx) * 0.6) ** 2) <= r * r


def _gt_masks() -> dict[int, tuple[int, np.ndarray]]:
    """obj_id -> (prompt frame, mask). At 256 px a low-res pixel is 15 x 8.4 frame pixels, so the
    holes below span about 1 to 16 low-res pixels: SAM2 fills those of <= 8 on the prompt frame."""
    a = np.zeros((H, W), bool)
    a[60:300, 60:420] = True
    for (y, x), (h, w) in zip([(90, 90), (90, 200), (180, 100), (170, 250)], [(10, 20), (17, 30), (25, 45), (34, 60)]):
        a[y : y + h, x : x + w] = False  # small holes
    ring = _disc(330, 650, 150) & ~_disc(330, 650, 60)  # a ring with a large hole (kept)
    small_ring = _disc(120, 780, 70) & ~_disc(120, 780, 9)  # a ring whose hole is small (filled)
    b = np.zeros((H, W), bool)
    b[380:520, 80:380] = True
    b[430:450, 200:230] = False
    return {1: (1, a), 2: (1, ring), 3: (1, small_ring), 4: (2, b)}


@pytest.fixture(scope="module")
def gt_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gt") / "ds"
    names = [f"{i:05d}" for i in range(T)]
    objs = _gt_masks()
    with DatasetWriter(out, dataset="test", split="train", frame_root=FRAMES) as w:
        w.add_video(dict(video_id="bedroom", split="train", num_frames=T, height=H, width=W, frames=names, frame_files=[f"{n}.jpg" for n in names]))
        w.add_objects([dict(video_id="bedroom", obj_id=o, anno_id=None, category=None) for o in objs])
        w.add_expressions([dict(video_id="bedroom", exp_id="0", exp_index=0, text="things", obj_ids=list(objs))])
        rows = []
        for obj_id, (t, m) in objs.items():
            c = rlemod.encode(m.astype(np.uint8))
            a, b = rlemod.area_bbox([c], H, W)
            rows.append(dict(video_id="bedroom", obj_id=obj_id, frame_idx=t, height=H, width=W, rle=c, area=int(a[0]), bbox=b[0].tolist()))
        w.add_masks("bedroom", rows)
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_gt_tracks_identical_to_sam2_public_api(config, gt_dataset, tmp_path):
    store = _generate(gt_dataset, tmp_path / "tracks", config, "--prompts", "gt")
    objs = _gt_masks()
    rows = store.tracks("bedroom")
    # tracks in rvoskit's order: prompt frame 1 (objects 1, 2, 3, one batch), then frame 2 (object 4)
    assert list(rows.groupby("track_id")["obj_id"].first()) == [1, 2, 3, 4]
    batches = [(1, [objs[o][1] for o in (1, 2, 3)]), (2, [objs[4][1]])]
    ref = _public_api_tracks(_build_reference(config), _jpeg_folder(tmp_path), batches)
    # SAM2's hole filling ran on the prompt frame: the small holes and the small ring's hole are
    # foreground in its output there, the large ring hole is not
    a, ring, small_ring = ref[0][0][1], ref[1][0][1], ref[2][0][1]
    assert a[90:100, 90:110].all() and a[90:107, 200:230].all()
    assert small_ring[_disc(120, 780, 4)].all()
    assert not ring[_disc(330, 650, 40)].any()
    _assert_same_tracks(store, ref)


# -- grid prompts: SAM2AutomaticMaskGenerator, then the video predictor --------------------------


def _torchvision_standin() -> dict[str, types.ModuleType]:
    """The five torchvision names SAM2's image predictor and AMG import, from torchvision's code."""
    import torch.nn.functional as F

    class ToTensor:  # transforms.functional.to_tensor, numpy uint8 HWC input
        def __call__(self, pic):
            if pic.ndim == 2:
                pic = pic[:, :, None]
            img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
            return img.to(dtype=torch.get_default_dtype()).div(255)

    class Resize(torch.nn.Module):  # transforms.Resize((h, w)) on a float tensor: bilinear, antialias=True
        def __init__(self, size):
            super().__init__()
            self.size = [int(size[0]), int(size[1])]

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            if [img.shape[-2], img.shape[-1]] == self.size:
                return img
            x = img.unsqueeze(0) if img.dim() < 4 else img
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
            return x.squeeze(0) if img.dim() < 4 else x

    class Normalize(torch.nn.Module):  # transforms.functional.normalize, not in place
        def __init__(self, mean, std):
            super().__init__()
            self.mean = [float(v) for v in mean]
            self.std = [float(v) for v in std]

        def forward(self, tensor: torch.Tensor) -> torch.Tensor:
            tensor = tensor.clone()
            mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
            std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
            return tensor.sub_(mean).div_(std)

    def nms(boxes, scores, iou_threshold: float):  # csrc/ops/cpu/nms_kernel.cpp
        x1, y1, x2, y2 = boxes.unbind(1)
        areas = (x2 - x1) * (y2 - y1)
        order = scores.sort(stable=True, dim=0, descending=True).indices.tolist()
        suppressed = [False] * len(order)
        keep = []
        for a, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            for j in order[a + 1 :]:
                if suppressed[j]:
                    continue
                w = torch.clamp(torch.minimum(x2[i], x2[j]) - torch.maximum(x1[i], x1[j]), min=0)
                h = torch.clamp(torch.minimum(y2[i], y2[j]) - torch.maximum(y1[i], y1[j]), min=0)
                inter = w * h
                if inter / (areas[i] + areas[j] - inter) > iou_threshold:
                    suppressed[j] = True
        return torch.tensor(keep, dtype=torch.int64)

    def batched_nms(boxes, scores, idxs, iou_threshold: float):  # ops/boxes.py, coordinate trick
        if boxes.numel() == 0:
            return torch.empty((0,), dtype=torch.int64, device=boxes.device)
        offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        return nms(boxes + offsets[:, None], scores, iou_threshold)

    def box_area(boxes):
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

    tv, tr, ops, boxes_mod = (types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.ops", "torchvision.ops.boxes"))
    tr.ToTensor, tr.Resize, tr.Normalize = ToTensor, Resize, Normalize
    boxes_mod.batched_nms, boxes_mod.box_area = batched_nms, box_area
    tv.transforms, tv.ops, ops.boxes = tr, ops, boxes_mod
    return {"torchvision": tv, "torchvision.transforms": tr, "torchvision.ops": ops, "torchvision.ops.boxes": boxes_mod}


def _sam2_amg_class():
    """``SAM2AutomaticMaskGenerator`` with torchvision if it imports, else with the stand-in."""
    try:
        import torchvision  # noqa: F401
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        return SAM2AutomaticMaskGenerator
    except Exception:
        pass
    sam2_mods = ("sam2.automatic_mask_generator", "sam2.sam2_image_predictor", "sam2.utils.transforms")
    standin = _torchvision_standin()
    saved = {k: sys.modules.get(k) for k in [*standin, *sam2_mods]}
    try:
        for k in sam2_mods:
            sys.modules.pop(k, None)
        sys.modules.update(standin)
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        return SAM2AutomaticMaskGenerator
    finally:  # only SAM2's modules imported above keep the stand-in
        for k in [*standin, *sam2_mods]:
            if saved[k] is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = saved[k]


@pytest.fixture(scope="module")
def grid_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grid") / "ds"
    names = [f"{i:05d}" for i in range(T)]
    with DatasetWriter(out, dataset="test", split="valid", frame_root=FRAMES) as w:
        w.add_video(dict(video_id="bedroom", split="valid", num_frames=T, height=H, width=W, frames=names, frame_files=[f"{n}.jpg" for n in names]))
        w.add_masks("bedroom", [])
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_grid_tracks_identical_to_sam2_amg_and_public_api(config, grid_dataset, tmp_path):
    """Grid prompts on frame 0 (2x2 points, 3 masks each; no quality thresholds and box NMS at
    1.0, since random-weight masks are noise that spans the whole frame, so every box is the
    frame's and NMS at 0.7 keeps one mask; part filter and suppression off: SOLA's logic, tested
    in test_tracks.py), the 4 largest tracked (one batch): the AMG's predicted IoUs and stability scores, then
    the tracks (masks and object pointers)."""
    from sam2.build_sam import build_sam2

    store = _generate(grid_dataset, tmp_path / "tracks", config, "--prompts", "grid", "--prompt-frames", "interval", "--prompt-interval", "100",
                      "--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-thresh", "0", "--box-nms-thresh", "1", "--part-thresh", "1",
                      "--suppress-iou", "1", "--max-tracks", "4")  # fmt: skip
    video_pred = _build_reference(config)
    # SOLA: build_sam2(cfg, ckpt) for the generator, the same checkpoint as the video predictor's
    image_model = build_sam2(resolve_config(config), ckpt_path=None, device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"])
    image_model.load_state_dict(video_pred.state_dict())
    amg = _sam2_amg_class()(image_model.eval(), points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    s = SIZE
    amg.predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]  # SAM2 hard-codes 1024 px's
    frame = np.array(Image.open(FRAMES / "00000.jpg").convert("RGB"))  # SOLA: imageio.v2.imread (Pillow)
    with torch.inference_mode(), sam2_connected_components():
        anns = amg.generate(frame)
    anns = sorted(anns, key=lambda a: a["area"], reverse=True)[:4]  # SOLA's order; rvoskit's cap
    assert len(anns) == 4 and len({a["area"] for a in anns}) == 4
    rows = store.tracks("bedroom")
    first = rows[rows["frame_idx"] == 0].sort_values("track_id")
    assert list(first["prompt_frame_idx"]) == [0] * len(anns)
    assert first["predicted_iou"].tolist() == [a["predicted_iou"] for a in anns]
    assert first["stability_score"].tolist() == [a["stability_score"] for a in anns]
    masks = [a["segmentation"] for a in anns]
    batches = [(0, masks[k : k + 4]) for k in range(0, len(masks), 4)]  # SOLA: 4 same-frame prompts per batch
    _assert_same_tracks(store, _public_api_tracks(video_pred, _jpeg_folder(tmp_path), batches))
