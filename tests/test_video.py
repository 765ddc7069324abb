"""Video decoding, LLaVA-Video uniform sampling, the time instruction and the error paths (spacevllm.video)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.errors import InputFileError, SpaceVLLMError, VideoError
from spacevllm.video import (
    probe_video,
    read_image,
    sample_frames,
    time_instruction,
    to_display,
    uniform_frame_indices,
    write_video,
)

REAL_CLIP = Path(__file__).parent / "data" / "bigbuckbunny_256x144.mp4"  # 75 frames, 25 fps (tests/data/README.md)
H, W, STEP = 48, 64, 8  # frame i is solid gray level i * STEP (top rows: noise, so GOPs are not trivial)


def indexed_frames(t: int, seed: int = 0) -> np.ndarray:
    """(t, H, W, 3) frames whose bottom 32 rows are the gray level ``index * STEP``."""
    frames = np.repeat((np.arange(t, dtype=np.uint8) * STEP)[:, None, None, None], H * W * 3, axis=1)
    frames = frames.reshape(t, H, W, 3)
    frames[:, :16] = np.random.default_rng(seed).integers(0, 256, (t, 16, W, 3), dtype=np.uint8)
    return frames


def decoded_index(frames: np.ndarray) -> np.ndarray:
    """Recover each frame's source index from its gray level."""
    return np.round(frames[:, 16:, :, :].mean(axis=(1, 2, 3)) / STEP).astype(int)


def encode(path, frames, fps, fmt, codec, **options):
    """Write ``frames`` with PyAV in any container (for the formats write_video does not make)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {k: str(v) for k, v in options.items()}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """30 frames at 10 fps, a keyframe every 5 frames, so sampling really seeks."""
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", indexed_frames(30), fps=10, gop=5)


def test_probe_video(clip):
    info = probe_video(clip)
    assert (info.num_frames, info.fps, info.duration, info.width, info.height) == (30, 10.0, 3.0, W, H)
    assert info.path == clip


def test_write_video_gop_sets_the_keyframe_interval(clip):
    with av.open(str(clip)) as container:
        keys = [i for i, f in enumerate(container.decode(video=0)) if f.key_frame]
    assert keys == [0, 5, 10, 15, 20, 25]


def test_uniform_indices_follow_llava_video():
    np.testing.assert_array_equal(uniform_frame_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(uniform_frame_indices(30, 4), [0, 9, 19, 29])  # 9.67 -> 9: truncated
    np.testing.assert_array_equal(uniform_frame_indices(7, 1), [0])
    assert uniform_frame_indices(100, 16).dtype == np.int64
    with pytest.raises(ValueError):
        uniform_frame_indices(0, 4)


@given(st.integers(1, 100_000), st.integers(1, 256))
def test_uniform_indices_properties(total, n):
    idx = uniform_frame_indices(total, n)
    assert len(idx) == n and idx[0] == 0 and idx.max() <= total - 1
    if n > 1:
        assert idx[-1] == total - 1
    if n <= total:
        assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, np.linspace(0, total - 1, n).astype(int))


@pytest.mark.parametrize("n", [1, 4, 7, 16, 30])
def test_sample_frames_returns_the_sampled_source_frames(clip, n):
    s = sample_frames(clip, n)
    assert s.frames.shape == (n, H, W, 3) and s.frames.dtype == np.uint8
    assert s.indices.dtype == np.int64 and s.times.dtype == np.float64
    np.testing.assert_array_equal(s.indices, uniform_frame_indices(30, n))
    np.testing.assert_array_equal(decoded_index(s.frames), s.indices)
    np.testing.assert_allclose(s.times, s.indices / 10.0)
    assert s.info.num_frames == 30


def test_seeking_decodes_the_same_pixels_as_a_full_decode(clip):
    with av.open(str(clip)) as container:
        decoded = list(container.decode(video=0))
    assert {int(f.pict_type) for f in decoded} >= {1, 2, 3}  # I, P and B: reordering and skipped non-refs
    full = np.stack([f.to_ndarray(format="rgb24") for f in decoded])
    for n in (2, 9, 13, 30):
        s = sample_frames(clip, n)
        np.testing.assert_array_equal(s.frames, full[s.indices])


def test_sampling_seeks_past_gops_it_does_not_need(tmp_path, clip):
    """Zero the packets of frames 10..19: a full decode fails, sampling frames 0 and 29 never touches them."""
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None and 10 <= round(float(packet.pts * stream.time_base) * 10) < 20:
                data[packet.pos : packet.pos + packet.size] = b"\0" * packet.size
    holed = tmp_path / "holed.mp4"
    holed.write_bytes(bytes(data))
    with pytest.raises(av.error.InvalidDataError), av.open(str(holed)) as container:
        list(container.decode(video=0))
    np.testing.assert_array_equal(decoded_index(sample_frames(holed, 2).frames), [0, 29])
    with pytest.raises(VideoError, match="corrupt"):
        sample_frames(holed, 4)  # frame 19 is inside the damaged part


def test_sample_frames_resizes(clip):
    assert sample_frames(clip, 3, size=(24, 32)).frames.shape == (3, 24, 32, 3)
    square = sample_frames(clip, 3, size=20)
    assert square.frames.shape == (3, 20, 20, 3)
    np.testing.assert_array_equal(decoded_index(square.frames), square.indices)


def test_webm_without_header_frame_count(tmp_path):
    path = encode(tmp_path / "a.webm", indexed_frames(30), 10, "webm", "libvpx")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # so num_frames comes from duration * fps
    assert probe_video(path).num_frames == 30
    s = sample_frames(path, 5)
    np.testing.assert_array_equal(decoded_index(s.frames), [0, 7, 14, 21, 29])


@pytest.mark.parametrize(
    "fmt, ext, codec, pix_fmt",
    [
        ("mpegts", "ts", "libx264", "yuv420p"),  # stream starts at 0.2 s: indices count from the start
        ("avi", "avi", "mpeg4", "yuv420p"),
        ("mov", "mov", "mjpeg", "yuvj420p"),  # every frame a keyframe
    ],
)
def test_other_containers_and_codecs(tmp_path, fmt, ext, codec, pix_fmt):
    path = tmp_path / f"a.{ext}"
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for frame in indexed_frames(30):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert probe_video(path).num_frames == 30
    for n in (4, 30):
        s = sample_frames(path, n)
        np.testing.assert_array_equal(decoded_index(s.frames), uniform_frame_indices(30, n))


def test_raw_h264_falls_back_to_sequential_decoding(tmp_path):
    path = encode(tmp_path / "a.h264", indexed_frames(30), 10, "h264", "libx264", g=5)
    assert probe_video(path).num_frames == 0  # an elementary stream has no frame count and no timestamps
    s = sample_frames(path, 5)
    assert s.info.num_frames == 30
    np.testing.assert_array_equal(s.indices, [0, 7, 14, 21, 29])
    np.testing.assert_array_equal(decoded_index(s.frames), s.indices)


def test_header_that_overcounts_frames_is_corrected(tmp_path):
    path = encode(tmp_path / "full.mkv", indexed_frames(30), 10, "matroska", "libx264", g=5)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # header still says 3.0 s
    assert probe_video(cut).num_frames == 30
    s = sample_frames(cut, 5)
    assert 5 <= s.info.num_frames < 30
    np.testing.assert_array_equal(s.indices, uniform_frame_indices(s.info.num_frames, 5))
    np.testing.assert_array_equal(decoded_index(s.frames), s.indices)


def test_time_instruction_is_llava_videos_string():
    text = time_instruction(3.0, np.array([0.0, 0.9, 1.9, 2.9]))
    assert text == (
        "The video lasts for 3.00 seconds, and 4 frames are uniformly sampled from it. "
        "These frames are located at 0.00s,0.90s,1.90s,2.90s.Please answer the following questions "
        "related to this video."
    )
    assert time_instruction(12.345, [1.005]).startswith("The video lasts for 12.35 seconds, and 1 frames ")


def test_time_instruction_from_a_sample(clip):
    s = sample_frames(clip, 4)
    assert "located at 0.00s,0.90s,1.90s,2.90s.Please" in time_instruction(s.info.duration, s.times)


# --- variable frame rate, rotation, a real clip ------------------------------------------------------

VFR_MS = [0, 40, 80, 120, 400, 440, 480, 1500, 1540, 1580, 1620, 1660, 2000, 2040, 2080, 2120, 2160, 2200, 2240, 3000]


def encode_vfr(path, frames, times_ms, fmt=None):
    """H.264 with each frame at its own time ``times_ms`` (milliseconds): a variable-frame-rate file."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"g": "5"}
        for array, t in zip(frames, times_ms):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def remux(src, dst, rotation=None, tag=None, fmt=None):
    """Copy ``src``'s video packets unchanged into ``dst`` with a display matrix (``rotation`` degrees
    counterclockwise) or an old-style ``rotate`` tag (degrees clockwise)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        source = inp.streams.video[0]
        stream = out.add_stream_from_template(source)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if tag is not None:
            stream.metadata["rotate"] = str(tag)
        for packet in inp.demux(source):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


@pytest.mark.parametrize("ext, fmt", [("mp4", None), ("mkv", "matroska")])
@pytest.mark.parametrize("n", [5, 20])
def test_variable_frame_rate_times_are_each_frames_timestamp(tmp_path, ext, fmt, n):
    path = encode_vfr(tmp_path / f"vfr.{ext}", indexed_frames(20), VFR_MS, fmt)
    s = sample_frames(path, n)
    np.testing.assert_array_equal(s.indices, uniform_frame_indices(20, n))
    np.testing.assert_array_equal(decoded_index(s.frames), s.indices)  # the frames themselves are the i-th
    np.testing.assert_allclose(s.times, np.array(VFR_MS)[s.indices] / 1000, atol=1e-9)
    assert s.info.num_frames == 20 and s.info.duration == pytest.approx(3.04)  # last frame + median step
    listed = ",".join(f"{t / 1000:.2f}s" for t in np.array(VFR_MS)[s.indices])
    assert f"located at {listed}.Please" in time_instruction(s.info.duration, s.times)


def test_constant_frame_rate_times_stay_index_over_fps(tmp_path):
    s = sample_frames(REAL_CLIP, 16)
    np.testing.assert_array_equal(s.times, s.indices / 25.0)  # exactly LLaVA-Video's index / fps
    assert (s.info.num_frames, s.info.duration, s.info.fps) == (75, 3.0, 25.0)
    # WebM stores milliseconds: at 30000/1001 fps the steps are 33 or 34 ms, which is still a constant rate
    path = encode(tmp_path / "ntsc.webm", indexed_frames(30), Fraction(30000, 1001), "webm", "libvpx")
    s = sample_frames(path, 7)
    np.testing.assert_array_equal(s.times, s.indices / (30000 / 1001))
    np.testing.assert_array_equal(decoded_index(s.frames), s.indices)


def test_real_clip_samples_the_decoded_frames():
    with av.open(str(REAL_CLIP)) as container:
        full = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    s = sample_frames(REAL_CLIP, 16)
    assert s.frames.shape == (16, 144, 256, 3)
    np.testing.assert_array_equal(s.frames, full[s.indices])


@pytest.mark.parametrize(
    "rotation, tag, fmt, turns",
    [(90, None, None, 1), (180, None, None, 2), (-90, None, None, 3), (None, 90, "matroska", 3)],
)
def test_rotation_is_applied(tmp_path, rotation, tag, fmt, turns):
    """A display matrix (counterclockwise degrees) or a ``rotate`` tag (clockwise): frames, sizes in display
    orientation; the packets are the unrotated clip's, so the pixels must be exactly np.rot90 of its frames."""
    path = remux(REAL_CLIP, tmp_path / ("r.mkv" if fmt else "r.mp4"), rotation, tag, fmt)
    plain, turned = sample_frames(REAL_CLIP, 6), sample_frames(path, 6)
    assert turned.info.rotation == turns * 90
    info = probe_video(path)
    assert (info.width, info.height) == ((144, 256) if turns % 2 else (256, 144))
    np.testing.assert_array_equal(turned.frames, np.rot90(plain.frames, turns, axes=(1, 2)))
    np.testing.assert_array_equal(to_display(plain.frames[2], turned.info.rotation), turned.frames[2])
    np.testing.assert_array_equal(turned.times, plain.times)
    resized = sample_frames(path, 2, size=(40, 30) if turns % 2 else (30, 40))
    assert resized.frames.shape == ((2, 40, 30, 3) if turns % 2 else (2, 30, 40, 3))


def test_rotation_marker_ends_where_a_player_shows_it(tmp_path):
    """A white corner at the stored top-left; rotated 90 degrees counterclockwise it is at the bottom-left."""
    frames = np.zeros((4, H, W, 3), np.uint8)
    frames[:, :8, :8] = 255
    path = remux(write_video(tmp_path / "plain.mp4", frames, 10), tmp_path / "r.mp4", rotation=90)
    shown = sample_frames(path, 1).frames[0].mean(axis=2)
    assert shown.shape == (W, H)
    assert shown[-8:, :8].mean() > 200 and shown[:8, :8].mean() < 50


# --- errors ------------------------------------------------------------------------------------------


def assert_one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(VideoError) as err:
        sample_frames(tmp_path / "nope.mp4", 4)
    assert "not found" in assert_one_line_naming(err, tmp_path / "nope.mp4")
    with pytest.raises(VideoError):
        probe_video(tmp_path / "nope.mp4")


def test_folder_instead_of_a_file(tmp_path):
    with pytest.raises(VideoError) as err:
        probe_video(tmp_path)
    assert "is a folder" in assert_one_line_naming(err, tmp_path)
    with pytest.raises(InputFileError, match="is a folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello world\n" * 100, bytes(range(256)) * 40])
def test_not_a_video(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError) as err:
        sample_frames(path, 4)
    assert "not a readable video" in assert_one_line_naming(err, path)


def test_truncated_mp4_is_unreadable(tmp_path, clip):
    path = tmp_path / "trunc.mp4"
    path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # the index (moov) is at the end
    with pytest.raises(VideoError) as err:
        probe_video(path)
    assert_one_line_naming(err, path)


def test_corrupt_frame_data(tmp_path, clip):
    data = bytearray(clip.read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = b"\0" * (size - 8)
    path = tmp_path / "zeroed.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError) as err:
        sample_frames(path, 4)
    assert "corrupt" in assert_one_line_naming(err, path)


def test_zero_length_video(tmp_path):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    with pytest.raises(VideoError) as err:
        sample_frames(path, 1)
    assert "no video stream" in assert_one_line_naming(err, path)


def test_video_shorter_than_the_frames_asked_for(tmp_path):
    path = write_video(tmp_path / "short.mp4", indexed_frames(5), fps=10)
    with pytest.raises(VideoError) as err:
        sample_frames(path, 8)
    msg = assert_one_line_naming(err, path)
    assert "5 frames" in msg and "8" in msg
    assert len(sample_frames(path, 5).frames) == 5
    one = write_video(tmp_path / "one.mp4", indexed_frames(1), fps=10)
    with pytest.raises(VideoError, match="it has 1 frame, fewer than the 2 asked for"):
        sample_frames(one, 2)


def test_bad_frame_count(clip):
    with pytest.raises(SpaceVLLMError, match="num_frames"):
        sample_frames(clip, 0)


# --- images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_read_image(tmp_path, mode):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    img = Image.fromarray(rgb).convert(mode)
    img.save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_read_image_display_applies_exif_orientation(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # stored pixels must be turned 90 degrees clockwise for display
    img.save(tmp_path / "x.png", exif=exif)
    assert read_image(tmp_path / "x.png").shape == (12, 20, 3)  # as stored, for annotations made on them
    np.testing.assert_array_equal(read_image(tmp_path / "x.png", display=True), np.rot90(rgb, -1))


def test_read_image_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(InputFileError, match="bad.jpg: not a readable image"):
        read_image(tmp_path / "bad.jpg")
