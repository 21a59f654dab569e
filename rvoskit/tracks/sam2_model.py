"""SAM2 loading and a per-video session that drives SAM2's video predictor on rvoskit frames.

Nothing here changes SAM2's model: frames are fed through SAM2's own inference-state dict
(``SAM2VideoPredictor.init_state`` builds the same keys from a JPEG folder; we build them from
the dataset's frames so nothing is copied), masks are added with ``add_new_mask`` and frames are
tracked with the same per-object calls as ``propagate_in_video`` (sam2 1.1.0,
``sam2/sam2_video_predictor.py``), without its tqdm bars and with every frame's image features
computed once per video (see :class:`FeatureCache`). SAM2's hole filling runs where SAM2 runs it,
with CPU connected components when its CUDA extension is not there
(:func:`sam2_connected_components`). Prompting (grid and grounded) runs on the image predictor's
features of the prompt frame, as SOLA's ``SAM2AutomaticMaskGenerator`` / ``SAM2ImagePredictor``.
The outputs equal SAM2's public API's (tests/test_tracks_sam2_api.py).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvoskit.errors import RvosError

# SAM2's image normalisation (sam2/utils/misc.py load_video_frames)
_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)

_SIZES = {
    "t": "t", "tiny": "t",
    "s": "s", "small": "s",
    "b+": "b+", "bplus": "b+", "base_plus": "b+", "base-plus": "b+", "baseplus": "b+",
    "l": "l", "large": "l",
}  # fmt: skip
_CONFIG_RE = re.compile(r"^(sam2(?:\.1)?)[_-]hiera[_-]([a-z+_-]+?)(?:\.yaml)?$")


def resolve_config(name: str) -> str:
    """Resolve a SAM2 config name to the bundled hydra config path.

    Accepts ``sam2.1_hiera_t``, ``sam2.1_hiera_tiny``, ``sam2.1-hiera-base-plus``,
    ``sam2_hiera_l.yaml``, ``configs/sam2.1/sam2.1_hiera_l.yaml`` and the like (SAM 2 and SAM 2.1;
    sizes t/s/b+/l, also spelled tiny/small/base_plus/large).

    Returns:
        The config path inside the ``sam2`` package, e.g. ``"configs/sam2.1/sam2.1_hiera_t.yaml"``.

    Raises:
        RvosError: not one of the eight bundled configs.
    """
    import sam2

    stem = Path(str(name).strip()).name.lower()
    m = _CONFIG_RE.match(stem)
    size = _SIZES.get(m.group(2)) if m else None
    if not m or size is None:
        raise RvosError(
            f"unknown SAM2 config {name!r}; use one of sam2_hiera_{{t,s,b+,l}} or sam2.1_hiera_{{t,s,b+,l}}",
            item="--config",
        )
    version = m.group(1)
    rel = f"configs/{version}/{version}_hiera_{size}.yaml"
    if not (Path(sam2.__file__).parent / rel).is_file():  # pragma: no cover - broken sam2 install
        raise RvosError(f"bundled config {rel} is missing from the installed sam2 package", item="--config")
    return rel


def config_image_size(name: str) -> int:
    """The ``model.image_size`` of a bundled config (1024 for all eight)."""
    import sam2  # noqa: F401  (initialises hydra's config module)
    from hydra import compose

    return int(compose(config_name=resolve_config(name)).model.image_size)


@dataclass(frozen=True)
class ModelSpec:
    """Which SAM2 to build and where.

    Attributes:
        config: a config name accepted by :func:`resolve_config`.
        checkpoint: path of an official SAM2 ``.pt`` checkpoint (a dict with a ``"model"`` key),
            or None for random weights (tests and dry runs only).
        image_size: SAM2 input side in pixels (None = the config's, 1024). Must be a multiple of 32.
        device: ``"cpu"`` or ``"cuda:K"``.
        seed: torch seed used to draw random weights when there is no checkpoint.
    """

    config: str
    checkpoint: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device(gpu: int | None) -> str:
    """``"cuda:<gpu>"`` when CUDA is available and ``gpu`` is not None, else ``"cpu"``."""
    import torch

    if gpu is not None and gpu >= 0 and torch.cuda.is_available():
        if gpu >= torch.cuda.device_count():
            raise RvosError(f"--gpu {gpu}: only {torch.cuda.device_count()} CUDA device(s) visible", item="--gpu")
        return f"cuda:{gpu}"
    return "cpu"


_MODELS: dict[ModelSpec, Any] = {}


def check_model_spec(spec: ModelSpec) -> str:
    """Check a :class:`ModelSpec` without building anything; returns the resolved config path.

    Raises:
        RvosError: unknown config, image size not a multiple of 32 (>= 64), missing checkpoint.
    """
    rel = resolve_config(spec.config)
    if spec.image_size is not None and (spec.image_size < 64 or spec.image_size % 32):
        raise RvosError(f"--image-size {spec.image_size}: must be a multiple of 32, at least 64", item="--image-size")
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_file():
        raise RvosError("SAM2 checkpoint not found", file=spec.checkpoint)
    return rel


def load_sam2(spec: ModelSpec):
    """Build SAM2's video predictor (``sam2.build_sam.build_sam2_video_predictor``), cached per process.

    The predictor is built with SAM2's default post-processing (``apply_postprocessing=True``, as
    SOLA's scripts do), so ``fill_hole_area`` stays 8 and SAM2's own ``fill_holes_in_mask_scores``
    runs where SAM2 runs it (``_run_single_frame_inference``, before a frame's output is stored
    and, on a prompt frame, before its memory is encoded). Its connected components come from
    SAM2's CUDA extension ``sam2._C`` when that is built and the masks are on a GPU, else from
    :func:`connected_components` (OpenCV, same labels and areas): :func:`inference_context` puts it
    in place (:func:`sam2_connected_components`).

    Without a checkpoint the weights are random (drawn under ``torch.manual_seed(spec.seed)``,
    without touching the global RNG) and a warning is emitted: such tracks are meaningless.

    Returns:
        A ``sam2.sam2_video_predictor.SAM2VideoPredictor`` in eval mode on ``spec.device``.

    Raises:
        RvosError: unknown config, bad image size, missing/unreadable checkpoint or one that does
            not match the config.
    """
    if spec in _MODELS:
        return _MODELS[spec]
    import torch

    rel = check_model_spec(spec)
    overrides = [f"++model.image_size={int(spec.image_size)}"] if spec.image_size is not None else []
    ckpt = Path(spec.checkpoint) if spec.checkpoint is not None else None
    if ckpt is None:
        warnings.warn(
            "no SAM2 checkpoint given: using RANDOM WEIGHTS (tests and dry runs only; the tracks are meaningless)",
            UserWarning,
            stacklevel=2,
        )
    from sam2.build_sam import build_sam2_video_predictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        try:
            predictor = build_sam2_video_predictor(
                rel, ckpt_path=None, device="cpu", hydra_overrides_extra=overrides, apply_postprocessing=True
            )
        except Exception as exc:  # hydra / instantiate errors
            raise RvosError(f"could not build SAM2 from {rel}: {exc}", item="--config") from None
    if ckpt is not None:
        try:
            sd = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
            from rvoskit.format.torchfile import torch_file_problem

            raise RvosError(f"{torch_file_problem(ckpt, exc)}; expected a SAM2 checkpoint (.pt with a 'model' key)", file=ckpt) from None
        if not isinstance(sd, dict) or "model" not in sd:
            what = f"a dict with keys {sorted(map(str, sd))[:6]}" if isinstance(sd, dict) else f"a {type(sd).__name__}"
            raise RvosError(f"not a SAM2 checkpoint (holds {what}); expected a .pt with a 'model' key", file=ckpt)
        missing, unexpected = predictor.load_state_dict(sd["model"], strict=False)
        if missing or unexpected:
            raise RvosError(
                f"checkpoint does not match config {rel}: {len(missing)} missing, {len(unexpected)} unexpected keys "
                f"(e.g. {(list(missing) + list(unexpected))[:3]})",
                file=ckpt,
            )
    predictor = predictor.to(spec.device).eval()
    _MODELS[spec] = predictor
    return predictor


def connected_components(mask):
    """SAM2's ``get_connected_components`` on the CPU: the same labels and areas as its CUDA kernel.

    ``sam2/csrc/connected_components.cu`` (``get_connected_componnets``, block-based union-find on
    2x2 pixel blocks, 8-connectivity) returns, per image, ``labels``: 0 on background pixels and on
    every pixel of a component ``1 + min(row0 * W + col0)`` over the 2x2 blocks (top-left pixel
    ``(row0, col0)``, both even) that hold pixels of the component (union-find roots are the smallest
    block index, and ``final_labeling`` adds 1); ``counts``: 0 on background pixels and the area
    of its component on every foreground pixel. Here the components are OpenCV's
    (``cv2.connectedComponentsWithStats``, 8-connectivity), relabelled with the same rule. As the
    kernel, non-zero input is foreground and ``H`` and ``W`` must be even (the kernel asserts it;
    SAM2's low-res masks are ``image_size / 4``, a multiple of 8).

    Args:
        mask: ``(N, 1, H, W)`` tensor (bool or numbers), any device.

    Returns:
        ``(labels, counts)``, int32 ``(N, 1, H, W)`` tensors on the input's device.

    Raises:
        RuntimeError: not ``(N, 1, H, W)``, or an odd ``H`` or ``W`` (the kernel's assertions; SAM2's
            ``fill_holes_in_mask_scores`` then warns and skips filling, as with the kernel).
    """
    import cv2
    import torch

    if mask.ndim != 4 or mask.shape[1] != 1:
        raise RuntimeError("inputs must be [N, 1, H, W] shape")
    n, _, h, w = mask.shape
    if h % 2:
        raise RuntimeError("height must be an even number")
    if w % 2:
        raise RuntimeError("width must be an even number")
    m = mask.detach().to(torch.uint8).cpu().numpy()
    labels = np.zeros((n, 1, h, w), np.int32)
    counts = np.zeros((n, 1, h, w), np.int32)
    rows, cols = np.indices((h, w))
    block = (rows - rows % 2) * w + (cols - cols % 2)  # index of each pixel's 2x2 block
    for i in range(n):
        k, lab, stats, _ = cv2.connectedComponentsWithStats(m[i, 0], connectivity=8, ltype=cv2.CV_32S)
        if k <= 1:
            continue
        fg = lab > 0
        lf = lab[fg]
        root = np.full(k, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(root, lf, block[fg])
        labels[i, 0][fg] = root[lf] + 1
        counts[i, 0][fg] = stats[lf, cv2.CC_STAT_AREA]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(counts).to(mask.device)


_CC_LOCK = threading.Lock()
_CC_STATE: dict[str, Any] = {"depth": 0, "original": None, "has_C": None}


def _has_sam2_cuda_extension() -> bool:
    if _CC_STATE["has_C"] is None:
        try:
            from sam2 import _C  # noqa: F401

            _CC_STATE["has_C"] = True
        except Exception:
            _CC_STATE["has_C"] = False
    return bool(_CC_STATE["has_C"])


def _get_connected_components(mask):
    """What ``sam2.utils.misc.get_connected_components`` is inside :func:`sam2_connected_components`."""
    if mask.is_cuda and _has_sam2_cuda_extension():
        return _CC_STATE["original"](mask)  # SAM2's own CUDA kernel
    return connected_components(mask)


@contextlib.contextmanager
def sam2_connected_components() -> Iterator[None]:
    """Within the block, SAM2's hole filling runs on any device, as a CUDA build of SAM2 runs it.

    SAM2's ``fill_holes_in_mask_scores`` (``sam2/utils/misc.py``, called by
    ``SAM2VideoPredictor._run_single_frame_inference`` when ``fill_hole_area > 0``) takes its
    connected components from ``get_connected_components``, which imports the optional CUDA
    extension ``sam2._C``; without it (any CPU-only install, e.g. ``SAM2_BUILD_CUDA=0``) SAM2
    warns on every frame and skips the filling, and with it the kernel refuses CPU tensors (so a
    CUDA build running on the CPU skips it too). Here ``sam2.utils.misc.get_connected_components``
    is replaced by a function that calls SAM2's kernel for CUDA tensors when ``sam2._C`` is built
    and :func:`connected_components` (same labels and areas) otherwise; the original is put back
    when the last nested block exits. Only this module attribute changes: SAM2's code, the model
    and its ``fill_hole_area`` (8) stay as built.
    """
    import sam2.utils.misc as misc

    with _CC_LOCK:
        if _CC_STATE["depth"] == 0:
            _CC_STATE["original"] = misc.get_connected_components
            misc.get_connected_components = _get_connected_components
        _CC_STATE["depth"] += 1
    try:
        yield
    finally:
        with _CC_LOCK:
            _CC_STATE["depth"] -= 1
            if _CC_STATE["depth"] == 0:
                misc.get_connected_components = _CC_STATE["original"]
                _CC_STATE["original"] = None


@contextlib.contextmanager
def inference_context(device: str) -> Iterator[None]:
    """The numeric context SOLA runs SAM2 in.

    CUDA: ``torch.autocast("cuda", dtype=torch.bfloat16)`` and TF32 matmul/cuDNN on Ampere or newer
    (SOLA ``generate_tokens_grid.py`` l.84-88, which enters them globally). CPU: float32, with
    denormals flushed to zero (random or tiny weights otherwise slow x86 CPUs 10-20x, see
    docs/tracks.md). Always inside ``torch.inference_mode()`` and with SAM2's hole filling enabled
    on every device (:func:`sam2_connected_components`).
    """
    import torch

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        stack.enter_context(sam2_connected_components())
        if device.startswith("cuda"):
            if torch.cuda.get_device_properties(torch.device(device)).major >= 8:
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        else:
            torch.set_flush_denormal(True)
        yield


def precision_name(device: str) -> str:
    """``"bf16-autocast"`` on CUDA, ``"fp32"`` on CPU (recorded in the track store manifest)."""
    return "bf16-autocast" if device.startswith("cuda") else "fp32"


class Timers:
    """Accumulated wall-clock seconds per named stage (synchronising CUDA at each stage's end),
    and the process CPU seconds of the same stages (``cpu_seconds``; steadier than wall time on a
    shared machine, used by the benchmark)."""

    def __init__(self, device: str = "cpu"):
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._cuda = device.startswith("cuda")

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if self._cuda:
                import torch

                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0
            self.cpu_seconds[name] += time.process_time() - c0
            self.calls[name] += 1

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in sorted(self.seconds.items())}


class FrameSource:
    """The frames of one video as SAM2 input tensors, decoded when accessed (streamed, never copied
    or kept: SAM2 reads a frame only to compute its image features, which :class:`FeatureCache`
    keeps, so a frame is decoded again only after its features were evicted).

    ``source[t]`` is a float32 ``(3, S, S)`` tensor on the CPU, made exactly as SAM2's
    ``sam2.utils.misc._load_img_as_tensor`` + ``load_video_frames`` make it: PIL RGB, PIL
    ``resize((S, S))`` (bicubic), ``/ 255``, minus mean, divided by std.

    Args:
        paths: frame files in order.
        image_size: S.
        item: label for errors (the video id).
        timers: where decode time is accumulated (stage ``"frames"``).

    Raises (on access):
        RvosError: missing or unreadable frame, or a frame whose size differs from the first one.
    """

    def __init__(self, paths: list[Path], image_size: int, *, item: str = "", timers: Timers | None = None):
        import torch

        self.paths = list(paths)
        self.image_size = int(image_size)
        self.item = item
        self.timers = timers or Timers()
        self._mean = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]
        self.height, self.width = self._size(0)

    def _size(self, t: int) -> tuple[int, int]:
        from PIL import Image

        try:
            with Image.open(self.paths[t]) as im:
                return im.height, im.width
        except (OSError, ValueError) as exc:
            raise RvosError(f"missing or unreadable frame: {exc}", file=self.paths[t], item=f"{self.item} frame {t}") from None

    def __len__(self) -> int:
        return len(self.paths)

    def image(self, t: int):
        """Frame ``t`` as a PIL RGB image at its native size (for Grounding DINO)."""
        from PIL import Image

        try:
            with Image.open(self.paths[t]) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise RvosError(f"missing or unreadable frame: {exc}", file=self.paths[t], item=f"{self.item} frame {t}") from None
        if (img.height, img.width) != (self.height, self.width):
            raise RvosError(
                f"frame is {img.width}x{img.height}, the video's first frame is {self.width}x{self.height}",
                file=self.paths[t],
                item=f"{self.item} frame {t}",
            )
        return img

    def image_predictor_input(self, t: int):
        """Frame ``t`` as ``SAM2ImagePredictor.set_image`` makes its input: a float32 ``(3, S, S)``
        CPU tensor from ``SAM2Transforms`` (sam2/utils/transforms.py): torchvision ``ToTensor``
        (uint8 HWC → CHW, ``/ 255``), ``Resize((S, S))`` (on a tensor: bilinear with antialiasing,
        ``align_corners=False``; skipped when the frame is already S x S) and ``Normalize``, here
        with the same torch calls and without torchvision. SOLA's grid prompts
        (``SAM2AutomaticMaskGenerator``) and grounded prompts (``SAM2ImagePredictor``) see this
        input; the video predictor sees :meth:`__getitem__`'s (PIL bicubic), so the two give
        different image features.
        """
        import torch
        import torch.nn.functional as F

        with self.timers("frames"):
            arr = np.array(self.image(int(t)))
            x = torch.from_numpy(arr.transpose((2, 0, 1))).contiguous().to(dtype=torch.float32).div(255)
            if (self.height, self.width) != (self.image_size, self.image_size):
                x = F.interpolate(x[None], size=[self.image_size, self.image_size], mode="bilinear", align_corners=False, antialias=True)[0]
            return x.sub_(self._mean).div_(self._std)

    def __getitem__(self, t: int):
        import torch

        with self.timers("frames"):
            x = np.array(self.image(int(t)).resize((self.image_size, self.image_size))) / 255.0  # float64 like SAM2's loader
            x = torch.from_numpy(x).permute(2, 0, 1).float()
            return (x - self._mean) / self._std


class FeatureCache(OrderedDict):
    """SAM2 image features per frame, least-recently-used first out, bounded in bytes.

    SAM2's ``_get_image_feature`` keeps only the most recent frame (``cached_features``), so a video
    tracked in B prompt batches runs the image encoder about 2·B·T times; with this cache in the
    inference state it runs T times per video. Entries are ``(image, backbone_out)`` as SAM2 stores
    them; ``image`` is only a broadcast placeholder (SAM2 returns it but never reads it) and the
    positional encodings, which depend only on the feature-map shape, are shared by all entries.
    """

    def __init__(self, max_bytes: int):
        super().__init__()
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._sizes: dict[int, int] = {}
        self._pos: dict[tuple, list] = {}

    def get(self, key, default=None):  # SAM2 calls .get(frame_idx, (None, None))
        if key in self:
            self.move_to_end(key)
            return OrderedDict.__getitem__(self, key)
        return default

    def put(self, key: int, image, backbone_out: dict) -> None:
        shapes = tuple(tuple(p.shape) for p in backbone_out["vision_pos_enc"])
        backbone_out = dict(backbone_out)
        backbone_out["vision_pos_enc"] = self._pos.setdefault(shapes, list(backbone_out["vision_pos_enc"]))
        size = sum(int(f.numel() * f.element_size()) for f in backbone_out["backbone_fpn"])
        if key in self:
            self.nbytes -= self._sizes.pop(key)
            OrderedDict.__delitem__(self, key)
        OrderedDict.__setitem__(self, key, (image, backbone_out))
        self._sizes[key] = size
        self.nbytes += size
        while self.nbytes > self.max_bytes and len(self) > 1:
            old, _ = self.popitem(last=False)
            self.nbytes -= self._sizes.pop(old)

    def update(self, other=(), **kw):  # SAM2 assigns {frame_idx: (image, backbone_out)} on a miss
        for k, (image, bo) in dict(other, **kw).items():
            self.put(k, image, bo)


class _InferenceState(dict):
    """SAM2's inference-state dict; assigning ``cached_features`` merges into the :class:`FeatureCache`."""

    def __setitem__(self, key, value):
        if key == "cached_features" and isinstance(self.get(key), FeatureCache) and not isinstance(value, FeatureCache):
            dict.__getitem__(self, key).update(value)
        else:
            dict.__setitem__(self, key, value)


@dataclass
class TrackOutput:
    """One SAM2 track: per-frame masks and object pointers.

    Attributes:
        rles: T compressed COCO RLEs (bytes) of the ``(H, W)`` masks, one per frame.
        obj_ptr: ``(T, 256)`` float32 object pointers (``obj_ptr`` of every frame's output).
    """

    rles: list[bytes]
    obj_ptr: np.ndarray


def binarize(logits) -> np.ndarray:
    """``logits > 0`` of ``(N, H, W)`` logits (any device) as a bool ``(N, H, W)`` numpy array whose
    memory is each mask in column-major order (a transposed view of ``(N, W, H)``), the order
    pycocotools' RLE encoder reads: the threshold writes that layout directly, so
    :func:`rvoskit.format.rle.encode_batch` needs no transposing copy. Values equal ``logits > 0``.
    """
    import torch

    n, h, w = logits.shape
    out = torch.empty((n, w, h), dtype=torch.bool, device=logits.device)
    torch.gt(logits, 0.0, out=out.transpose(1, 2))
    return out.cpu().numpy().transpose(0, 2, 1)


class VideoSession:
    """One video in SAM2: cached image features, SAM-style prompting and batched tracking.

    Args:
        predictor: from :func:`load_sam2`.
        frames: the video's :class:`FrameSource`.
        feature_cache_mb: memory budget of the per-video image-feature cache (on the model's device).
        timers: stage timers (``encoder``, ``decoder``, ``tracking``, ``masks``).
    """

    def __init__(self, predictor, frames: FrameSource, *, feature_cache_mb: float = 4096, timers: Timers | None = None):
        import torch

        self.p = predictor
        self.frames = frames
        self.timers = timers or frames.timers
        self.device = predictor.device
        self.num_frames = len(frames)
        self.height, self.width = frames.height, frames.width
        self.cache = FeatureCache(int(feature_cache_mb * 2**20))
        # prompt frames' features from the image predictor's input (a few frames at a time)
        self.prompt_cache = FeatureCache(int(feature_cache_mb * 2**20) // 8)
        S = int(predictor.image_size)
        self._placeholder = torch.zeros((1, 1, 1, 1), device=self.device).expand(1, 3, S, S)
        # the keys of SAM2VideoPredictor.init_state (sam2 1.1.0), with our frames and cache
        st = _InferenceState()
        st.update(
            images=frames,
            num_frames=self.num_frames,
            offload_video_to_cpu=True,
            offload_state_to_cpu=False,
            video_height=self.height,
            video_width=self.width,
            device=self.device,
            storage_device=self.device,
            point_inputs_per_obj={},
            mask_inputs_per_obj={},
            cached_features=self.cache,
            constants={},
            obj_id_to_idx=OrderedDict(),
            obj_idx_to_id=OrderedDict(),
            obj_ids=[],
            output_dict_per_obj={},
            temp_output_dict_per_obj={},
            frames_tracked_per_obj={},
        )
        self.state = st

    # -- image features -------------------------------------------------------------------------
    def features(self, t: int) -> dict:
        """SAM2 ``forward_image`` output of frame ``t``, computed once and cached."""
        hit = self.cache.get(t)
        if hit is not None:
            return hit[1]
        img = self.frames[t].to(self.device).float().unsqueeze(0)
        with self.timers("encoder"):
            bo = self.p.forward_image(img)
        self.cache.put(t, self._placeholder, bo)
        return self.cache.get(t)[1]

    def image_predictor_features(self, t: int) -> dict:
        """SAM2 ``forward_image`` output of frame ``t`` made from the image predictor's input
        (:meth:`FrameSource.image_predictor_input`), as ``SAM2ImagePredictor.set_image`` computes
        it; cached separately from the tracking features (:meth:`features`), which SAM2's video
        predictor computes from its own input."""
        hit = self.prompt_cache.get(t)
        if hit is not None:
            return hit[1]
        img = self.frames.image_predictor_input(t)[None, ...].to(self.device)
        with self.timers("encoder"):
            bo = self.p.forward_image(img)
        self.prompt_cache.put(t, self._placeholder, bo)
        return self.prompt_cache.get(t)[1]

    def image_embeddings(self, t: int):
        """``(image_embed (1, C, S/16, S/16), [high-res feats])`` as ``SAM2ImagePredictor.set_image``
        makes them (image-predictor input, backbone features plus ``no_mem_embed``;
        sam2_image_predictor.py l.102-116), with the feature sizes taken from the features (any
        image size)."""
        bo = self.image_predictor_features(t)
        _, feats, _, sizes = self.p._prepare_backbone_features(bo)
        if self.p.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + self.p.no_mem_embed
        maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes)]
        return maps[-1], maps[:-1]

    def decode(self, t: int, coords, labels, *, multimask: bool):
        """SAM prompt encoder + mask decoder on frame ``t`` for a batch of independent prompts
        (``SAM2ImagePredictor._predict``, l.381-420, without the resize to the frame).

        Args:
            coords: ``(B, P, 2)`` float32 point coordinates in SAM2 input pixels (0..S).
            labels: ``(B, P)`` int32 point labels (1 positive, 2/3 box corners).
            multimask: return SAM's 3 masks per prompt.

        Returns:
            ``(low_res_logits (B, M, S/4, S/4), iou_predictions (B, M))`` in the model's dtype.
        """
        image_embed, high_res = self.image_embeddings(t)
        with self.timers("decoder"):
            sparse, dense = self.p.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            low, iou, _, _ = self.p.sam_mask_decoder(
                image_embeddings=image_embed,
                image_pe=self.p.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=coords.shape[0] > 1,
                high_res_features=high_res,
            )
        return low, iou

    def to_frame(self, low_res):
        """Resize ``(N, M, h, w)`` logits to the frame, bilinear (``SAM2Transforms.postprocess_masks``)."""
        import torch.nn.functional as F

        return F.interpolate(low_res.float(), (self.height, self.width), mode="bilinear", align_corners=False)

    # -- tracking -------------------------------------------------------------------------------
    def track(self, frame_idx: int, masks: list[np.ndarray], on_frame: Callable[[int], None] | None = None) -> list[TrackOutput]:
        """Track a batch of mask prompts from one frame through the whole video.

        Follows SOLA ``generate_tokens_grid.py`` l.196-237 on sam2 1.1.0: ``reset_state``;
        ``add_new_mask`` per prompt; propagation forward from the prompt frame to the last frame,
        then backward to frame 0, each object tracked independently with the same calls as
        ``SAM2VideoPredictor.propagate_in_video`` (hole filling included, inside
        :func:`inference_context`); masks = the stored low-res logits resized to the frame, ``> 0``;
        tokens = ``output_dict_per_obj[i][cond|non_cond]_frame_outputs[t]["obj_ptr"]``.

        Args:
            frame_idx: the prompt frame.
            masks: ``(H, W)`` binary prompt masks (one track each).
            on_frame: called with each frame index as it is tracked.

        Returns:
            One :class:`TrackOutput` per prompt, in order.
        """
        p, st, T = self.p, self.state, self.num_frames
        p.reset_state(st)
        self.features(frame_idx)
        with self.timers("tracking"):
            for i, m in enumerate(masks):
                p.add_new_mask(st, frame_idx=frame_idx, obj_id=i, mask=np.asarray(m, dtype=bool))
        n = len(masks)
        for reverse in (False, True):
            with self.timers("tracking"):
                p.propagate_in_video_preflight(st)
            order = range(frame_idx, -1, -1) if reverse else range(frame_idx, T)
            if reverse and frame_idx == 0:
                order = range(0)  # SAM2 skips reverse tracking from frame 0
            for t in order:
                self.features(t)
                with self.timers("tracking"):
                    for obj_idx in range(n):
                        od = st["output_dict_per_obj"][obj_idx]
                        if t not in od["cond_frame_outputs"]:
                            out, _ = p._run_single_frame_inference(
                                inference_state=st,
                                output_dict=od,
                                frame_idx=t,
                                batch_size=1,
                                is_init_cond_frame=False,
                                point_inputs=None,
                                mask_inputs=None,
                                reverse=reverse,
                                run_mem_encoder=True,
                            )
                            od["non_cond_frame_outputs"][t] = out
                        st["frames_tracked_per_obj"][obj_idx][t] = {"reverse": reverse}
                if on_frame is not None:
                    on_frame(t)
        return [self._collect(obj_idx) for obj_idx in range(n)]

    def _collect(self, obj_idx: int, chunk: int = 16) -> TrackOutput:
        import torch

        from rvoskit.format import rle as rlemod

        od = self.state["output_dict_per_obj"][obj_idx]
        outs = {**od["non_cond_frame_outputs"], **od["cond_frame_outputs"]}
        if len(outs) != self.num_frames:  # pragma: no cover - would be a SAM2 behaviour change
            raise RvosError(f"SAM2 produced {len(outs)} of {self.num_frames} frames for a track", item=self.frames.item)
        with self.timers("masks"):
            ptr = torch.cat([outs[t]["obj_ptr"].float() for t in range(self.num_frames)]).cpu().numpy()
            low = torch.cat([outs[t]["pred_masks"] for t in range(self.num_frames)]).float()
            rles: list[bytes] = []
            for s in range(0, self.num_frames, chunk):
                rles.extend(rlemod.encode_batch(binarize(self.to_frame(low[s : s + chunk])[:, 0])))
        return TrackOutput(rles=rles, obj_ptr=np.ascontiguousarray(ptr, dtype=np.float32))
