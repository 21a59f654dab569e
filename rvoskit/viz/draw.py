"""Drawing primitives: the palette, mask overlays, text, contact sheets, GIF/MP4 writers.

Images are ``uint8 (H, W, 3)`` **RGB** arrays everywhere in :mod:`rvoskit.viz`; conversion to
OpenCV's BGR happens only when a file is written. Masks are ``uint8 (H, W)`` 0/1.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file

Colour = tuple[int, int, int]
Box = tuple[int, int, int, int]  # x, y, w, h in pixels

#: Distinct colours, one per object / track (RGB), cycled by rank. The first 20 of Sasha
#: Trubetskoy's "List of 20 Simple, Distinct Colors" (red, green, yellow, blue, orange, purple,
#: cyan, magenta, lime, pink, teal, lavender, brown, beige, maroon, mint, olive, apricot, navy, grey).
PALETTE: tuple[Colour, ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)
#: Prediction vs ground truth: true positive, false positive, false negative pixels, the GT outline,
#: and a prediction without ground truth.
TP: Colour = (60, 180, 75)
FP: Colour = (230, 25, 75)
FN: Colour = (0, 130, 200)
GT_OUTLINE: Colour = (255, 255, 255)
PRED: Colour = (230, 25, 75)
#: Sheet background and text colours.
BACKGROUND: Colour = (24, 24, 24)
TEXT: Colour = (235, 235, 235)
MUTED: Colour = (150, 150, 150)

FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.42
LINE_HEIGHT = 15
#: MeViS-M moment timeline under a sheet row: frames inside the moment, outside it, sampled-frame ticks.
MOMENT: Colour = (255, 225, 25)
TIMELINE_BAR: Colour = (70, 70, 70)
TIMELINE_HEIGHT = 12


def colour_of(rank: int) -> Colour:
    """The palette colour of the ``rank``-th object or track (cycles after 20)."""
    return PALETTE[rank % len(PALETTE)]


def ascii_text(text: str) -> str:
    """Fold text to printable ASCII (OpenCV's Hershey fonts draw nothing else): accents are dropped
    (``"café" -> "cafe"``), other characters become ``?``."""
    out = []
    for ch in str(text):
        if 32 <= ord(ch) < 127:
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        else:
            folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
            out.append(folded if folded.isprintable() and folded else ("" if unicodedata.combining(ch) else "?"))
    return "".join(out)


def text_width(text: str, scale: float = FONT_SCALE) -> int:
    """Width in pixels of ``text`` drawn by :func:`put_text`."""
    return cv2.getTextSize(ascii_text(text), FONT, scale, 1)[0][0]


def put_text(img: np.ndarray, text: str, x: int, y: int, *, colour: Colour = TEXT, scale: float = FONT_SCALE) -> None:
    """Draw one line of text in place; ``(x, y)`` is the left end of the baseline."""
    cv2.putText(img, ascii_text(text), (int(x), int(y)), FONT, scale, colour, 1, cv2.LINE_AA)


def wrap(text: str, width: int, *, max_lines: int | None = None, scale: float = FONT_SCALE) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide.

    Words longer than a line are cut; with ``max_lines`` the last kept line ends in ``...``.
    """
    lines: list[str] = []
    for word in ascii_text(text).split():
        while text_width(word, scale) > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and text_width(word[:cut], scale) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        if lines and text_width(lines[-1] + " " + word, scale) <= width:
            lines[-1] = lines[-1] + " " + word
        else:
            lines.append(word)
    if max_lines is not None and len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and text_width(last + "...", scale) > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last + "..."]
    return lines


def sample_frames(num_frames: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``[0, num_frames)``, first and last included.

    ``n <= 0`` or ``n >= num_frames`` gives every frame.
    """
    if n <= 0 or n >= num_frames:
        return list(range(num_frames))
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, n)})


def fit_size(height: int, width: int, target_width: int) -> tuple[int, int]:
    """``(h, w)`` of a ``height x width`` image scaled to ``target_width`` (never upscaled), kept even."""
    w = min(int(target_width), int(width))
    h = max(2, int(round(height * w / width)))
    return h + (h % 2), w + (w % 2)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB frame to ``(h, w)`` (area interpolation when shrinking)."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    interp = cv2.INTER_AREA if w < frame.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 0/1 mask to ``(h, w)`` with nearest-neighbour sampling (stays 0/1)."""
    h, w = size
    if mask.shape[:2] == (h, w):
        return mask
    if mask.flags.f_contiguous and not mask.flags.c_contiguous:
        # pycocotools decodes column-major: resize the transpose (C order) instead of a 4x slower copy
        return cv2.resize(mask.T, (h, w), interpolation=cv2.INTER_NEAREST).T
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def overlay(
    frame: np.ndarray,
    layers: Sequence[tuple[np.ndarray, Colour]],
    *,
    alpha: float = 0.5,
    contours: bool = True,
    outlines: Sequence[tuple[np.ndarray, Colour]] = (),
) -> np.ndarray:
    """Alpha-blend coloured masks onto a frame and outline them.

    Args:
        frame: ``uint8 (H, W, 3)`` RGB.
        layers: ``(mask uint8 (H, W) 0/1, colour)`` pairs, painted in order (later ones on top where
            masks overlap); each covered pixel becomes ``(1 - alpha) * frame + alpha * colour``.
        alpha: fill opacity in ``[0, 1]``; 1 paints the exact palette colour.
        contours: also draw each layer's 1-pixel outline (its boundary pixels) in its colour.
        outlines: extra ``(mask, colour)`` outlines drawn last (e.g. the ground-truth outline).

    Returns:
        A new ``uint8 (H, W, 3)`` RGB image; pixels outside every mask and outline are unchanged.
    """
    out = frame.copy()
    masks = [np.ascontiguousarray(mask != 0, dtype=np.uint8) for mask, _ in layers]
    if layers:
        # a map of the topmost layer of each pixel, then one blend (a loop of boolean assignments
        # over the frame per layer cost ~1 ms each: 64 tracks made every frame slow)
        label = np.zeros(frame.shape[:2], np.uint16)
        for k, m in enumerate(masks, 1):
            cv2.copyTo(np.full_like(label, k), m, label)
        palette = np.array([(0, 0, 0)] + [colour for _, colour in layers], np.float32)
        covered = label > 0
        blended = frame[covered].astype(np.float32) * (1.0 - alpha) + np.take(palette, label[covered], axis=0) * alpha
        out[covered] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    strokes = list(zip(masks, (c for _, c in layers))) if contours else []
    for mask, colour in strokes + list(outlines):
        cs, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        if cs:
            cv2.drawContours(out, cs, -1, colour, 1)
    return out


def tag(tile: np.ndarray, text: str) -> np.ndarray:
    """Write a short label (e.g. ``"J .83"``) on a dark box in the tile's top-left corner, in place."""
    w = text_width(text) + 6
    tile[0 : LINE_HEIGHT + 2, 0 : min(w, tile.shape[1])] = BACKGROUND
    put_text(tile, text, 3, LINE_HEIGHT - 2)
    return tile


def legend_strip(width: int, entries: Sequence[tuple[Colour | None, str]], *, note: str = "") -> np.ndarray:
    """A legend band: a colour swatch and a label per entry, wrapped onto as many lines as needed,
    then an optional note line.

    Returns:
        ``uint8 (h, width, 3)`` RGB, background :data:`BACKGROUND`.
    """
    pad, sw, row_h = 8, 12, 20
    placed: list[tuple[int, int, Colour | None, str]] = []
    x, line = pad, 0
    for colour, label in entries:
        need = (sw + 4 if colour is not None else 0) + text_width(label) + 14
        if x + need > width - pad and x > pad:
            x, line = pad, line + 1
        placed.append((x, line, colour, label))
        x += need
    note_lines = wrap(note, width - 2 * pad) if note else []
    n_lines = (line + 1 if entries else 0) + len(note_lines)
    strip = np.full((max(1, n_lines) * row_h + 6, width, 3), BACKGROUND, np.uint8)
    for x, line, colour, label in placed:
        y = 5 + line * row_h
        if colour is not None:
            cv2.rectangle(strip, (x, y + 2), (x + sw - 1, y + 2 + sw - 1), colour, -1)
            x += sw + 4
        put_text(strip, label, x, y + 13)
    base = (line + 1 if entries else 0) * row_h
    for i, text in enumerate(note_lines):
        put_text(strip, text, pad, 5 + base + i * row_h + 13, colour=MUTED)
    return strip


def caption_strip(width: int, lines: Sequence[str]) -> np.ndarray:
    """A band of text lines (title, expression text), ``uint8 (h, width, 3)`` RGB."""
    strip = np.full((len(lines) * (LINE_HEIGHT + 3) + 8, width, 3), BACKGROUND, np.uint8)
    for i, text in enumerate(lines):
        put_text(strip, text, 8, 4 + (i + 1) * (LINE_HEIGHT + 3) - 4)
    return strip


@dataclass
class SheetRow:
    """One row of a contact sheet: a label cell and one tile per sampled frame."""

    label: list[str]
    tiles: list[np.ndarray]
    swatch: Colour | None = None
    #: ``(moment bool (T,), the sampled frame of each column)``: a timeline of the whole video under
    #: the tiles (MeViS-M moments), or None.
    timeline: tuple[np.ndarray, Sequence[int]] | None = None


@dataclass
class Sheet:
    """A rendered contact sheet and where its parts are.

    Attributes:
        image: ``uint8 (H, W, 3)`` RGB.
        cells: ``{(row, column): (x, y, w, h)}`` of every tile.
        labels: ``{row: (x, y, w, h)}`` of every label cell.
        title: box of the title band; legend: box of the legend band.
    """

    image: np.ndarray
    cells: dict[tuple[int, int], Box] = field(default_factory=dict)
    labels: dict[int, Box] = field(default_factory=dict)
    title: Box = (0, 0, 0, 0)
    legend: Box = (0, 0, 0, 0)


def contact_sheet(
    rows: Sequence[SheetRow],
    column_names: Sequence[str],
    *,
    title: str,
    legend: Sequence[tuple[Colour | None, str]],
    note: str = "",
    label_width: int = 220,
    gap: int = 2,
) -> Sheet:
    """Assemble rows x frames tiles into one sheet: a title band, a header of frame names, a label
    cell left of each row (with an optional colour swatch) and a legend band at the bottom.

    All tiles must share one size. Label lines that do not fit the row height are cut with ``...``.

    Raises:
        ValueError: tiles of different sizes or rows with a different number of tiles.
    """
    ncols = len(column_names)
    shapes = {t.shape for r in rows for t in r.tiles}
    if len(shapes) > 1 or any(len(r.tiles) != ncols for r in rows):
        raise ValueError("contact sheet tiles must share one size and every row needs one tile per column")
    th, tw = next(iter(shapes))[:2] if shapes else (LINE_HEIGHT, 80)
    width = gap + label_width + gap + ncols * (tw + gap)
    title_band = caption_strip(width, wrap(title, width - 16, max_lines=2))
    header_h = LINE_HEIGHT + 4
    legend_band = legend_strip(width, legend, note=note)
    body_y = title_band.shape[0] + header_h
    row_h = [th + (TIMELINE_HEIGHT if r.timeline is not None else 0) for r in rows]
    height = body_y + sum(h + gap for h in row_h) + legend_band.shape[0]
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    img[: title_band.shape[0]] = title_band
    sheet = Sheet(img, title=(0, 0, width, title_band.shape[0]))
    x0 = 2 * gap + label_width
    for c, name in enumerate(column_names):
        name = wrap(name, tw, max_lines=1)[0] if name else ""
        put_text(img, name, x0 + c * (tw + gap) + (tw - text_width(name)) // 2, body_y - 5, colour=MUTED)
    max_lines = max(1, (th - 4) // LINE_HEIGHT)
    y = body_y
    for r, row in enumerate(rows):
        if r:
            y += row_h[r - 1] + gap
        sheet.labels[r] = (gap, y, label_width, th)
        tx = gap + 4
        if row.swatch is not None:
            cv2.rectangle(img, (tx, y + 4), (tx + 9, y + 13), row.swatch, -1)
            tx += 14
        lines: list[tuple[str, Colour]] = []
        for i, part in enumerate(row.label):
            lines.extend((text, TEXT if i == 0 else MUTED) for text in wrap(part, gap + label_width - tx - 2))
        if len(lines) > max_lines:
            last, colour = lines[max_lines - 1]
            lines = lines[: max_lines - 1] + [(wrap(last + " ...", gap + label_width - tx - 2, max_lines=1)[0], colour)]
        for i, (text, colour) in enumerate(lines):
            put_text(img, text, tx, y + 12 + i * LINE_HEIGHT, colour=colour)
        for c, tile in enumerate(row.tiles):
            x = x0 + c * (tw + gap)
            img[y : y + th, x : x + tw] = tile
            sheet.cells[(r, c)] = (x, y, tw, th)
        if row.timeline is not None:
            draw_timeline(img, row.timeline[0], row.timeline[1], x0, y + th + 2, ncols * (tw + gap) - gap, TIMELINE_HEIGHT - 4)
    ly = height - legend_band.shape[0]
    img[ly:] = legend_band
    sheet.legend = (0, ly, width, legend_band.shape[0])
    return sheet


def draw_timeline(img: np.ndarray, moment: np.ndarray, ticks: Sequence[int], x: int, y: int, width: int, height: int) -> None:
    """Draw a video's timeline in ``img`` at ``(x, y)``: frame t spans ``[t / T, (t + 1) / T]`` of
    ``width``; frames inside the moment in :data:`MOMENT`, the rest :data:`TIMELINE_BAR`; a white tick
    at each frame of ``ticks`` (the sheet's columns)."""
    T = len(moment)
    if T == 0 or width <= 0:
        return
    img[y : y + height, x : x + width] = TIMELINE_BAR
    edges = np.round(np.arange(T + 1) * width / T).astype(int)
    for t in np.flatnonzero(moment):
        img[y : y + height, x + edges[t] : x + max(edges[t + 1], edges[t] + 1)] = MOMENT
    for t in ticks:
        cx = x + (edges[t] + edges[t + 1]) // 2
        img[y + height - 3 : y + height, max(cx - 1, x) : cx + 1] = TEXT


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG atomically (temporary name, then rename)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RvosError("could not encode PNG", file=path)
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)


#: Colours every GIF frame keeps exactly (the rest of its 256-colour palette adapts to the frame).
_RESERVED = tuple(dict.fromkeys(PALETTE + (TP, FP, FN, GT_OUTLINE, PRED, BACKGROUND, TEXT, MUTED)))


def _gif_frame(frame: np.ndarray):
    """An RGB frame as a Pillow palette image whose palette holds :data:`_RESERVED` exactly, so that
    legend swatches and opaque masks keep their colours (Pillow's adaptive palette alone can map a
    small swatch to a neighbouring colour)."""
    from PIL import Image

    im = Image.fromarray(frame)
    adaptive = im.quantize(colors=256 - len(_RESERVED), method=Image.Quantize.FASTOCTREE)
    colours = [c for rgb in _RESERVED for c in rgb] + adaptive.getpalette()[: 3 * (256 - len(_RESERVED))]
    pal = Image.new("P", (1, 1))
    pal.putpalette(colours + [0] * (768 - len(colours)))
    return im.quantize(palette=pal, dither=Image.Dither.NONE)


class VideoSink:
    """Collects RGB frames of one size and writes them as a GIF (Pillow) or an MP4 (OpenCV, 'mp4v').

    Use as a context manager: ``with VideoSink(path, fps) as sink: sink.add(frame)``. The file is
    written to a temporary name and renamed when the block completes; on an exception nothing is left.

    Args:
        path: ``*.gif`` or ``*.mp4``.
        fps: frames per second.

    Raises:
        RvosError: another suffix, an MP4 writer OpenCV cannot open, or frames of different sizes.
    """

    def __init__(self, path: str | Path, fps: float = 5.0):
        self.path = Path(path)
        self.fps = float(fps)
        self.kind = self.path.suffix.lower().lstrip(".")
        if self.kind not in ("gif", "mp4"):
            raise RvosError("video output must end in .gif or .mp4", file=self.path)
        self.count = 0
        self._frames: list = []  # GIF: Pillow palette images
        self._writer = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> "VideoSink":
        self._ctx = atomic_file(self.path)
        self._tmp = self._ctx.__enter__()
        return self

    def add(self, frame: np.ndarray) -> None:
        """Append one ``uint8 (H, W, 3)`` RGB frame (H and W even for MP4)."""
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise RvosError(f"frame of size {frame.shape[:2]} after {self._size}", file=self.path)
        if self.kind == "gif":
            self._frames.append(_gif_frame(frame))  # 1 byte per pixel while waiting
        else:
            if self._writer is None:
                # OpenCV picks the container from the file name: write under a .mp4 name in the temp slot
                self._mp4 = self._tmp.with_name(self._tmp.name + ".mp4")
                h, w = self._size
                self._writer = cv2.VideoWriter(str(self._mp4), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self._writer.isOpened():
                    raise RvosError("OpenCV could not open an MP4 ('mp4v') writer", file=self.path)
            self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.count += 1

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if self.count == 0:
                    raise RvosError("no frames to write", file=self.path)
                if self.kind == "gif":
                    ims = self._frames
                    ims[0].save(
                        self._tmp, format="GIF", save_all=True, append_images=ims[1:],
                        duration=int(round(1000 / self.fps)), loop=0, optimize=False, disposal=1,
                    )
                else:
                    self._writer.release()
                    self._mp4.replace(self._tmp)
        except BaseException:
            self._cleanup()
            self._ctx.__exit__(*sys.exc_info())
            raise
        if exc_type is not None:
            self._cleanup()
        return self._ctx.__exit__(exc_type, exc, tb)

    def _cleanup(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._mp4.unlink(missing_ok=True)
        self._frames = []


def stack(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Stack RGB bands of one width vertically."""
    return np.concatenate(list(parts), axis=0)
