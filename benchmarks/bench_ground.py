"""One `ground` call vs the text-coordinate baseline vs a bare backbone, at equal model size and input.

    .venv/bin/python benchmarks/bench_ground.py [--frames 16 64] [--hidden 256] [--layers 4] [--repeats 3]

All three run the same random SpaceVLLM-sized network (SigLIP + projector + Qwen2; 64x64 frames, 8x8 patches,
16 tokens per frame) on the same video and prompt, with answers forced to fixed texts so that every variant
generates a known number of tokens:
  * ground:      one prefill + the time range as text + the space decoder on the frames in range (SpaceVLLM);
  * text-coords: query_mode "none": the time range and one box per frame in range generated as text (Table 7 row 1);
  * bare:        the same preprocessing, then LlavaOnevisionForConditionalGeneration generating the same time-range
                 tokens from the same prompt (no decoder) -- the cost floor of the backbone.
The range covers half the video, so text-coords writes N/2 boxes. Times are medians; ratios are side by side.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
from spacevllm.modeling.inference import forced_answer, ground
from spacevllm.modeling.tiny import build_tiny_checkpoint
from spacevllm.text_coords import format_answer
from spacevllm.time_ops import format_time_range
from spacevllm.video import sample_frames, write_video


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _models(root: Path, frames: int, hidden: int, layers: int):
    kw = dict(num_frames=frames, image_size=64, patch_size=8, hidden=hidden, layers=layers, heads=4)
    q = build_tiny_checkpoint(root / f"q{frames}", **kw)
    t = build_tiny_checkpoint(root / f"t{frames}", query_mode="none", **kw)
    load = SpaceVLLMForConditionalGeneration.from_pretrained
    model_q, model_t = load(q).eval(), load(t).eval()
    bare_cfg = LlavaOnevisionConfig(**{k: v for k, v in model_q.config.to_dict().items() if k in _LLAVA_KEYS})
    bare = LlavaOnevisionForConditionalGeneration(bare_cfg).eval()
    bare.load_state_dict(model_q.state_dict(), strict=False)
    return (model_q, SpaceVLLMProcessor.from_pretrained(q)), (model_t, SpaceVLLMProcessor.from_pretrained(t)), bare


_LLAVA_KEYS = (
    "vision_config",
    "text_config",
    "image_token_index",
    "video_token_index",
    "vision_feature_layer",
    "vision_feature_select_strategy",
    "image_grid_pinpoints",
    "tie_word_embeddings",
)


def bench(frames: int, hidden: int, layers: int, repeats: int, root: Path) -> dict:
    video = root / f"v{frames}.mp4"
    write_video(video, np.random.default_rng(0).integers(0, 255, (frames, 64, 64, 3), dtype=np.uint8), fps=5)
    sample = sample_frames(video, frames)
    (model_q, proc_q), (model_t, proc_t), bare = _models(root, frames, hidden, layers)
    start, end = float(sample.times[frames // 4]), float(sample.times[frames // 4 + frames // 2 - 1])
    time_text = format_time_range(start, end)
    inside = sample.times[(sample.times >= start - 1e-6) & (sample.times <= end + 1e-6)]
    boxes = np.tile([0.12, 0.30, 0.45, 0.60], (len(inside), 1))
    coords_text = format_answer(start, end, inside, boxes)
    query = "the red square that moves left"
    inputs = proc_q(videos=[sample.frames], times=[sample.times], durations=[sample.info.duration], queries=[query])
    n_time = len(proc_q.tokenizer(time_text, add_special_tokens=False)["input_ids"]) + 1
    n_coords = len(proc_t.tokenizer(coords_text, add_special_tokens=False)["input_ids"]) + 1
    budget = n_coords + 8
    with torch.no_grad():
        t_ground = _median_time(
            lambda: ground(model_q, proc_q, sample, query, **forced_answer(proc_q, [time_text])), repeats
        )
        t_coords = _median_time(
            lambda: ground(
                model_t, proc_t, sample, query, max_new_tokens=budget, **forced_answer(proc_t, [coords_text])
            ),
            repeats,
        )

        def bare_call():  # the same preprocessing as ground, then prefill + decode of the time-range tokens
            batch = proc_q(
                videos=[sample.frames],
                times=[sample.times],
                durations=[sample.info.duration],
                queries=[query],
                padding_side="left",
            )
            kw = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values_videos")}
            return bare.generate(
                **kw,
                max_new_tokens=n_time,
                min_new_tokens=n_time,
                do_sample=False,
                pad_token_id=proc_q.tokenizer.pad_token_id,
            )

        t_bare = _median_time(
            bare_call,
            repeats,
        )
    return dict(
        frames=frames,
        prompt_tokens=int(inputs["input_ids"].shape[1]),
        time_tokens=n_time,
        coord_tokens=n_coords,
        ground_s=t_ground,
        text_coords_s=t_coords,
        bare_s=t_bare,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(
        "| frames | prompt tokens | generated (ground / text-coords) | ground | text-coords | bare backbone |"
        " text-coords / ground | ground / bare |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            r = bench(n, args.hidden, args.layers, args.repeats, Path(tmp))
            print(
                f"| {n} | {r['prompt_tokens']} | {r['time_tokens']} / {r['coord_tokens']} | {r['ground_s']:.3f} s | "
                f"{r['text_coords_s']:.3f} s | {r['bare_s']:.3f} s | {r['text_coords_s'] / r['ground_s']:.1f}x | "
                f"{r['ground_s'] / r['bare_s']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
