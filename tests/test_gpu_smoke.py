"""scripts/gpu_smoke.sh: valid bash; without a CUDA GPU it says so, exits 0 and creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_smoke.sh"


def test_gpu_smoke_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_smoke_without_a_gpu_runs_nothing(tmp_path):
    env = os.environ | {"PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}  # no GPU even on a GPU machine
    runs = SCRIPT.parents[1] / "runs" / "gpu_smoke"
    existed = runs.exists()
    out = tmp_path / "smoke"
    done = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU" in done.stdout and "Nothing was run" in done.stdout
    assert list(tmp_path.iterdir()) == [] and runs.exists() == existed


def _commands(text: str) -> dict[str, set[str]]:
    """``spacevllm`` subcommand -> the flags the script passes to it (continuation lines joined)."""
    lines = text.replace("\\\n", " ").splitlines()
    used: dict[str, set[str]] = {}
    for line in lines:
        words = line.split()
        if words[:1] == ["cli"]:
            used.setdefault(words[1], set()).update(w for w in words[2:] if w.startswith("--"))
        elif "train_peak.py" in line:
            after = line.split("train_peak.py", 1)[1].split("|")[0].split()
            used.setdefault("train", set()).update(w for w in after if w.startswith("--"))
    return used


def test_gpu_smoke_uses_real_cli_flags_and_config_keys(tmp_path):
    from spacevllm.cli import build_parser
    from spacevllm.engine.train import load_config

    text = SCRIPT.read_text(encoding="utf-8")
    used = _commands(text)
    assert set(used) == {"synth-world", "convert", "train", "ground"}
    subparsers = next(a for a in build_parser()._actions if a.choices and "train" in a.choices).choices
    for command, flags in used.items():
        subparsers[command].format_help()  # a lazy sub-parser adds its command's arguments when first used
        known = set(subparsers[command]._option_string_actions)
        assert flags <= known, (command, flags - known)
    yaml_text = text.split('cat > "$OUT/train.yaml" <<EOF\n', 1)[1].split("\nEOF\n", 1)[0]
    (tmp_path / "train.yaml").write_text(yaml_text.replace("$OUT", str(tmp_path)), encoding="utf-8")
    cfg = load_config(tmp_path / "train.yaml")
    assert cfg.model.gradient_checkpointing and cfg.precision == "bf16" and cfg.data.num_frames == 64
    assert cfg.optim.max_steps == 20 and cfg.model.init == str(tmp_path / "init")
