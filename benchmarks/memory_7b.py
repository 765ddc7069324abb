"""Memory plan for SpaceVLLM on LLaVA-Video-7B-Qwen2: parameters by part, sequence length, per-GPU memory.

    python benchmarks/memory_7b.py [--frames 16 32 64 96] [--gpus 8] [--micro-batch 1] [--vision-layers 26]
                                   [--freeze-vision] [--json]

The architecture is built for real, as a :class:`SpaceVLLMForConditionalGeneration` on the meta device
(``accelerate.init_empty_weights``: shapes, no weights, seconds on a CPU): SigLIP so400m-patch14-384 (hidden 1152,
intermediate 4304, 16 heads; 26 layers by default, the depth transformers' own LLaVA-OneVision conversion keeps
because the last layer's output is never used, ``--vision-layers 27`` for the full tower) + 2-layer GELU projector +
Qwen2-7B (hidden 3584, 28 layers, 28 heads, 4 KV heads, intermediate 18944, vocabulary 152064, untied lm_head) +
the space head (3-layer MLP). The query tokens ``<r_i>`` take spare rows of the 152064-row embedding.

Sequence length: the processor's own placeholder expansion (``SpaceVLLMProcessor.build_prompt``: system turn, N
frames of 196 ``<video>`` placeholders each followed by ``<r_i>``, one newline feature, LLaVA-Video's time instruction,
the STVG instruction with an HC-STVG-like caption) plus the answer. Qwen2's tokenizer cannot be downloaded here, so
text is counted with Qwen2's published pre-tokenizer regex (digits one per token, words with their leading space,
punctuation runs) and one token per pre-token, two for punctuation glued to a word (".Please"): common English
words are single tokens in Qwen2's 151k vocabulary, so this is exact for the time instruction's digits and a close
lower bound for the words (64 frames of a 20 s video: 455 tokens for the time instruction).

Per-GPU memory, bytes (P = all parameters, P_t = trainable ones, G = GPUs; mixed precision with AdamW, the ZeRO
paper's accounting: bf16 weights 2, bf16 gradients 2, fp32 master weights + Adam m + v 12 bytes per parameter;
under plain DDP with autocast the same 16 bytes are fp32 weights 4 + fp32 gradients 4 + Adam 8):

    model states   DDP     2 P + 14 P_t
                   ZeRO-2  2 P + 14 P_t / G              (gradients and optimizer states partitioned)
                   ZeRO-3  (2 P + 14 P_t) / G            (weights too)
    buffers        DDP     0 (the reducer's gradient buckets are not counted: up to one more gradient copy)
                   ZeRO-2  2 (allgather_bucket + reduce_bucket) x (4.5 with overlap_comm, DeepSpeed's documented
                           footprint, else 1)
                   ZeRO-3  2 x 2 x largest module (its gathered bf16 weight and full gradient before reduce-scatter:
                           the 152064 x 3584 embedding / lm_head) + 2 x prefetch_bucket + reduce buckets as ZeRO-2
                   Bucket sizes are read from the shipped configs/deepspeed/zero{2,3}.json; "auto" takes
                   accelerate's fill-in: reduce_bucket = h^2, stage3_prefetch_bucket = 0.9 h^2 (h = 3584).
    activations    per sample of the micro-batch (x micro-batch), bf16 (2 bytes), attention without an L x L
                   matrix (FlashAttention-2 or SDPA with GQA: k/v not repeated to 28 heads; repeating them adds
                   4 (h - kv) bytes per token and layer)
                   LLM layer, per token:    2 (7 h + 2 kv + 4 f)  = 203,776 B  (h 3584, kv 512, f 18944)
                       norm-1 in/out, q, k, v (after RoPE), attention out, o_proj in, norm-2 in/out, and the
                       SwiGLU's gate, up, silu(gate), gate*up
                   SigLIP layer, per patch: 2 (9 h_v + 2 f_v)   = 37,952 B   (h_v 1152, f_v 4304; 729 patches a frame)
                   projector, per patch:    2 (h_v + 2 h)       (fc1 in, fc1 out, GELU out)
                   outside the layers:      2 x 2 h per token (embeddings, the masked_scatter copy) + 2 x 2 h (final
                                            norm in/out)
                   logits, lean:            T x V x 10 (T = 13 answer tokens: bf16 logits + fp32 copy + fp32
                                            log-softmax); the full-logits column: L x V x 10 for comparison
      without checkpointing: every layer's activations, L x 203,776 x 28 + patches x 37,952 x 26 (the vision tower
                             only when trainable; a frozen tower under a trainable projector saves nothing)
      with checkpointing:    each layer keeps its input (2 h per token, 2 h_v per patch) + in backward one layer's
                             activations twice (recomputed activations and their gradients)
    total = model states + buffers + activations. Not counted: CUDA context (~0.5-1 GiB), allocator
    fragmentation, the optimizer step's transient fp32 gradient (after the activations are freed). "fits" leaves
    10 % of the card free.

Output: markdown tables (parameters, sequence length, memory at each frame count) or one JSON object (--json).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

GiB = 2**30
STRATEGIES = ("ddp", "zero2", "zero3")
FRAMES = (16, 32, 64, 96)
VIDEO_SECONDS, VIDEO_FPS = 20.0, 25.0  # an HC-STVG video: 20 s at 25 fps
CAPTION = "The man in the white shirt walks to the woman in black, turns around and sits down on the red chair."
GT_RANGE = (6.27, 13.81)  # seconds, an HC-STVG-like ground-truth range
# Qwen2's pre-tokenizer (tokenizer.json of Qwen/Qwen2-7B): digits one by one, words with their leading space.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL = re.compile(r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<video>|<image>|<r_\d+>")


# --- the architecture ------------------------------------------------------------------------------------------


def llava_video_7b_config(vision_layers: int = 26, num_frames: int = 64):
    """SpaceVLLMConfig of LLaVA-Video-7B-Qwen2 + SpaceVLLM (query ids: spare rows above Qwen2's 151,646 tokens)."""
    from spacevllm.modeling import SpaceVLLMConfig

    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=vision_layers,
        num_attention_heads=16,
        image_size=384,
        patch_size=14,
        vision_use_head=False,
    )
    text = dict(
        model_type="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        tie_word_embeddings=False,
    )
    return SpaceVLLMConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=151646,
        video_token_index=151647,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        num_frames=num_frames,
        query_token_ids=list(range(151648, 151648 + num_frames + 1)),
    )


def build_meta_model(config):
    """The SpaceVLLM model of ``config`` on the meta device (no memory, no weights)."""
    from accelerate import init_empty_weights

    from spacevllm.modeling import SpaceVLLMForConditionalGeneration

    with init_empty_weights():
        return SpaceVLLMForConditionalGeneration(config)


def parameters_by_part(model) -> dict[str, int]:
    """Parameter counts: vision_tower, projector (+ image_newline), llm (Qwen2 with its input embedding), lm_head,
    space_decoder (+ temporal pointer if any), total."""
    inner = model.model

    def n(module) -> int:
        return sum(p.numel() for p in module.parameters())

    parts = {
        "vision_tower": n(inner.vision_tower),
        "projector": n(inner.multi_modal_projector) + inner.image_newline.numel(),
        "llm": n(inner.language_model),
        "lm_head": n(model.lm_head),
        "space_decoder": n(model.space_decoder) + (n(model.temporal_pointer) if model.temporal_pointer else 0),
    }
    parts["total"] = sum(parts.values())
    if parts["total"] != n(model):
        raise AssertionError(f"parts sum to {parts['total']}, the model has {n(model)}")
    return parts


# --- sequence length -----------------------------------------------------------------------------------------


def count_text_tokens(text: str) -> int:
    """Qwen2-like token count of ``text``: special tokens 1 each; the rest one per Qwen2 pre-token, two for
    punctuation glued to a word (".Please")."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated")
    count = len(SPECIAL.findall(text))
    for piece in SPECIAL.split(text):
        for token, _ in split.pre_tokenize_str(piece) if piece else []:
            glued = len(token) > 1 and not token[0].isspace() and not token[0].isalnum() and token[1:].isalpha()
            count += 2 if glued else 1
    return count


def sequence_layout(config, frames: int) -> dict[str, int]:
    """Token counts of one STVG training sample at ``frames`` frames (see the module docstring)."""
    from spacevllm.modeling.processing import SpaceVLLMProcessor
    from spacevllm.time_ops import format_time_range, snap_time_range
    from spacevllm.video import time_instruction, uniform_frame_indices

    processor = SpaceVLLMProcessor(None, frames, 384, config.tokens_per_frame, config.query_mode)
    times = uniform_frame_indices(int(VIDEO_SECONDS * VIDEO_FPS), frames) / VIDEO_FPS
    prompt, _ = processor.build_prompt("stvg", CAPTION, frames, times, VIDEO_SECONDS)
    answer = format_time_range(*snap_time_range(*GT_RANGE, times)) + "<|im_end|>"
    visual = prompt.count(processor.video_token)
    queries = len(re.findall(r"<r_\d+>", prompt))
    prompt_tokens = count_text_tokens(prompt)
    answer_tokens = count_text_tokens(answer)
    return {
        "frames": frames,
        "tokens_per_frame": config.tokens_per_frame,
        "visual": visual,
        "queries": queries,
        "time_instruction": count_text_tokens(time_instruction(VIDEO_SECONDS, times)),
        "text": prompt_tokens - visual - queries,
        "answer": answer_tokens,
        "total": prompt_tokens + answer_tokens,
        "patches": frames * (config.vision_config.image_size // config.vision_config.patch_size) ** 2,
    }


# --- memory ----------------------------------------------------------------------------------------------------


def deepspeed_buckets(strategy: str, hidden: int) -> dict[str, float]:
    """Bucket sizes (elements) of the shipped DeepSpeed JSON of ``strategy``, "auto" filled as accelerate does."""
    if strategy == "ddp":
        return {}
    import spacevllm

    path = Path(spacevllm.__file__).parent / "configs" / "deepspeed" / f"{strategy}.json"
    zero = json.loads(path.read_text(encoding="utf-8"))["zero_optimization"]
    auto = {"reduce_bucket_size": hidden * hidden, "stage3_prefetch_bucket_size": 0.9 * hidden * hidden}

    def size(key: str, default: float) -> float:
        value = zero.get(key, default)
        return float(auto.get(key, default) if value == "auto" else value)

    return {
        "reduce_bucket": size("reduce_bucket_size", 5e8),
        "allgather_bucket": size("allgather_bucket_size", 5e8) if strategy == "zero2" else 0.0,
        "prefetch_bucket": size("stage3_prefetch_bucket_size", 5e7) if strategy == "zero3" else 0.0,
        "overlap": 4.5 if zero.get("overlap_comm", False) else 1.0,
    }


def model_state_bytes(strategy: str, params: int, trainable: int, gpus: int) -> float:
    """Weights + gradients + optimizer states per GPU (module docstring)."""
    if strategy == "ddp":
        return 2 * params + 14 * trainable
    if strategy == "zero2":
        return 2 * params + 14 * trainable / gpus
    if strategy == "zero3":
        return (2 * params + 14 * trainable) / gpus
    raise ValueError(f"unknown strategy {strategy!r}")


def buffer_bytes(strategy: str, largest_module: int, hidden: int) -> float:
    """DeepSpeed's communication buffers and ZeRO-3's gathered module (module docstring)."""
    b = deepspeed_buckets(strategy, hidden)
    if not b:
        return 0.0
    comm = 2 * (b["allgather_bucket"] + b["reduce_bucket"]) * b["overlap"]
    if strategy == "zero3":
        comm += 2 * 2 * largest_module + 2 * b["prefetch_bucket"]
    return comm


def activation_bytes(config, seq: dict, checkpointing: bool, vision_trainable: bool, lean_logits: bool) -> float:
    """Saved activations of one micro-batch (batch 1) of ``seq`` (:func:`sequence_layout`), module docstring."""
    t, v = config.text_config, config.vision_config
    h, f, kv = t.hidden_size, t.intermediate_size, t.num_key_value_heads * (t.hidden_size // t.num_attention_heads)
    length, patches = seq["total"], seq["patches"]
    llm_layer = length * 2 * (7 * h + 2 * kv + 4 * f)
    vis_layer = patches * 2 * (9 * v.hidden_size + 2 * v.intermediate_size) if vision_trainable else 0
    projector = patches * 2 * (v.hidden_size + 2 * h)
    outside = length * 2 * 2 * h * 2
    logits = (seq["answer"] if lean_logits else length) * t.vocab_size * 10
    if not checkpointing:
        layers = t.num_hidden_layers * llm_layer + v.num_hidden_layers * vis_layer
    else:
        inputs = t.num_hidden_layers * length * 2 * h
        inputs += v.num_hidden_layers * patches * 2 * v.hidden_size if vision_trainable else 0
        layers = inputs + 2 * max(llm_layer, vis_layer)
    return layers + projector + outside + logits


def memory_rows(config, parts: dict, seq: dict, gpus: int, freeze_vision: bool, card_gib: float, batch=1) -> list:
    """One row per (strategy, checkpointing): GiB per GPU of model states, buffers, activations (lean logits) of a
    micro-batch of ``batch`` samples, the total, the total with full logits, and whether it fits ``card_gib`` with
    10 % free."""
    params = parts["total"]
    trainable = params - (parts["vision_tower"] if freeze_vision else 0)
    largest = config.text_config.vocab_size * config.text_config.hidden_size
    rows = []
    for strategy in STRATEGIES:
        for ckpt in (False, True):
            states = model_state_bytes(strategy, params, trainable, gpus)
            buffers = buffer_bytes(strategy, largest, config.text_config.hidden_size)
            act = batch * activation_bytes(config, seq, ckpt, not freeze_vision, lean_logits=True)
            full = batch * activation_bytes(config, seq, ckpt, not freeze_vision, lean_logits=False)
            total = states + buffers + act
            rows.append(
                {
                    "frames": seq["frames"],
                    "strategy": strategy,
                    "checkpointing": ckpt,
                    "model_states_gib": round(states / GiB, 1),
                    "buffers_gib": round(buffers / GiB, 1),
                    "activations_gib": round(act / GiB, 1),
                    "total_gib": round(total / GiB, 1),
                    "total_full_logits_gib": round((states + buffers + full) / GiB, 1),
                    "fits": bool(total <= 0.9 * card_gib * GiB),
                }
            )
    return rows


# --- report ----------------------------------------------------------------------------------------------------


def plan(frames=FRAMES, gpus=8, vision_layers=26, freeze_vision=False, card_gib=80.0, micro_batch=1) -> dict:
    """Everything the tables show, as one dict."""
    config = llava_video_7b_config(vision_layers, num_frames=64)
    parts = parameters_by_part(build_meta_model(config))
    seqs = [sequence_layout(config, n) for n in frames]
    rows = [r for s in seqs for r in memory_rows(config, parts, s, gpus, freeze_vision, card_gib, micro_batch)]
    return {
        "gpus": gpus,
        "micro_batch": micro_batch,
        "card_gib": card_gib,
        "vision_layers": vision_layers,
        "freeze_vision": freeze_vision,
        "parameters": parts,
        "sequence": seqs,
        "memory": rows,
    }


def _m(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def markdown(result: dict) -> str:
    """The three tables of :func:`plan` as markdown."""
    p = result["parameters"]
    lines = [f"Parameters (SigLIP with {result['vision_layers']} layers):", "", "| part | parameters |", "|---|---|"]
    lines += [f"| {k} | {_m(v)} |" for k, v in p.items()]
    lines += ["", "Sequence of one STVG sample (20 s video, HC-STVG-like caption):", ""]
    lines += ["| frames | visual | queries | text (time instruction) | answer | total |", "|---|---|---|---|---|---|"]
    for s in result["sequence"]:
        lines.append(
            f"| {s['frames']} | {s['visual']:,} | {s['queries']} | {s['text']} ({s['time_instruction']}) "
            f"| {s['answer']} | {s['total']:,} |"
        )
    trained = "vision tower frozen" if result["freeze_vision"] else "all parts trained"
    lines += [
        "",
        f"Per-GPU memory, GiB, {result['gpus']} GPUs, micro-batch {result['micro_batch']}, {trained}, lean logits:",
        "",
    ]
    lines += [
        "| frames | setup | grad. ckpt | model states | buffers | activations | total | total, full logits "
        f"| fits {result['card_gib']:g} GB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["memory"]:
        lines.append(
            f"| {r['frames']} | {r['strategy']} | {'yes' if r['checkpointing'] else 'no'} | {r['model_states_gib']} "
            f"| {r['buffers_gib']} | {r['activations_gib']} | {r['total_gib']} | {r['total_full_logits_gib']} "
            f"| {'yes' if r['fits'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=list(FRAMES), help="frame counts (default 16 32 64 96)")
    ap.add_argument("--gpus", type=int, default=8, help="data-parallel GPUs (default 8)")
    ap.add_argument("--micro-batch", type=int, default=1, help="samples per GPU per step (default 1)")
    ap.add_argument("--vision-layers", type=int, default=26, choices=(26, 27), help="SigLIP depth (default 26)")
    ap.add_argument("--freeze-vision", action="store_true", help="the vision tower is not trained")
    ap.add_argument("--card-gib", type=float, default=80.0, help="GPU memory for the 'fits' column (default 80)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = ap.parse_args(argv)
    if args.gpus < 1 or args.micro_batch < 1 or any(n < 1 for n in args.frames):
        ap.error("--gpus, --micro-batch and --frames must be positive")
    result = plan(args.frames, args.gpus, args.vision_layers, args.freeze_vision, args.card_gib, args.micro_batch)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
