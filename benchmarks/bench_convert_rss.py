"""Benchmark: peak host memory (RSS) of ``spacevllm convert`` vs the source checkpoint's size on disk.

Builds (once, in ``--work``) a random LLaVA-OneVision-0.5B-shaped checkpoint saved by transformers in bf16:
SigLIP so400m (hidden 1152, 26 layers, 16 heads, 384 px, patch 14, as transformers' own LLaVA-OneVision conversion
keeps it) + 2-layer projector + Qwen2-0.5B (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864,
151,936 embedding rows, untied input/output embeddings as at 7B) and a word-level tokenizer of 151,648 tokens
(Qwen2's 151,643 + chat and <image>/<video> tokens: fewer tokens than embedding rows, as in every Qwen2 release).
Then runs ``spacevllm convert`` on it in a child process and reads that child's peak RSS (``os.wait4``'s
``ru_maxrss``: it counts the memory-mapped source pages the child touched). ``--before REV`` also runs the convert
module of git revision REV (e.g. the one before this benchmark) the same way, for a side-by-side table;
``--baseline`` also measures a child that only imports torch + transformers + spacevllm; ``--llava-next`` also
writes the same weights in LLaVA-NeXT's own ``llava_qwen`` format (two shards, LLaVA-Video-7B's mm_* fields, a
tokenizer without <image>/<video>, as lmms-lab/LLaVA-Video-7B-Qwen2 is released) and converts that.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_convert_rss.py --work /tmp/convert_rss --baseline \
        --before bec2a36 --llava-next
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QWEN2_TOKENS = 151_643  # Qwen2's regular vocabulary; its special tokens follow
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


def build_tokenizer(n_regular: int, placeholders: bool = True):
    """Word-level tokenizer with ``n_regular`` tokens + Qwen2's chat tokens (+ <image>/<video>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(n_regular - 1)} | {"[UNK]": n_regular - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIAL[1:] if placeholders else SPECIAL[1:3]})
    return fast


def source_config(tokenizer):
    """LLaVA-OneVision-0.5B's shape (see the module docstring), tokens ids from ``tokenizer``."""
    from transformers import LlavaOnevisionConfig

    vision = dict(
        model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
        num_attention_heads=16, image_size=384, patch_size=14, vision_use_head=False,
    )  # fmt: skip
    text = dict(
        model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, vocab_size=151_936, tie_word_embeddings=False, max_position_embeddings=32768,
        rope_theta=1_000_000.0,
    )  # fmt: skip
    return LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        tie_word_embeddings=False,
    )


def build_source(path: Path) -> None:
    """Save the random bf16 source checkpoint (weights, tokenizer, preprocessor config) in ``path``."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    tokenizer = build_tokenizer(QWEN2_TOKENS)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = LlavaOnevisionForConditionalGeneration(source_config(tokenizer))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    meta = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": 384, "width": 384}}
    (path / "preprocessor_config.json").write_text(json.dumps(meta), encoding="utf-8")


LLAVA_NEXT_NAMES = {  # transformers' saved LLaVA-OneVision names -> LLaVA-NeXT's
    "language_model.model.": "model.",
    "language_model.lm_head.": "lm_head.",
    "vision_tower.": "model.vision_tower.vision_tower.vision_model.",
    "multi_modal_projector.linear_1.": "model.mm_projector.0.",
    "multi_modal_projector.linear_2.": "model.mm_projector.2.",
    "image_newline": "model.image_newline",
}


def build_llava_next(source: Path, path: Path) -> None:
    """Write ``source``'s weights in LLaVA-NeXT's llava_qwen format (two shards + index) with LLaVA-Video's fields."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    with safe_open(source / "model.safetensors", framework="pt") as f:
        names = sorted(f.keys())
        shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
        weight_map = {}
        for file, keys in shards.items():
            renamed = {_llava_next_name(k): f.get_tensor(k) for k in keys}
            save_file(renamed, path / file, metadata={"format": "pt"})
            weight_map |= dict.fromkeys(renamed, file)
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    text = json.loads((source / "config.json").read_text(encoding="utf-8"))["text_config"]
    config = {k: v for k, v in text.items() if k not in ("rope_parameters", "layer_types", "model_type", "dtype")}
    config |= {
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava_qwen", "torch_dtype": "bfloat16",
        "rope_theta": text["rope_parameters"]["rope_theta"], "mm_vision_tower": "google/siglip-so400m-patch14-384",
        "mm_hidden_size": 1152, "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2,
        "mm_patch_merge_type": "spatial_unpad", "mm_newline_position": "grid", "mm_spatial_pool_mode": "bilinear",
        "mm_spatial_pool_stride": 2, "add_faster_video": False, "image_aspect_ratio": "anyres_max_9",
    }  # fmt: skip
    (path / "config.json").write_text(json.dumps(config, indent=2))
    build_tokenizer(QWEN2_TOKENS, placeholders=False).save_pretrained(path)


def _llava_next_name(name: str) -> str:
    prefix = next(p for p in LLAVA_NEXT_NAMES if name.startswith(p))
    return LLAVA_NEXT_NAMES[prefix] + name[len(prefix) :]


def weights_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def run_child(argv: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of one child process; raises if it fails."""
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed ({os.waitstatus_to_exitcode(status)}): {' '.join(argv)}")
    return time.perf_counter() - t, usage.ru_maxrss * 1024  # Linux: kilobytes


def old_convert_argv(rev: str, src: Path, out: Path, tmp: Path) -> list[str]:
    """A child that runs ``convert_llava_onevision`` of src/spacevllm/modeling/convert.py at git revision ``rev``."""
    code = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/spacevllm/modeling/convert.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module = tmp / "old_convert.py"
    module.write_text(code, encoding="utf-8")
    call = f"import sys; sys.path.insert(0, {str(tmp)!r}); import old_convert; "
    call += f"old_convert.convert_llava_onevision({str(src)!r}, {str(out)!r}, 64)"
    return [sys.executable, "-c", call]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "spacevllm_convert_rss"))
    ap.add_argument("--before", metavar="REV", default=None, help="also run the convert module of git REV")
    ap.add_argument("--baseline", action="store_true", help="also measure a child that only imports the libraries")
    ap.add_argument("--llava-next", action="store_true", help="also convert the same weights in llava_qwen format")
    args = ap.parse_args()
    work = Path(args.work)
    src = work / "llava_onevision_0.5b_bf16"
    if not (src / "config.json").is_file():
        print(f"building {src} ...", flush=True)
        run_child([sys.executable, __file__, "--build-only", str(src)])
    disk = weights_bytes(src)
    rows = []
    if args.baseline:
        imports = "import torch, transformers, spacevllm.modeling.convert, spacevllm.modeling"
        rows.append(("imports only", *run_child([sys.executable, "-c", imports]), None))
    if args.before:
        out = work / "out_before"
        shutil.rmtree(out, ignore_errors=True)
        rows.append((f"before ({args.before})", *run_child(old_convert_argv(args.before, src, out, work)), out))
    sources = [("after", src)]
    if args.llava_next:
        next_src = work / "llava_qwen_0.5b_bf16"
        if not (next_src / "config.json").is_file():
            run_child([sys.executable, __file__, "--build-llava-next", str(src), str(next_src)])
        sources.append(("after, llava_qwen format", next_src))
    for name, folder in sources:
        out = work / f"out_{folder.name}"
        shutil.rmtree(out, ignore_errors=True)
        cli = [sys.executable, "-m", "spacevllm.cli", "convert", "--source", str(folder), "--out", str(out)]
        rows.append((name, *run_child(cli), out))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"source: {src} ({disk / 2**30:.2f} GiB of safetensors, bf16)")
    print("| run | seconds | peak RSS GiB | peak RSS / source on disk | output on disk GiB |")
    print("|---|---|---|---|---|")
    for name, secs, rss, out in rows:
        written = f"{weights_bytes(out) / 2**30:.2f}" if out else "-"
        print(f"| {name} | {secs:.1f} | {rss / 2**30:.2f} | {rss / disk:.2f}x | {written} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--build-only":
        build_source(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--build-llava-next":
        build_llava_next(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
