"""The ``spacevllm`` command line.

``DESCRIPTION`` is what ``spacevllm --help`` shows; no command at all prints the help on stderr and exits 2.
Each sub-command lives in ``spacevllm.commands.<module>`` and exposes ``add_arguments(parser)``
and ``run(args) -> int``. A :class:`~spacevllm.errors.SpaceVLLMError` becomes one line on stderr and a
non-zero exit code.

Only the module of the sub-command being run is imported (:class:`spacevllm.commands.LazyCommandParser`), so
each command module imports what it needs at its top. The reason is start-up time: the command modules between
them import torch and transformers, and importing all of them to build the parser made ``spacevllm --help`` take
3.5 s on the 2-core CPU (torch alone 2.7 s of it, ``python -X importtime``); with lazy dispatch it imports neither.
"""

from __future__ import annotations

import argparse
import os
import sys

from spacevllm import __version__
from spacevllm.commands import add_lazy_commands
from spacevllm.errors import SpaceVLLMError

DESCRIPTION = (
    "SpaceVLLM: spatio-temporal video grounding with a video LLM. Ground a query in a video (or an image), try "
    "the bundled demo, train, evaluate, convert checkpoints and build training data."
)

# name -> (module, one-line help)
COMMANDS = {
    "demo": ("spacevllm.commands.demo", "ground a query on the bundled sample video with the default model"),
    "ground": ("spacevllm.commands.ground", "ground a query in a video: time range + one box per frame"),
    "serve": ("spacevllm.commands.serve", "the web demo: upload a video, type a query, see the boxes (needs gradio)"),
    "evaluate": ("spacevllm.commands.evaluate", "score predictions with the official STVG / VTG / REC metrics"),
    "convert": ("spacevllm.commands.convert", "convert a LLaVA-OneVision / LLaVA-Video checkpoint to SpaceVLLM"),
    "train": ("spacevllm.commands.train", "multi-task training on accelerate from a YAML config"),
    "synth-world": ("spacevllm.commands.synth_world", "generate the synthetic spatio-temporal world"),
    "unistg": ("spacevllm.commands.unistg", "Uni-STG data synthesis (analyzer, annotator, refiner, filter)"),
    "mixture": ("spacevllm.commands.mixture", "the Table 1 training mixture; source datasets -> Uni-STG records"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one (lazy) sub-parser per command."""
    parser = argparse.ArgumentParser(prog="spacevllm", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"spacevllm {__version__}")
    add_lazy_commands(parser, COMMANDS, "command", "_run", "COMMAND")
    return parser


def _quiet_libraries() -> None:
    """No download/loading progress bars or advisory logs from transformers on the CLI's stderr.

    transformers reads the environment variables when it is first imported, so commands that never load a
    model do not pay for importing it here; if it is already imported (``main`` called in-process), its
    logging is switched directly.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 on success)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader of stdout went away (`spacevllm ... | head`): stop quietly, as other command-line tools do,
        # and point stdout at /dev/null so that the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the signal


def _main(argv: list[str] | None) -> int:
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)  # no command: usage, and the exit code of a usage error
        return 2
    try:
        return int(args._run(args) or 0)
    except SpaceVLLMError as e:
        print(f"spacevllm {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"spacevllm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
