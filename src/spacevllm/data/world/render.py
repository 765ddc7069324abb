"""A small numpy rasterizer for world scenes: hard-edged shape masks, exact boxes, RGB frames.

Pixel ``(row j, column i)`` covers ``[i, i + 1) x [j, j + 1)`` and belongs to a shape when its centre
``(i + 0.5, j + 0.5)`` lies inside the shape (no anti-aliasing, so a mask *is* the object's extent).
Boxes are pixel ``xyxy`` on pixel edges: ``[x1, y1, x2, y2]`` = first covered column, first covered row, last
covered column + 1, last covered row + 1 (so ``(x2 - x1) * (y2 - y1)`` is the bounding rectangle's pixel count).
"""

from __future__ import annotations

import numpy as np

from spacevllm.data.world.scene import SHAPE_EXTENT, Scene, Track

_SQUARE = 0.8  # half side of a square, in radii
_CROSS_ARM = 0.3  # half width of a cross's arms, in radii
_DIAMOND_WIDTH = 0.6  # half width of a diamond, in radii (half height = 1)


def shape_mask(shape: str, track: Track, size: int) -> np.ndarray:
    """(F, size, size) bool: the pixels whose centres lie inside the shape on each frame of ``track``."""
    return _mask_in(shape, track, (0, size, 0, size))


def _mask_in(shape: str, track: Track, window: tuple[int, int, int, int]) -> np.ndarray:
    """(F, y1 - y0, x1 - x0) bool: :func:`shape_mask` restricted to the pixel window ``(x0, x1, y0, y1)``."""
    x0, x1, y0, y1 = window
    du = np.arange(x0, x1, dtype=np.float64)[None, None, :] + 0.5 - track.cx[:, None, None]
    dv = np.arange(y0, y1, dtype=np.float64)[None, :, None] + 0.5 - track.cy[:, None, None]
    theta = np.deg2rad(track.angle)[:, None, None]
    u = np.cos(theta) * du + np.sin(theta) * dv  # object frame: rotate the offset by -angle
    v = -np.sin(theta) * du + np.cos(theta) * dv
    return _INSIDE[shape](u, v, track.radius[:, None, None])


def _window(shape: str, track: Track, size: int) -> tuple[int, int, int, int]:
    """A pixel window ``(x0, x1, y0, y1)`` inside the frame that holds the shape on every frame of ``track``."""
    reach = SHAPE_EXTENT[shape] * track.radius + 1
    x0, x1 = np.floor(np.min(track.cx - reach)), np.ceil(np.max(track.cx + reach))
    y0, y1 = np.floor(np.min(track.cy - reach)), np.ceil(np.max(track.cy + reach))
    return int(max(x0, 0)), int(min(x1, size)), int(max(y0, 0)), int(min(y1, size))


def _circle(u, v, r):
    return u * u + v * v <= r * r


def _square(u, v, r):
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE * r


def _triangle(u, v, r):
    """Equilateral, circumradius r, pointing up: inside the three edges at distance r / 2 from the centre."""
    inside = np.ones(np.broadcast_shapes(u.shape, r.shape), bool)
    for deg in (90.0, 210.0, 330.0):  # outward edge normals (y down)
        a = np.deg2rad(deg)
        inside &= u * np.cos(a) + v * np.sin(a) <= r / 2
    return inside


def _cross(u, v, r):
    au, av, arm = np.abs(u), np.abs(v), _CROSS_ARM * r
    return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))


def _diamond(u, v, r):
    return np.abs(u) / (_DIAMOND_WIDTH * r) + np.abs(v) / r <= 1


_INSIDE = {"circle": _circle, "square": _square, "triangle": _triangle, "cross": _cross, "diamond": _diamond}


def mask_boxes(mask: np.ndarray) -> list[list[int] | None]:
    """Per frame of a (F, H, W) mask, its pixel-edge xyxy box (module docstring), or None when empty."""
    cols, rows = mask.any(axis=1), mask.any(axis=2)  # (F, W), (F, H)
    out = []
    for c, r in zip(cols, rows):
        if not c.any():
            out.append(None)
            continue
        xs, ys = np.flatnonzero(c), np.flatnonzero(r)
        out.append([int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1])
    return out


def background(scene: Scene) -> np.ndarray:
    """(size, size, 3) float64: the scene's plain colour plus a faint static sinusoidal texture."""
    bg, n = scene.background, scene.size
    t = (np.arange(n) + 0.5) / n
    wave = np.sin(2 * np.pi * bg["freq"][0] * t + bg["phase"][0])[None, :]
    wave = wave * np.sin(2 * np.pi * bg["freq"][1] * t + bg["phase"][1])[:, None]
    return np.asarray(bg["rgb"], np.float64)[None, None, :] + bg["texture"] * wave[:, :, None]


def render_scene(scene: Scene) -> tuple[np.ndarray, dict[int, list[list[int] | None]]]:
    """Frames (F, size, size, 3) uint8 RGB, and for each object id its box per frame (None where the object is
    invisible). Objects never overlap (the layout guarantees it), so each box is the object's full extent."""
    frames = np.broadcast_to(background(scene), (scene.frames, scene.size, scene.size, 3)).copy()
    boxes = {}
    for obj in scene.objects:
        track = obj.track(scene.frames)
        x0, x1, y0, y1 = _window(obj.shape, track, scene.size)
        mask = _mask_in(obj.shape, track, (x0, x1, y0, y1)) & track.visible[:, None, None]
        a = (mask * track.alpha[:, None, None])[..., None]
        crop = frames[:, y0:y1, x0:x1]
        frames[:, y0:y1, x0:x1] = crop * (1 - a) + track.rgb[:, None, None, :] * a
        boxes[obj.id] = [None if b is None else [b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0] for b in mask_boxes(mask)]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), boxes
