"""``spacevllm serve``: one server per module (a subprocess on a free port), driven through its stable API with
``gradio_client`` and in a real headless Chromium with Playwright (Debian's ``chromium`` package).

The browser tests skip, saying why, when Playwright or /usr/bin/chromium is missing (``scripts/setup.sh`` installs
both); the API tests need only the ``serve`` extra.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from spacevllm.assets import sample_info, sample_video_path  # noqa: E402
from spacevllm.cli import main  # noqa: E402
from spacevllm.video import write_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUERY = sample_info()["query"]
FRAMES = 12  # not the model's default, so the endpoint must pass the frames through
MAX_FILE_SIZE = "1mb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spacevllm serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"spacevllm serve did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def server():
    """The URL of a ``spacevllm serve`` started for this module (stopped at its end)."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "spacevllm.cli", "serve", "--port", str(port), "--threads", "2"]
    cmd += ["--max-file-size", MAX_FILE_SIZE]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cli_json():
    """What ``spacevllm ground --json`` prints for the sample video, query and FRAMES."""

    def run(capsys) -> dict:
        argv = ["ground", "--video", str(sample_video_path()), "--query", QUERY, "--frames", str(FRAMES), "--json"]
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out)

    return run


@pytest.fixture
def corrupt(tmp_path) -> Path:
    path = tmp_path / "broken.mp4"
    path.write_bytes(sample_video_path().read_bytes()[:300])  # an MP4 cut short: its header cannot be read
    return path


# --- the stable API, through gradio_client ------------------------------------------------------------------------


def test_ground_endpoint_returns_what_the_cli_prints(server, cli_json, capsys):
    client = Client(server, verbose=False)
    annotated, timeline, tube = client.predict(handle_file(str(sample_video_path())), QUERY, FRAMES, api_name="/ground")
    assert tube == cli_json(capsys)
    assert Path(annotated).suffix == ".mp4" and Path(annotated).stat().st_size > 0
    assert Path(timeline).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ground_endpoint_raises_on_a_corrupt_upload_and_keeps_serving(server, corrupt, cli_json, capsys, tmp_path):
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="broken.mp4: not a readable video"):
        client.predict(handle_file(str(corrupt)), "the red square", 16, api_name="/ground")
    short = tmp_path / "short.mp4"
    write_video(short, np.zeros((3, 32, 32, 3), np.uint8), 5.0)
    with pytest.raises(Exception, match="short.mp4: video is too short: it has 3 frames, fewer than 16"):
        client.predict(handle_file(str(short)), "the red square", 16, api_name="/ground")
    image = tmp_path / "still.png"
    Image.new("RGB", (32, 32)).save(image)
    with pytest.raises(Exception, match="still.png: is an image"):
        client.predict(handle_file(str(image)), "the red square", 16, api_name="/ground")
    with pytest.raises(Exception, match="query is empty"):
        client.predict(handle_file(str(sample_video_path())), "  ", 16, api_name="/ground")
    with pytest.raises(Exception, match="99 is greater than maximum value 16"):  # the slider's own check
        client.predict(handle_file(str(sample_video_path())), QUERY, 99, api_name="/ground")
    tube = client.predict(handle_file(str(sample_video_path())), QUERY, FRAMES, api_name="/ground")[2]
    assert tube == cli_json(capsys)  # the server is still up and answers as before


def test_upload_above_the_size_limit_is_refused(server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(sample_video_path().read_bytes() + bytes(2 * 1024**2))  # over the server's 1 MB
    with pytest.raises(Exception, match="(?i)file size|too large|exceeds"):
        Client(server, verbose=False).predict(handle_file(str(big)), QUERY, FRAMES, api_name="/ground")


def test_server_binds_localhost_only(server):
    assert server.startswith("http://127.0.0.1:")
    client = Client(server, verbose=False)
    assert list(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == ["/ground"]


# --- a real browser ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    """A Playwright page in Debian's headless Chromium (fresh profile), at the demo."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium as root)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = context.new_page()
            page.set_viewport_size({"width": 1100, "height": 900})
            yield page
        finally:
            context.close()


def _ground_in_page(page, server: str, video: Path, query: str, frames: int) -> None:
    page.goto(server)
    page.locator("#video-in input[type=file]").set_input_files(str(video))
    page.locator("#query textarea").fill(query)
    page.locator("input[aria-label='number input for frames to sample']").fill(str(frames))
    page.locator("input[aria-label='number input for frames to sample']").press("Enter")
    page.locator("#ground").click()


def test_browser_grounds_an_upload_like_the_cli(page, server, cli_json, capsys, tmp_path):
    _ground_in_page(page, server, sample_video_path(), QUERY, FRAMES)
    answer = page.locator("#answer")
    answer.get_by_text("Time range").wait_for(timeout=90_000)
    shown = re.search(r"Time range: ([\d.]+) s to ([\d.]+) s, (\d+) boxes", answer.inner_text())
    expected = cli_json(capsys)
    assert shown, answer.inner_text()
    assert (float(shown[1]), float(shown[2]), int(shown[3])) == (
        expected["start"],
        expected["end"],
        len(expected["boxes"]),
    )
    page.wait_for_function("document.querySelector('#annotated video')?.readyState >= 2", timeout=30_000)
    video = page.eval_on_selector("#annotated video", "v => ({src: v.currentSrc, w: v.videoWidth, d: v.duration})")
    assert video["src"].endswith("annotated.mp4") and video["w"] > 0 and video["d"] > 0  # decoded by the browser
    mid = (expected["start"] + expected["end"]) / 2  # pause inside the range: the box shows in the screenshot
    page.eval_on_selector("#annotated video", f"v => {{ v.pause(); v.currentTime = {mid}; }}")
    page.wait_for_timeout(300)
    shot = Path(os.environ.get("SPACEVLLM_SERVE_SCREENSHOT") or tmp_path / "serve.png")  # README's: docs/img
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_browser_shows_the_error_of_a_corrupt_upload(page, server, corrupt):
    _ground_in_page(page, server, corrupt, "the red square", 16)
    page.get_by_text("broken.mp4: not a readable video").first.wait_for(timeout=60_000)
    assert page.locator("#answer").inner_text().strip() == ""
    page.get_by_text(QUERY).last.click()  # the bundled example (video, query, frames): the page still works
    page.wait_for_function(
        f"document.querySelector('#query textarea').value === {json.dumps(QUERY)}"
        " && document.querySelector('#video-in video')?.readyState >= 1",
        timeout=30_000,
    )
    page.locator("#ground").click()
    page.locator("#answer").get_by_text("Time range").wait_for(timeout=90_000)


def test_serve_refuses_a_bad_or_busy_port(capsys):
    assert main(["serve", "--port", "0"]) == 2
    assert "--port must be 1 to 65535, got 0" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"--port {port}: cannot serve there" in capsys.readouterr().err
