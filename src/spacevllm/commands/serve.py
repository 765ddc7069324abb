"""``spacevllm serve [--checkpoint DIR] [--host 127.0.0.1] [--port 7860]``: the web demo (:mod:`spacevllm.serve`).

Needs the ``serve`` extra (``pip install "spacevllm[serve]"``: gradio). The model is loaded before the server
starts; the server binds 127.0.0.1 unless ``--host`` says otherwise and answers one request at a time.
"""

from __future__ import annotations

import argparse

from spacevllm.errors import SpaceVLLMError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="SpaceVLLM model folder (default: the embedded default model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-file-size", default="100mb", help="largest upload accepted, e.g. 100mb (default)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch, at least 1 (default: torch's choice)")


def run(args) -> int:
    if not 0 < args.port < 65536:
        raise SpaceVLLMError(f"--port must be 1 to 65535, got {args.port}")
    try:
        from spacevllm import serve
    except ImportError as err:
        raise SpaceVLLMError(f"serve needs gradio ({err}); install it with: pip install 'spacevllm[serve]'") from None
    from spacevllm.api import load

    model = load(args.checkpoint, threads=args.threads)
    app = serve.build_app(model)
    print(f"spacevllm serve: http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    try:
        serve.launch(app, host=args.host, port=args.port, max_file_size=args.max_file_size)
    except OSError as err:  # port taken, address not on this machine
        raise SpaceVLLMError(f"--host {args.host} --port {args.port}: cannot serve there ({err})") from None
    return 0
