"""The ``spacevllm`` command line.

``DESCRIPTION`` is what ``spacevllm --help`` shows. Each sub-command lives in ``spacevllm.commands.<module>``
and exposes ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so ``spacevllm
--help`` stays fast. A :class:`~spacevllm.errors.SpaceVLLMError` becomes one line on stderr and a non-zero exit
code; no command at all prints the help on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

DESCRIPTION = (
    "SpaceVLLM: spatio-temporal video grounding with a video LLM. Ground a query in a video (or an image), try "
    "the bundled demo, train, evaluate, convert checkpoints and build training data."
)

# name -> (module, one-line help)
COMMANDS = {
    "demo": ("spacevllm.commands.demo", "ground a query on the bundled sample video with the default model"),
    "ground": ("spacevllm.commands.ground", "ground a query in a video: time range + one box per frame"),
    "evaluate": ("spacevllm.commands.evaluate", "score predictions with the official STVG / VTG / REC metrics"),
    "convert": ("spacevllm.commands.convert", "convert a LLaVA-OneVision / LLaVA-Video checkpoint to SpaceVLLM"),
    "train": ("spacevllm.commands.train", "multi-task training on accelerate from a YAML config"),
    "synth-world": ("spacevllm.commands.synth_world", "generate the synthetic spatio-temporal world"),
    "unistg": ("spacevllm.commands.unistg", "Uni-STG data synthesis (analyzer, annotator, refiner, filter)"),
    "mixture": ("spacevllm.commands.mixture", "the Table 1 training mixture; source datasets -> Uni-STG records"),
}


def _available():
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            yield name, module, help_


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available command."""
    from spacevllm import __version__

    parser = argparse.ArgumentParser(prog="spacevllm", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"spacevllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in _available():
        p = sub.add_parser(name, help=help_, description=help_)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    _describe_subcommands(parser)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every nested sub-command without a description its one-line help as ``--help`` description."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
                _describe_subcommands(sub)


def _quiet_libraries() -> None:
    """No download/loading progress bars or advisory logs from transformers on the CLI's stderr.

    transformers reads the environment variables when it is first imported, so commands that never load a
    model do not pay for importing it here; if it is already imported (``main`` called in-process), its
    logging is switched directly.
    """
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 on success)."""
    from spacevllm.errors import SpaceVLLMError

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
