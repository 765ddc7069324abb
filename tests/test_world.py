"""The synthetic world: determinism, exact ground truth, caption uniqueness, distractors, media, CLI."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.cli import main
from spacevllm.data.records import read_records, resolve_media
from spacevllm.data.world import generate_world, world_stats
from spacevllm.data.world.captions import rest_frames
from spacevllm.data.world.render import background, mask_boxes, render_scene, shape_mask
from spacevllm.data.world.scene import Action, WorldObject, sample_scene, window_lengths
from spacevllm.errors import SpaceVLLMError
from spacevllm.time_ops import format_time_range, parse_time_range


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("world"), n=6, seed=11)


def scenes_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path.parent / "scenes.jsonl").read_text().splitlines()]


# --- determinism ----------------------------------------------------------------------------------------------


def test_same_seed_same_scene_and_frames():
    a, b = sample_scene(5, 3), sample_scene(5, 3)
    assert a == b
    assert np.array_equal(render_scene(a)[0], render_scene(b)[0])


def test_new_seed_or_index_gives_a_new_scene():
    frames = {render_scene(sample_scene(seed, i))[0].tobytes() for seed in (0, 1, 2) for i in (0, 1)}
    assert len(frames) == 6


def test_generate_twice_gives_identical_bytes(split, tmp_path):
    again = generate_world(tmp_path / "again", n=6, seed=11)
    assert again.read_bytes() == split.read_bytes()
    assert (again.parent / "scenes.jsonl").read_bytes() == (split.parent / "scenes.jsonl").read_bytes()
    for media in ("videos/s11-000003.mp4", "images"):
        for a in sorted((split.parent / media).rglob("*") if media == "images" else [split.parent / media]):
            assert a.read_bytes() == (again.parent / a.relative_to(split.parent)).read_bytes()
    other = generate_world(tmp_path / "other", n=6, seed=12)
    assert other.read_bytes() != split.read_bytes()


def test_larger_n_extends_the_split(split, tmp_path):
    longer = generate_world(tmp_path / "longer", n=8, seed=11)
    assert longer.read_text().startswith(split.read_text())


# --- exact ground truth -----------------------------------------------------------------------------------------


def test_square_box_by_hand():
    """Half side 0.8 * 5 = 4 around x = 20: pixel centres 16.5 .. 23.5 are inside -> columns 16..23 -> [16, 24)."""
    obj = WorldObject(0, "red", "square", 20.0, 30.0, 5.0)
    mask = shape_mask("square", obj.track(1), 64)
    assert mask_boxes(mask) == [[16, 26, 24, 34]]
    assert mask.sum() == 64


def test_boxes_are_the_rendered_extent_of_each_object():
    """Render each object alone: the pixels that differ from the background span exactly its box."""
    scene = sample_scene(7, 2)
    _, boxes = render_scene(scene)
    bg = np.clip(np.rint(background(scene)), 0, 255).astype(np.uint8)
    for obj in scene.objects:
        alone, _ = render_scene(replace(scene, objects=(obj,)))
        changed = np.any(alone != bg[None], axis=-1)
        assert mask_boxes(changed) == boxes[obj.id]


def test_stvg_boxes_cover_exactly_the_window(split):
    for r in read_records(split):
        if r.task not in ("stvg", "vtg"):
            continue
        first, last = round(r.start * r.fps), round(r.end * r.fps)
        assert r.meta["action"]["start"] == first and r.meta["action"]["end"] == last
        assert r.answer == format_time_range(r.start, r.end)
        assert parse_time_range(r.answer) == pytest.approx((r.start, r.end))
        if r.task == "stvg":
            assert sorted(r.frame_boxes()) == list(range(first, last + 1))


def test_target_box_matches_scene_boxes_and_motion(split):
    scenes = {s["index"]: s for s in scenes_of(split)}
    for r in read_records(split):
        if r.task != "stvg":
            continue
        target = scenes[r.meta["index"]]["objects"][r.meta["target"]]
        assert {str(f): b for f, b in r.frame_boxes().items()} == {k: target["boxes"][k] for k in r.boxes}


@given(st.integers(4, 40), st.data())
def test_object_is_mid_action_exactly_inside_its_window(frames, data):
    lo, hi = window_lengths(frames)
    length = data.draw(st.integers(lo, hi))
    start = data.draw(st.integers(1, frames - 1 - length))
    p = Action("grow", start, start + length - 1, factor=1.5).progress(frames)
    mid = np.flatnonzero((p > 0) & (p < 1))
    assert mid.tolist() == list(range(start, start + length))
    assert p[0] == 0 and p[-1] == 1 and np.all(np.diff(p) >= 0)


# --- records, captions, distractors -------------------------------------------------------------------------------


def test_records_validate_and_media_exist(split):
    records = read_records(split)
    assert {r.task for r in records} == {"stvg", "vtg", "rec", "qa"}
    assert len(records) == 6 * 5
    for r in records:
        assert r.source == "world"
        media = r.image if r.task == "rec" else r.video
        assert (
            not Path(media).is_absolute() and resolve_media(r, split, "image" if r.task == "rec" else "video").is_file()
        )
    types = [r.meta["sentence_type"] for r in records if r.task == "stvg"]
    assert types.count("declarative") == types.count("interrogative") == 6


def test_videos_decode_with_the_rendered_frames(split):
    from spacevllm.video import sample_frames

    scene = sample_scene(11, 0)
    sampled = sample_frames(split.parent / "videos" / "s11-000000.mp4", 16)
    assert sampled.info.num_frames == 16 and sampled.frames.shape == (16, 64, 64, 3)
    assert np.allclose(sampled.times, np.arange(16) / 5.0)
    err = np.abs(sampled.frames.astype(int) - render_scene(scene)[0].astype(int)).mean()
    assert err < 4, err


def test_caption_fits_only_the_target_and_a_still_frame_does_not(split):
    for r in read_records(split):
        if r.task != "stvg":
            continue
        scene = sample_scene(11, r.meta["index"])
        desc = scene.target_object.action.descriptor
        assert scene.matching(scene.ref, desc) == [r.meta["target"]]
        assert r.meta["static_matches"] == scene.matching(scene.ref)


def test_a_distractor_shares_colour_or_shape_with_the_target():
    for i in range(40):
        scene = sample_scene(3, i)
        t = scene.target_object
        others = [o for o in scene.objects if o.id != t.id]
        assert any(o.colour == t.colour or o.shape == t.shape for o in others)
        assert scene.distractors and all(k != t.id for k in scene.distractors)
        assert 2 <= len(scene.objects) <= 4
        assert not (t.shape == "circle" and t.action.kind == "spin")
        lo, hi = window_lengths(scene.frames)
        assert lo <= t.action.end - t.action.start + 1 <= hi


@pytest.mark.parametrize("size, frames", [(32, 16), (64, 4), (96, 24)])
def test_a_visible_object_always_has_a_box(size, frames):
    for i in range(25):
        scene = sample_scene(4, i, frames, 5.0, size)
        _, boxes = render_scene(scene)
        for obj in scene.objects:
            visible = obj.track(frames).visible
            assert [b is not None for b in boxes[obj.id]] == visible.tolist()


def test_objects_never_overlap_and_stay_inside():
    for i in range(20):
        scene = sample_scene(9, i)
        masks = []
        for obj in scene.objects:
            track = obj.track(scene.frames)
            masks.append(shape_mask(obj.shape, track, scene.size) & track.visible[:, None, None])
            full = shape_mask(obj.shape, track, scene.size + 40)  # a larger canvas shows nothing outside
            assert full[:, scene.size :].sum() == 0 and full[:, :, scene.size :].sum() == 0
        assert np.max(np.sum(masks, axis=0)) <= 1


def test_qa_answers_follow_the_scene(split):
    for r in read_records(split):
        if r.task != "qa":
            continue
        t = sample_scene(11, r.meta["index"]).target_object
        expected = {"colour": t.colour, "shape": t.shape}.get(r.meta["question_type"])
        if expected:
            assert r.answer == expected
        assert r.query.endswith("?") and r.answer


def test_rec_expression_is_unique_on_its_frame(split):
    from spacevllm.video import read_image

    for r in read_records(split):
        if r.task != "rec":
            continue
        scene = sample_scene(11, r.meta["index"])
        pixels, boxes = render_scene(scene)
        frame = r.meta["frame"]
        assert frame in rest_frames(scene)
        assert np.array_equal(read_image(resolve_media(r, split, "image")), pixels[frame])
        assert r.boxes["0"] == boxes[r.meta["object"]][frame]
        words = set(r.query.split())
        fits = [o for o in scene.objects if boxes[o.id][frame] is not None and _fits(o, words, frame, scene.frames)]
        if r.meta["expression"] != "position":
            assert [o.id for o in fits] == [r.meta["object"]]


def _fits(o, words, frame, frames):
    colour = o.action.to_colour if o.action.kind == "recolor" and o.action.progress(frames)[frame] == 1 else o.colour
    named_colours = words & {"red", "green", "blue", "yellow", "purple", "cyan"}
    named_shapes = words & {"circle", "square", "triangle", "cross", "diamond"}
    return named_colours <= {colour} and named_shapes <= {o.shape}


def test_world_stats_baselines(split):
    stats = world_stats(split)
    assert stats["n_stvg"] == 12 and 0 < stats["fixed_interval_m_tIoU"] <= 1
    assert 0 <= stats["still_identifiable"] <= 1
    assert 0 <= stats["still_fixed_interval_m_vIoU"] <= stats["still_oracle_time_m_vIoU"] <= 1
    assert 0 <= stats["blind_box_fixed_interval_m_vIoU"] <= stats["blind_box_oracle_time_m_vIoU"] < 0.5


def test_blind_box_baseline_by_hand(tmp_path):
    """Two queries on 4-frame videos: A's GT is [0, 0, 10, 10] on frames 0-1, B's [10, 10, 20, 20] on frames 1-3.
    The mean GT box is [6, 6, 16, 16]: IoU 16 / 184 = 2/23 with A's box, 36 / 164 = 9/41 with B's; with the GT
    interval each query's vIoU is that IoU."""
    rows = []
    for i, (frames, box) in enumerate([((0, 1), [0, 0, 10, 10]), ((1, 2, 3), [10, 10, 20, 20])]):
        meta = {"index": i, "still_identifiable": False, "action": {"kind": "move"}}
        rows.append(
            {"id": f"q{i}", "task": "stvg", "query": "the square moves.", "video": f"{i}.mp4", "duration": 0.8,
             "fps": 5.0, "width": 32, "height": 32, "answer": "x", "start": frames[0] / 5, "end": frames[-1] / 5,
             "boxes": {str(f): box for f in frames}, "meta": meta}
        )  # fmt: skip
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats = world_stats(path)
    assert stats["blind_box_oracle_time_m_vIoU"] == pytest.approx((2 / 23 + 9 / 41) / 2)
    assert 0 < stats["blind_box_fixed_interval_m_vIoU"] < stats["blind_box_oracle_time_m_vIoU"]
    assert "still_oracle_time_m_vIoU" not in stats  # no scenes.jsonl beside the records


# --- files, resume, CLI ---------------------------------------------------------------------------------------------


def test_resume_rewrites_only_missing_media(tmp_path):
    path = generate_world(tmp_path, n=3, seed=2, tasks=["stvg", "rec"])
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    os.utime(videos[0], (1, 1))
    videos[1].unlink()
    before = path.read_bytes()
    assert generate_world(tmp_path, n=3, seed=2, tasks=["stvg", "rec"]).read_bytes() == before
    assert videos[0].stat().st_mtime == 1 and videos[1].is_file()
    assert not list(tmp_path.rglob("*.tmp"))


def test_tasks_and_frame_options(tmp_path):
    path = generate_world(tmp_path, n=2, seed=3, frames=8, fps=4, size=48, tasks=["vtg"])
    records = read_records(path)
    assert [r.task for r in records] == ["vtg", "vtg"]
    assert all(r.duration == 2.0 and r.width == 48 and r.end <= 6 / 4 for r in records)


def test_cli_writes_and_reports(tmp_path, capsys):
    assert main(["synth-world", "--out", str(tmp_path), "--n", "3", "--seed", "1", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["records"]) == tmp_path / "records.jsonl"
    assert summary["stats"]["n_scenes"] == 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n", "0"], "n must be a positive integer"),
        (["--n", "2", "--size", "33"], "size must be an even integer"),
        (["--n", "2", "--tasks", "stvg,caption"], "tasks must be a non-empty subset"),
        (["--n", "2", "--frames", "3"], "frames must be an integer >= 4"),
    ],
)
def test_cli_rejects_bad_options(tmp_path, capsys, extra, message):
    assert main(["synth-world", "--out", str(tmp_path), "--seed", "1", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 2.5}, "n must be a positive integer, got 2.5"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"fps": 0}, "fps must be positive"),
        ({"tasks": "rec,chat"}, "tasks must be a non-empty subset"),
    ],
)
def test_generate_world_rejects_bad_arguments(tmp_path, kwargs, message):
    args = {"n": 1, "seed": 0} | kwargs
    with pytest.raises(SpaceVLLMError, match=message):
        generate_world(tmp_path, **args)
    assert not (tmp_path / "records.jsonl").exists()


def test_tasks_as_comma_string(tmp_path):
    assert {r.task for r in read_records(generate_world(tmp_path, 1, 0, tasks="rec,qa"))} == {"rec", "qa"}


def test_cli_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth-world", "--out", str(blocker / "w"), "--n", "1", "--seed", "1", "--no-progress"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_cli_refuses_a_folder_made_with_other_options(tmp_path, capsys):
    assert main(["synth-world", "--out", str(tmp_path), "--n", "1", "--seed", "1", "--no-progress"]) == 0
    assert (
        main(["synth-world", "--out", str(tmp_path), "--n", "1", "--seed", "1", "--size", "32", "--no-progress"]) == 2
    )
    assert "other options" in capsys.readouterr().err
