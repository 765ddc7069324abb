"""Peak memory of one training step (forward + backward) with full logits (before) and lean logits (after).

A random SpaceVLLM at the real Qwen2 vocabulary (152,064 rows) and the real token layout per frame (196 visual
tokens + one query token, the time instruction, a query and a time answer), but a tiny width (hidden 32, one layer)
so it runs on a CPU: the memory that differs between the two variants is the logits', which scales with positions x
vocabulary and not with the width.

* **before**: the formula lean logits replaced: ``lm_head`` on all L positions (B, L, V) in the model's dtype, then
  a float copy of all but the last position and cross-entropy over it (computed here, outside the package).
* **after**: ``model(**batch)``: ``lm_head`` only on the N positions that predict an answer token.

Each (frames, variant) runs in a fresh subprocess. Peak = the process's resident high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs`` right before the step) minus its resident size at that moment: the step's own
peak, model and batch excluded. The before variant is skipped where its estimated peak exceeds ``--max-before-gb``
and its peak at that length is then extrapolated linearly from the measured lengths (marked "est.").

    PYTHONPATH=src python benchmarks/bench_logits_memory.py --frames 2 4 8 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

QWEN2_VOCAB = 152064
BEFORE_BYTES_PER_LOGIT = 12.5  # measured peak of the full-logits step in bf16 per logit (L x V), for the skip rule


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8, 64], help="sampled frames per video")
    p.add_argument("--vocab", type=int, default=QWEN2_VOCAB, help="vocabulary rows (default: Qwen2's 152064)")
    p.add_argument("--hidden", type=int, default=32, help="LLM and vision width")
    p.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16", help="weights and activations")
    p.add_argument("--max-before-gb", type=float, default=6.0, help="skip before runs estimated above this")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- one step in a child process ------------------------------------------------------------------------------


def build(frames: int, vocab: int, hidden: int, dtype: str, root: str):
    """(model, batch): 196 tokens per frame (28 px frames, 2 px patches, no pooling), vocabulary resized to
    ``vocab`` rows, a batch of one 64-frame-style sample with a time answer and a box per frame."""
    import torch

    from spacevllm.modeling import SpaceVLLMForConditionalGeneration, SpaceVLLMProcessor
    from spacevllm.modeling.tiny import build_tiny_checkpoint

    ckpt = build_tiny_checkpoint(
        root, num_frames=frames, image_size=28, patch_size=2, pool_stride=1, hidden=hidden, layers=1, heads=2
    )
    model = SpaceVLLMForConditionalGeneration.from_pretrained(ckpt, dtype=getattr(torch, dtype))
    torch.manual_seed(0)
    model.resize_token_embeddings(vocab, mean_resizing=False)
    processor = SpaceVLLMProcessor.from_pretrained(ckpt)
    rng = np.random.default_rng(0)
    times = np.linspace(0.0, 119.5, frames)
    batch = processor(
        videos=[rng.integers(0, 255, (frames, 28, 28, 3), dtype=np.uint8)],
        times=[times],
        durations=[120.0],
        queries=["the man in the red coat who picks up the ball"],
        answers=["from 12.3 to 45.6 seconds"],
        return_tensors="pt",
    )
    batch["pixel_values_videos"] = batch["pixel_values_videos"].to(model.dtype)
    batch["target_boxes"] = torch.full((1, frames, 4), 0.5)
    batch["box_mask"] = torch.ones(1, frames, dtype=torch.bool)
    return model.train(), dict(batch)


def before_step(model, batch):
    """The pre-lean training loss: full (B, L, V) logits, a float copy, CE over every shifted position."""
    import torch.nn.functional as F

    from spacevllm.losses import space_losses

    labels = batch["labels"]
    out = model(**{k: v for k, v in batch.items() if k not in ("labels", "target_boxes", "box_mask")})
    shift_logits, shift_labels = out.logits[:, :-1].float(), labels[:, 1:]
    time_term = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1))
    space = space_losses(out.pred_boxes, batch["target_boxes"], batch["box_mask"])
    c = model.config
    return c.lambda_time * time_term + c.lambda_space * (
        c.lambda_l1 * space["loss_l1"] + c.lambda_giou * space["loss_giou"]
    )


def after_step(model, batch):
    """Today's training loss: ``lm_head`` on the answer positions only."""
    return model(**batch).loss


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (VmRSS: resident now, VmHWM: resident high-water mark)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(variant: str, args) -> dict:
    """One forward + backward; the step's peak resident memory above the resident size before it."""
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as root:
        model, batch = build(args.frames[0], args.vocab, args.hidden, args.dtype, root)
    step = before_step if variant == "before" else after_step
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM to the current resident size
    base, t = status_kib("VmRSS"), time.perf_counter()
    loss = step(model, batch)
    loss.backward()
    seconds, peak = time.perf_counter() - t, status_kib("VmHWM")
    return {
        "variant": variant,
        "frames": args.frames[0],
        "positions": int(batch["input_ids"].shape[1]),
        "answer_tokens": int((batch["labels"][:, 1:] != -100).sum()),
        "vocab": model.lm_head.out_features,
        "loss": float(loss.detach()),
        "peak_gib": (peak - base) / 2**20,
        "seconds": seconds,
    }


# --- the parent: one subprocess per run, a table ---------------------------------------------------------------


def positions_for(frames: int) -> int:
    """Approximate prompt length (196 + 1 tokens per frame, ~7 time-instruction tokens per frame, ~90 others)."""
    return frames * 204 + 90


def run_child(variant: str, frames: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--frames", str(frames), "--vocab", str(args.vocab)]
    cmd += ["--hidden", str(args.hidden), "--dtype", args.dtype]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {frames} frames failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """Markdown: one line per frame count, before and after side by side."""
    lines = [
        "| frames | positions L | answer tokens N | before: peak GiB | after: peak GiB | before / after "
        "| before loss | after loss | before s | after s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        est = " (est.)" if b.get("estimated") else ""
        loss_b = "-" if b.get("estimated") else f"{b['loss']:.4f}"
        secs_b = "-" if b.get("estimated") else f"{b['seconds']:.1f}"
        lines.append(
            f"| {a['frames']} | {a['positions']:,} | {a['answer_tokens']} | {b['peak_gib']:.2f}{est} "
            f"| {a['peak_gib']:.3f} | {b['peak_gib'] / a['peak_gib']:.0f}x{est} | {loss_b} | {a['loss']:.4f} "
            f"| {secs_b} | {a['seconds']:.1f} |"
        )
    return "\n".join(lines)


def extrapolate(measured: list[dict], positions: int) -> dict:
    """Before's peak at ``positions`` from a least-squares line through the measured (positions, peak) points."""
    x = np.array([m["positions"] for m in measured], np.float64)
    y = np.array([m["peak_gib"] for m in measured], np.float64)
    slope, icept = np.polyfit(x, y, 1) if len(x) > 1 else (y[0] / x[0], 0.0)
    return {"peak_gib": float(slope * positions + icept), "estimated": True, "gib_per_position": float(slope)}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return 0
    rows, measured = [], []
    for frames in args.frames:
        after = run_child("after", frames, args)
        estimate = BEFORE_BYTES_PER_LOGIT * positions_for(frames) * args.vocab / 2**30
        before = run_child("before", frames, args) if estimate <= args.max_before_gb else None
        if before is not None:
            measured.append(before)
        rows.append({"after": after, "before": before})
        print(
            f"{frames} frames: after {after['peak_gib']:.3f} GiB, before {before and before['peak_gib']}",
            file=sys.stderr,
        )
    for r in rows:
        if r["before"] is None:
            if not measured:
                raise SystemExit("no before run fits --max-before-gb; nothing to extrapolate from")
            r["before"] = extrapolate(measured, r["after"]["positions"])
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.dtype}, batch 1")
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
