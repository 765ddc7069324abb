"""The web demo (``spacevllm serve``): a Gradio app around :class:`spacevllm.api.Model`.

Upload a video (or pick the bundled example), type a query, choose the frames; the page shows the annotated video
(boxes drawn, the range marked under the frame), the timeline picture, the answer and the tube JSON (also as a file
to download). A bad upload or an empty query is one line in the page (``gr.Error``); the server keeps serving.

Stable API (used by ``gradio_client``): the endpoint ``api_name="/ground"`` takes ``(video file, query str,
frames int)`` and returns ``(annotated video, timeline image, tube dict)``; the dict is exactly what
``spacevllm ground --json --frames N`` prints for the same input. A second, private event fills the answer text
and the download from that dict, so the endpoint's signature stays three in, three out.

Requests queue one at a time (one model on a CPU); uploads above ``max_file_size`` are refused by Gradio.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo

import gradio as gr  # noqa: E402

from spacevllm import assets  # noqa: E402
from spacevllm.api import Model, is_image  # noqa: E402
from spacevllm.errors import SpaceVLLMError  # noqa: E402

MAX_FILE_SIZE = "100mb"  # Gradio refuses larger uploads before they reach the model
KEEP_RESULTS = 16  # result folders kept on disk (Gradio copies what it serves into its own cache)
TITLE = "SpaceVLLM: spatio-temporal video grounding"


class _Results:
    """Per-request output folders under one temporary root; the oldest are removed beyond ``keep``."""

    def __init__(self, keep: int = KEEP_RESULTS):
        self.root = Path(tempfile.mkdtemp(prefix="spacevllm-serve-"))
        self.keep, self.dirs = keep, deque()

    def new(self) -> Path:
        """A fresh empty folder for one request's files."""
        path = Path(tempfile.mkdtemp(dir=self.root))
        self.dirs.append(path)
        while len(self.dirs) > self.keep:
            shutil.rmtree(self.dirs.popleft(), ignore_errors=True)
        return path


def ground_video(model: Model, results: _Results, video, query, frames, progress=None) -> tuple[str, str, dict]:
    """One request: ``(annotated MP4 path, timeline PNG path, tube dict)`` for ``video`` (a path) and ``query``.

    ``frames``: frames to sample (an integral number, 1 to the model's ``num_frames``). Raises
    :class:`SpaceVLLMError` for a missing, unreadable, too short or image upload, an empty query or bad frames."""
    progress = progress or (lambda *a, **k: None)
    if not video:
        raise SpaceVLLMError("no video: upload one or pick the example")
    if is_image(video):
        raise SpaceVLLMError(f"{Path(video).name}: is an image; the demo takes a video (`spacevllm ground` does REC)")
    progress(0.05, desc="reading the video")
    frames = _whole_number(frames)
    model.check_video(video, frames)  # a corrupt or too short upload fails before the model runs
    progress(0.2, desc="grounding (one pass of the model)")
    result = model.ground(video, query, frames=frames)
    progress(0.6, desc="drawing the boxes")
    out = results.new()
    annotated = result.draw(out / "annotated.mp4")
    timeline = result.draw(out / "timeline.png")
    return str(annotated), str(timeline), result.to_json()


def describe(tube: dict | None) -> str:
    """The answer line shown in the page for a tube dict (``ground --json``'s numbers, unrounded further)."""
    if not tube:
        return ""
    if tube.get("start") is None:
        return f"No time range in the answer: {tube.get('text', '')!r}"
    n = len(tube.get("boxes") or [])
    return (
        f"Time range: {float(tube['start'])} s to {float(tube['end'])} s, {n} boxes (answer: {tube.get('text', '')!r})"
    )


def build_app(model: Model) -> gr.Blocks:
    """The Gradio Blocks app around ``model`` (not launched: see :func:`launch`)."""
    results = _Results()
    sample_query = assets.sample_info()["query"]
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"## {TITLE}\nUpload a video, type what to find, and press **Ground**.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="video", sources=["upload"], elem_id="video-in")
                query = gr.Textbox(label="query", placeholder=sample_query, elem_id="query")
                frames = gr.Slider(1, model.num_frames, value=model.num_frames, step=1, label="frames to sample")
                button = gr.Button("Ground", variant="primary", elem_id="ground")
                gr.Examples([[str(assets.sample_video_path()), sample_query, model.num_frames]], [video, query, frames])
            with gr.Column():
                annotated = gr.Video(label="annotated video", elem_id="annotated", autoplay=True, loop=True)
                answer = gr.Markdown(elem_id="answer")
                timeline = gr.Image(label="timeline", type="filepath", elem_id="timeline")
                tube = gr.JSON(label="tube (ground --json)", elem_id="tube")
                download = gr.File(label="tube.json", elem_id="download")

        def _ground(video, query, frames, progress=gr.Progress()):  # noqa: B008 (Gradio's progress idiom)
            try:
                return ground_video(model, results, video, query, frames, progress)
            except SpaceVLLMError as err:  # one line; the upload's temporary folder is noise to the user
                message = str(err).replace(str(video), Path(video).name) if video else str(err)
                raise gr.Error(message, print_exception=False) from None

        def _details(tube):
            if not tube:
                return "", None
            path = results.new() / "tube.json"
            path.write_text(json.dumps(_as_floats(tube)), encoding="utf-8")
            return describe(tube), str(path)

        clear = lambda: ("", None)  # noqa: E731 (a failed request must not leave the previous answer shown)
        button.click(clear, None, [answer, download], api_visibility="private", queue=False)
        event = button.click(_ground, [video, query, frames], [annotated, timeline, tube], api_name="ground")
        event.success(_details, [tube], [answer, download], api_visibility="private")
    return app


def launch(app: gr.Blocks, host="127.0.0.1", port=7860, max_file_size: str | int = MAX_FILE_SIZE, block=True):
    """Serve ``app`` on ``host:port``, one request at a time, refusing uploads above ``max_file_size`` (e.g.
    "100mb", or bytes); returns when the server stops (or at once when ``block`` is False)."""
    app.queue(default_concurrency_limit=1)
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=max_file_size,
        prevent_thread_lock=not block,
        quiet=True,
    )


def _whole_number(frames) -> int:
    """``frames`` as an int (the slider may send 16.0); anything else is a :class:`SpaceVLLMError`."""
    try:
        value = float(frames)
    except (TypeError, ValueError):
        raise SpaceVLLMError(f"frames must be a whole number, got {frames!r}") from None
    if not value.is_integer():
        raise SpaceVLLMError(f"frames must be a whole number, got {frames!r}")
    return int(value)


def _as_floats(tube: dict) -> dict:
    """The tube dict with its times and boxes as floats again (the page's JSON turns 1.0 into 1), so the download
    reads as ``ground --json`` prints it."""
    f = lambda x: None if x is None else float(x)  # noqa: E731
    boxes = [{"frame": int(b["frame"]), "time": f(b["time"]), "box": [f(v) for v in b["box"]]} for b in tube["boxes"]]
    return {"start": f(tube.get("start")), "end": f(tube.get("end")), "text": tube.get("text", ""), "boxes": boxes}
