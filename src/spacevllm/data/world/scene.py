"""Scenes of the synthetic world: coloured shapes, their actions and timelines (no pixels here).

Time convention. A scene has ``frames`` source frames at ``fps``; frame ``f`` is shown at ``f / fps`` seconds.
An action has a window of frames ``start..end`` (both inclusive, i.e. half-open ``[start, end + 1)`` in frames,
closed ``[start / fps, end / fps]`` in seconds). The object is *mid-action* exactly inside the window: its
progress is ``p(f) = clip((f - start + 1) / (L + 1), 0, 1)`` with ``L = end - start + 1``, so ``p = 0`` (the
rest state before) for ``f < start``, ``0 < p < 1`` for ``start <= f <= end`` and ``p = 1`` (the rest state
after) for ``f > end``. Every window satisfies ``start >= 1`` and ``end <= frames - 2``, so each clip shows
the state before and the state after the action.

Actions (``Action.kind``): ``none``, ``move`` (a direction and a distance), ``appear`` / ``disappear``
(fade in from / out to nothing: the object is visible, with opacity > 0, on every frame of the window),
``grow`` / ``shrink`` (a scale factor), ``recolor`` (to another colour), ``jump`` (up and back down) and
``spin`` (one symmetry period of the shape, so the look before and after is the same; never for circles).

Positions and radii are pixels; ``(x, y)`` is the rest centre before the action, y pointing down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 50),
    "green": (50, 180, 70),
    "blue": (60, 100, 235),
    "yellow": (235, 215, 50),
    "purple": (165, 70, 210),
    "cyan": (50, 205, 215),
}
SHAPES = ("circle", "square", "triangle", "cross", "diamond")
# Circumradius / radius of each shape's mask (render.py), for the overlap and bounds checks.
SHAPE_EXTENT = {"circle": 1.0, "square": 0.8 * 2**0.5, "triangle": 1.0, "cross": 1.05, "diamond": 1.0}
# Rotation (degrees) after which the shape looks the same again: one spin turns by exactly this much.
SPIN_PERIOD = {"square": 90.0, "triangle": 120.0, "cross": 90.0, "diamond": 180.0}
ACTION_KINDS = ("move", "appear", "disappear", "grow", "shrink", "recolor", "jump", "spin")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class Action:
    """What an object does during frames ``start..end`` (inclusive). ``kind == "none"``: it stays still.

    ``direction``/``distance`` (pixels) for move, ``factor`` for grow/shrink, ``to_colour`` for recolor,
    ``height`` (pixels) for jump.
    """

    kind: str = "none"
    start: int = 0
    end: int = -1
    direction: str | None = None
    distance: float = 0.0
    factor: float = 1.0
    to_colour: str | None = None
    height: float = 0.0

    @property
    def descriptor(self) -> tuple:
        """What a caption says about the action: kind plus its direction or new colour."""
        return (self.kind, self.direction or self.to_colour)

    def progress(self, frames: int) -> np.ndarray:
        """(frames,) float64: 0 before the window, strictly between 0 and 1 inside it, 1 after."""
        if self.kind == "none":
            return np.zeros(frames)
        f = np.arange(frames, dtype=np.float64)
        return np.clip((f - self.start + 1) / (self.end - self.start + 2), 0.0, 1.0)

    def to_json(self) -> dict:
        d = {"kind": self.kind}
        if self.kind != "none":
            d.update(start=self.start, end=self.end)
        for k in ("direction", "to_colour"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        for k, neutral in (("distance", 0.0), ("factor", 1.0), ("height", 0.0)):
            if getattr(self, k) != neutral:
                d[k] = round(float(getattr(self, k)), 4)
        return d


@dataclass(frozen=True)
class Track:
    """Per-frame state of one object, arrays of shape (frames,): centre ``cx, cy`` (pixels), ``radius``
    (pixels), ``angle`` (degrees), ``rgb`` (frames, 3) float, ``alpha`` opacity in [0, 1] (0 = invisible)."""

    cx: np.ndarray
    cy: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        return self.alpha > 0


@dataclass(frozen=True)
class WorldObject:
    """A shape with a colour, a rest centre ``(x, y)`` and radius (pixels), and one action."""

    id: int
    colour: str
    shape: str
    x: float
    y: float
    radius: float
    action: Action = field(default_factory=Action)

    def track(self, frames: int) -> Track:
        """The object's state on every frame (see the module docstring for the progress function)."""
        a, p = self.action, self.action.progress(frames)
        ones = np.ones(frames)
        dx, dy = DIRECTIONS.get(a.direction, (0.0, 0.0)) if a.kind == "move" else (0.0, 0.0)
        cx, cy = self.x + dx * a.distance * p, self.y + dy * a.distance * p
        if a.kind == "jump":
            cy = cy - a.height * np.sin(np.pi * p)
        radius = self.radius * (1 + (a.factor - 1) * p) if a.kind in ("grow", "shrink") else self.radius * ones
        angle = SPIN_PERIOD.get(self.shape, 0.0) * p if a.kind == "spin" else 0 * ones
        c0 = np.asarray(COLOURS[self.colour], np.float64)
        c1 = np.asarray(COLOURS[a.to_colour], np.float64) if a.kind == "recolor" else c0
        rgb = c0[None] * (1 - p[:, None]) + c1[None] * p[:, None]
        alpha = {"appear": p, "disappear": 1 - p}.get(a.kind, ones)
        return Track(cx, cy, radius, angle, rgb, alpha)

    def static_attrs(self) -> dict[str, str]:
        """Attributes a still frame before any action shows: the initial colour and the shape."""
        return {"colour": self.colour, "shape": self.shape}

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "colour": self.colour,
            "shape": self.shape,
            "x": round(float(self.x), 3),
            "y": round(float(self.y), 3),
            "radius": round(float(self.radius), 3),
            "action": self.action.to_json(),
        }


@dataclass(frozen=True)
class Scene:
    """One clip: ``frames`` frames of ``size`` x ``size`` pixels at ``fps``; ``objects[target]`` is the
    grounding target; ``ref`` says which static attributes the captions mention ("colour_shape", "colour",
    "shape" or "none"); ``distractors`` maps object id -> how it confuses (e.g. "same_colour")."""

    seed: int
    index: int
    frames: int
    fps: float
    size: int
    objects: tuple[WorldObject, ...]
    target: int
    ref: str
    distractors: dict[int, list[str]]
    background: dict

    @property
    def target_object(self) -> WorldObject:
        return self.objects[self.target]

    def matching(self, ref: str, descriptor: tuple | None = None) -> list[int]:
        """Ids of the objects that share the target's static attributes named by ``ref`` and, when given,
        perform an action with this ``descriptor``."""
        t = self.target_object
        keys = {"colour_shape": ("colour", "shape"), "colour": ("colour",), "shape": ("shape",), "none": ()}[ref]
        out = []
        for o in self.objects:
            if all(getattr(o, k) == getattr(t, k) for k in keys):
                if descriptor is None or o.action.descriptor == descriptor:
                    out.append(o.id)
        return out


# --- sampling -------------------------------------------------------------------------------------------------
REFS = ("colour_shape", "colour", "shape", "none")
REF_PROBS = (0.35, 0.25, 0.25, 0.15)
STILL_IDENTIFIABLE = 0.15  # share of confusers that differ in a mentioned attribute (see _confuser)
# No object is ever smaller than this radius (pixels): every shape then holds a disc of radius > 1 px (the cross's
# is the smallest, 0.42 radii), which always contains a pixel centre, so a visible object always has a box.
MIN_RADIUS = 2.5
_GAP = 1.5  # minimum pixel gap between the outlines' bounding circles of two visible objects
_TRIES = 60  # random positions tried per object


def window_lengths(frames: int) -> tuple[int, int]:
    """Shortest and longest action window in frames: 3..12 for 16 frames, scaled with the clip length."""
    lo = max(2, round(3 * frames / 16))
    return lo, min(frames - 2, max(lo, round(12 * frames / 16)))


def sample_scene(seed: int, index: int, frames: int = 16, fps: float = 5.0, size: int = 64) -> Scene:
    """Scene ``index`` of the world with ``seed`` (its own RNG stream, independent of how many scenes are made).

    The target performs one action; the confuser (always present) shares the static attributes the captions
    mention (``ref``; in a ``STILL_IDENTIFIABLE`` share of scenes only an unmentioned one) but acts
    differently; with 3+ objects an optional second distractor performs the same action at another time but
    differs in a mentioned attribute; further objects are random. Objects never overlap and stay inside the
    frame.
    """
    rng = np.random.default_rng([seed, index])
    for _ in range(200):
        scene = _try_scene(rng, seed, index, frames, fps, size)
        if scene is not None:
            return scene
    raise RuntimeError(f"could not lay out scene {index} of seed {seed} at size {size}")  # pragma: no cover


def _try_scene(rng, seed, index, frames, fps, size) -> Scene | None:
    ref = str(rng.choice(REFS, p=REF_PROBS))
    target = _new_object(rng, str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)), frames, size)
    specs = [(target, []), _confuser(rng, target, ref, frames, size)]
    n_objects = int(rng.integers(2, 5))
    if n_objects >= 3 and ref != "none" and rng.random() < 0.6:
        specs.append(_same_action_other_time(rng, target, ref, frames, size))
    while len(specs) < n_objects:
        specs.append(_extra(rng, target, ref, frames, size))
    specs = [s for s in specs if s is not None and s[0] is not None]
    placed = _place(rng, [s[0] for s in specs], frames, size, essential=2)
    if placed is None:
        return None
    order = rng.permutation(len(placed))
    objects = tuple(_with_id(placed[k][1], i) for i, k in enumerate(order))
    kinds = {i: specs[placed[k][0]][1] for i, k in enumerate(order) if specs[placed[k][0]][1]}
    scene = Scene(seed, index, frames, fps, size, objects, int(np.flatnonzero(order == 0)[0]), ref, kinds, {})
    if scene.matching(ref, target.action.descriptor) != [scene.target]:
        return None
    return _with_background(rng, scene)


def _with_id(o: WorldObject, i: int) -> WorldObject:
    return WorldObject(i, o.colour, o.shape, o.x, o.y, o.radius, o.action)


def _with_background(rng, scene: Scene) -> Scene:
    level = rng.uniform(25, 70) + rng.uniform(-8, 8, 3)
    plain = rng.random() < 0.4
    bg = {
        "rgb": [round(float(v), 2) for v in level],
        "texture": 0.0 if plain else round(float(rng.uniform(3, 8)), 2),
        "freq": [round(float(v), 3) for v in rng.uniform(0.5, 2.5, 2)],
        "phase": [round(float(v), 3) for v in rng.uniform(0, 2 * np.pi, 2)],
    }
    return Scene(**{**scene.__dict__, "background": bg})


def _new_object(rng, colour: str, shape: str, frames: int, size: int, action: Action | None = None) -> WorldObject:
    radius = max(float(rng.uniform(0.08, 0.11) * size), MIN_RADIUS / 0.8)
    if action is None:
        action = random_action(rng, shape, colour, radius, frames, size)
    return WorldObject(-1, colour, shape, 0.0, 0.0, radius, action)


def random_action(rng, shape, colour, radius, frames, size, kind=None, window=None) -> Action:
    """A random action of ``kind`` (random when None; never spin for a circle) in ``window`` (random when None)."""
    if kind is None:
        kinds = [k for k in ACTION_KINDS if not (k == "spin" and shape == "circle")]
        kind = str(rng.choice(kinds))
    start, end = window if window is not None else random_window(rng, frames)
    if kind == "move":
        direction = str(rng.choice(list(DIRECTIONS)))
        return Action(kind, start, end, direction=direction, distance=float(rng.uniform(0.18, 0.35) * size))
    if kind in ("grow", "shrink"):
        factor = float(rng.uniform(1.4, 1.7) if kind == "grow" else max(rng.uniform(0.5, 0.65), MIN_RADIUS / radius))
        return Action(kind, start, end, factor=factor)
    if kind == "recolor":
        return Action(kind, start, end, to_colour=str(rng.choice([c for c in COLOURS if c != colour])))
    if kind == "jump":
        return Action(kind, start, end, height=float(rng.uniform(1.5, 2.5) * radius))
    return Action(kind, start, end)


def windows(frames: int) -> list[tuple[int, int]]:
    """Every allowed window ``(start, end)`` (inclusive frames): ``1 <= start``, ``end <= frames - 2`` and a
    length in :func:`window_lengths`."""
    lo, hi = window_lengths(frames)
    return [(s, s + n - 1) for n in range(lo, hi + 1) for s in range(1, frames - n)]


def random_window(rng, frames: int) -> tuple[int, int]:
    """One of :func:`windows`, uniformly (short windows fit in more places, so they are drawn more often;
    this keeps the best fixed-interval guess low)."""
    options = windows(frames)
    return options[int(rng.integers(len(options)))]


def _confuser(rng, target: WorldObject, ref: str, frames: int, size: int):
    """Shares the static attributes the captions mention (any one when ``ref`` is "none"), acts differently.

    With probability ``STILL_IDENTIFIABLE`` it shares only an attribute the captions do not mention instead,
    so that the caption's static attributes single the target out (the time window still needs motion).
    """
    share = {"colour_shape": ("colour", "shape"), "colour": ("colour",), "shape": ("shape",)}.get(ref)
    if share and rng.random() < STILL_IDENTIFIABLE:
        share = {"colour_shape": (str(rng.choice(["colour", "shape"])),), "colour": ("shape",)}.get(ref, ("colour",))
    share = share or (("colour",) if rng.random() < 0.5 else ("shape",))
    colour = target.colour if "colour" in share else _other(rng, list(COLOURS), target.colour)
    shape = target.shape if "shape" in share else _other(rng, SHAPES, target.shape)
    obj = _new_object(rng, colour, shape, frames, size, Action())
    action = _different_action(rng, obj, target.action, frames, size)
    kinds = [f"same_{k}" for k in share] + (["still"] if action.kind == "none" else ["different_action"])
    if action.kind != "none" and _overlap(action, target.action):
        kinds.append("same_time")
    return _replace_action(obj, action), kinds


def _different_action(rng, obj: WorldObject, target: Action, frames: int, size: int) -> Action:
    if rng.random() < 0.2:
        return Action()
    for _ in range(50):
        a = random_action(rng, obj.shape, obj.colour, obj.radius, frames, size)
        if a.descriptor != target.descriptor:
            return a
    return Action()  # pragma: no cover


def _same_action_other_time(rng, target: WorldObject, ref: str, frames: int, size: int):
    """Same action as the target in a disjoint window; differs in an attribute the captions mention."""
    keep = {"colour_shape": str(rng.choice(["colour", "shape"])), "colour": "shape", "shape": "colour"}[ref]
    colour = target.colour if keep == "colour" else _other(rng, list(COLOURS), target.colour)
    shape = target.shape if keep == "shape" else _other(rng, SHAPES, target.shape)
    a = target.action
    if (a.kind == "spin" and shape == "circle") or (a.kind == "recolor" and colour == a.to_colour):
        return None
    window = _disjoint_window(rng, a, frames)
    if window is None:
        return None
    action = Action(**{**a.__dict__, "start": window[0], "end": window[1]})
    return _new_object(rng, colour, shape, frames, size, action), [f"same_{keep}", "same_action_other_time"]


def _disjoint_window(rng, a: Action, frames: int) -> tuple[int, int] | None:
    """A window at least one frame away from ``a``'s, or None when the clip has no room."""
    options = [(s, e) for s, e in windows(frames) if e < a.start - 1 or s > a.end + 1]
    return options[int(rng.integers(len(options)))] if options else None


def _extra(rng, target: WorldObject, ref: str, frames: int, size: int):
    """A random object; never one the target's caption would also describe."""
    obj = _new_object(rng, str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)), frames, size, Action())
    action = Action() if rng.random() < 0.35 else random_action(rng, obj.shape, obj.colour, obj.radius, frames, size)
    keys = {"colour_shape": ("colour", "shape"), "colour": ("colour",), "shape": ("shape",), "none": ()}[ref]
    if all(getattr(obj, k) == getattr(target, k) for k in keys) and action.descriptor == target.action.descriptor:
        action = Action()
    kinds = [f"same_{k}" for k in ("colour", "shape") if getattr(obj, k) == getattr(target, k)]
    if kinds:
        kinds.append("still" if action.kind == "none" else "different_action")
    return _replace_action(obj, action), kinds


def _replace_action(o: WorldObject, action: Action) -> WorldObject:
    return WorldObject(o.id, o.colour, o.shape, o.x, o.y, o.radius, action)


def _other(rng, options, value):
    return str(rng.choice([v for v in options if v != value]))


def _overlap(a: Action, b: Action) -> bool:
    return a.start <= b.end and b.start <= a.end


# --- layout ---------------------------------------------------------------------------------------------------


def _place(rng, objects: list[WorldObject], frames: int, size: int, essential: int):
    """Random rest centres so that every object stays inside the frame and no two visible objects' bounding
    circles come closer than ``_GAP`` pixels on any frame. Returns ``[(index in objects, placed object)]``;
    the first ``essential`` objects must fit (else None), later ones that do not fit are dropped."""
    placed, tracks = [], []
    for k, obj in enumerate(objects):
        rel = obj.track(frames)
        pos = _free_position(rng, rel, obj.shape, tracks, size)
        if pos is None:
            if k < essential:
                return None
            continue
        obj = WorldObject(obj.id, obj.colour, obj.shape, pos[0], pos[1], obj.radius, obj.action)
        placed.append((k, obj))
        tracks.append((obj.track(frames), SHAPE_EXTENT[obj.shape]))
    return placed


def _free_position(rng, rel: Track, shape: str, tracks, size: int) -> tuple[float, float] | None:
    vis = rel.visible
    reach = rel.radius[vis] * SHAPE_EXTENT[shape] + 1.0
    lo_x, hi_x = np.max(reach - rel.cx[vis]), size - np.max(reach + rel.cx[vis])
    lo_y, hi_y = np.max(reach - rel.cy[vis]), size - np.max(reach + rel.cy[vis])
    if lo_x > hi_x or lo_y > hi_y:
        return None
    for _ in range(_TRIES):
        x, y = float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))
        if all(_apart(rel, shape, x, y, other, extent) for other, extent in tracks):
            return x, y
    return None


def _apart(rel: Track, shape: str, x: float, y: float, other: Track, extent: float) -> bool:
    both = rel.visible & other.visible
    d = np.hypot(rel.cx[both] + x - other.cx[both], rel.cy[both] + y - other.cy[both])
    need = rel.radius[both] * SHAPE_EXTENT[shape] + other.radius[both] * extent + _GAP
    return bool(np.all(d >= need))
