"""Language for world scenes: STVG captions (declarative and interrogative), VTG queries, REC expressions and QA.

Captions name the target by what it does, plus the static attributes of the scene's ``ref`` ("the red square
that moves left", "which shape moves left?"); the layout guarantees that exactly one object fits the caption.
Several phrasings of each are drawn at random (the caption RNG is separate from the scene's).
"""

from __future__ import annotations

import numpy as np

from spacevllm.data.world.scene import Action, Scene, WorldObject

_MOVE = {
    "left": ("left", "to the left"),
    "right": ("right", "to the right"),
    "up": ("up", "upward"),
    "down": ("down", "downward"),
}
# kind -> [(third person, gerund)]; {c} is the new colour of a recolor
_VERBS = {
    "appear": [("appears", "appearing"), ("fades in", "fading in"), ("shows up", "showing up")],
    "disappear": [("disappears", "disappearing"), ("fades out", "fading out"), ("vanishes", "vanishing")],
    "grow": [("grows", "growing"), ("gets bigger", "getting bigger"), ("expands", "expanding")],
    "shrink": [("shrinks", "shrinking"), ("gets smaller", "getting smaller")],
    "recolor": [("turns {c}", "turning {c}"), ("changes colour to {c}", "changing colour to {c}")],
    "jump": [("jumps", "jumping"), ("bounces", "bouncing"), ("hops", "hopping")],
    "spin": [("spins", "spinning"), ("rotates", "rotating"), ("turns around", "turning around")],
}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")


def verb_phrases(action: Action) -> list[tuple[str, str]]:
    """All (third person, gerund) phrasings of an action, e.g. ("moves left", "moving left")."""
    if action.kind == "move":
        short, long_ = _MOVE[action.direction]
        return [
            (f"moves {short}", f"moving {short}"),
            (f"slides {long_}", f"sliding {long_}"),
            (f"goes {short}", f"going {short}"),
        ]
    return [(a.format(c=action.to_colour), b.format(c=action.to_colour)) for a, b in _VERBS[action.kind]]


def noun_phrase(obj: WorldObject, ref: str, rng) -> str:
    """The static part of a reference: "red square" / "red shape" / "square" / "object"."""
    generic = str(rng.choice(["shape", "object"]))
    return {
        "colour_shape": f"{obj.colour} {obj.shape}",
        "colour": f"{obj.colour} {generic}",
        "shape": obj.shape,
        "none": generic,
    }[ref]


def declarative(scene: Scene, rng) -> str:
    """An STVG caption: "the red square that moves left" (one of several templates)."""
    np_, (v3, ving) = _parts(scene, rng)
    templates = [f"the {np_} that {v3}", f"the {np_} which {v3}", f"the {np_} {ving}", f"the {np_} {v3}."]
    return templates[int(rng.integers(len(templates)))]


def interrogative(scene: Scene, rng) -> str:
    """An STVG question about the target: "which shape moves left?" / "what is the red object that appears?"."""
    np_, (v3, _) = _parts(scene, rng)
    templates = [f"which {np_} {v3}?", f"what is the {np_} that {v3}?"]
    if scene.ref == "none":
        templates.append(f"what {v3}?")
    return templates[int(rng.integers(len(templates)))]


def vtg_query(scene: Scene, rng) -> str:
    """A VTG sentence describing the event: "the red square moves left." / "a red square moving left"."""
    np_, (v3, ving) = _parts(scene, rng)
    templates = [f"the {np_} {v3}.", f"the {np_} {ving}", f"{_article(np_)} {np_} {v3}."]
    return templates[int(rng.integers(len(templates)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _parts(scene: Scene, rng) -> tuple[str, tuple[str, str]]:
    phrases = verb_phrases(scene.target_object.action)
    return noun_phrase(scene.target_object, scene.ref, rng), phrases[int(rng.integers(len(phrases)))]


# --- QA -----------------------------------------------------------------------------------------------------------


def qa_pair(scene: Scene, rng) -> tuple[str, str, str]:
    """A short-answer question about the video: ``(question, answer, kind)``.

    Kinds: "colour" (what colour is the shape that moves left? -> red), "shape" (what shape is the red object
    that appears? -> triangle), "action" (what does the red square do? -> it moves left), and "count" when no
    other question has a unique answer (how many shapes are there? -> three).
    """
    t = scene.target_object
    desc = t.action.descriptor
    v3 = verb_phrases(t.action)[int(rng.integers(len(verb_phrases(t.action))))][0]
    options = []
    if t.action.kind != "recolor":
        for ref, np_ in (("shape", t.shape), ("none", str(rng.choice(["shape", "object"])))):
            if scene.matching(ref, desc) == [t.id]:
                options.append((f"what colour is the {np_} that {v3}?", t.colour, "colour"))
    for ref, np_ in (("colour", f"{t.colour} object"), ("none", "object")):
        if scene.matching(ref, desc) == [t.id]:
            options.append((f"what shape is the {np_} that {v3}?", t.shape, "shape"))
    if scene.matching("colour_shape") == [t.id]:
        options.append((f"what does the {t.colour} {t.shape} do?", f"it {v3}", "action"))
    if not options:
        n = len(scene.objects)
        return "how many shapes are there in the video?", NUMBERS[n] if n < len(NUMBERS) else str(n), "count"
    return options[int(rng.integers(len(options)))]


# --- REC ----------------------------------------------------------------------------------------------------------


def rest_frames(scene: Scene) -> list[int]:
    """Frames on which no object is mid-action (each object shows its before or after state)."""
    p = np.stack([o.action.progress(scene.frames) for o in scene.objects])
    return [int(f) for f in np.flatnonzero(np.all((p == 0) | (p == 1), axis=0))]


def rec_expression(scene: Scene, boxes: dict[int, list], rng) -> tuple[int, int, str, str]:
    """A referring expression on one still frame: ``(frame, object id, expression, kind)``.

    The frame is one where no object is mid-action; the expression names a static attribute (colour, shape, or
    both, as shown on that frame) that no other visible object has there, e.g. "the blue circle"; when only
    look-alikes are visible it adds a position ("the red square on the left"). ``kind`` says which.
    """
    frames = [f for f in rest_frames(scene) if any(boxes[o.id][f] is not None for o in scene.objects)]
    frame = frames[int(rng.integers(len(frames)))]
    seen = {o.id: _look(o, frame, scene.frames) for o in scene.objects if boxes[o.id][frame] is not None}
    options = [(oid, e, k) for oid in seen for e, k in _unique_expressions(oid, seen, rng)]
    if not options:
        options = _positional(seen, {oid: boxes[oid][frame] for oid in seen})
    oid, expr, kind = options[int(rng.integers(len(options)))]
    return frame, oid, expr, kind


def _look(o: WorldObject, frame: int, frames: int) -> tuple[str, str]:
    done = o.action.kind == "recolor" and o.action.progress(frames)[frame] == 1
    return (o.action.to_colour if done else o.colour), o.shape


def _unique_expressions(oid: int, seen: dict, rng) -> list[tuple[str, str]]:
    colour, shape = seen[oid]
    others = [v for k, v in seen.items() if k != oid]
    out = []
    if all(c != colour for c, _ in others):
        out.append((f"the {colour} {rng.choice(['shape', 'object'])}", "colour"))
    if all(s != shape for _, s in others):
        out.append((f"the {shape}", "shape"))
    if all(v != (colour, shape) for v in others):
        out.append((f"the {colour} {shape}", "colour_shape"))
    return out


def _positional(seen: dict, frame_boxes: dict) -> list[tuple[int, str, str]]:
    """Look-alikes only: name the leftmost / rightmost / topmost / lowest one when it stands clear of the rest."""
    out = []
    centres = {oid: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for oid, b in frame_boxes.items()}
    for axis, low, high in ((0, "on the left", "on the right"), (1, "at the top", "at the bottom")):
        order = sorted(centres, key=lambda oid: centres[oid][axis])
        if len(order) >= 2 and centres[order[1]][axis] - centres[order[0]][axis] >= 4:
            out.append((order[0], low, "position"))
        if len(order) >= 2 and centres[order[-1]][axis] - centres[order[-2]][axis] >= 4:
            out.append((order[-1], high, "position"))
    return [(oid, f"the {seen[oid][0]} {seen[oid][1]} {where}", kind) for oid, where, kind in out]
