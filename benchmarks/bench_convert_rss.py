"""Benchmark: peak host memory (RSS) of ``spacevllm convert`` vs the source checkpoint's size on disk.

Builds (once, in ``--work``) a random LLaVA-OneVision-0.5B-shaped checkpoint saved by transformers in bf16:
SigLIP so400m (hidden 1152, 26 layers, 16 heads, 384 px, patch 14, as transformers' own LLaVA-OneVision conversion
keeps it) + 2-layer projector + Qwen2-0.5B (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864,
151,936 embedding rows, untied input/output embeddings as at 7B) and a word-level tokenizer of 151,648 tokens
(Qwen2's 151,643 + chat and <image>/<video> tokens: fewer tokens than embedding rows, as in every Qwen2 release).
Then runs ``spacevllm convert`` on it in a child process and reads that child's peak RSS (``os.wait4``'s
``ru_maxrss``). ``--before REV`` also runs the convert module of git revision REV (e.g. the one before this
benchmark) the same way, for a side-by-side table; ``--baseline`` also measures a child that only imports
torch + transformers + spacevllm.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_convert_rss.py --work /tmp/convert_rss --before bec2a36
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


def build_tokenizer(n_regular: int):
    """Word-level tokenizer with ``n_regular`` tokens + Qwen2's chat tokens + <image>/<video>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(n_regular - 1)} | {"[UNK]": n_regular - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIAL[1:]})
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
    out = work / "out_after"
    shutil.rmtree(out, ignore_errors=True)
    cli = [sys.executable, "-m", "spacevllm.cli", "convert", "--llava-onevision", str(src), "--out", str(out)]
    rows.append(("after", *run_child(cli), out))
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
    else:
        main()
