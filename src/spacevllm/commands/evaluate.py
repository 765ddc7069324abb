"""``spacevllm evaluate {stvg,vtg,rec,run}``: score predictions with the official metrics.

Each benchmark lives in ``spacevllm.commands.evaluate_<name>`` (``add_arguments(parser)`` and ``run(args) -> int``)
and is imported only when it is the one being run (:class:`spacevllm.commands.LazyCommandParser`: ``evaluate vtg``
must not pay for the model that ``evaluate run`` imports).
"""

from __future__ import annotations

import argparse

from spacevllm.commands import add_lazy_commands

# name -> (module, one-line help)
SUBCOMMANDS = {
    "stvg": (
        "spacevllm.commands.evaluate_stvg",
        "spatio-temporal video grounding (HC-STVG v1/v2, VidSTG): m_tIoU, m_vIoU, vIoU@0.3/0.5",
    ),
    "vtg": ("spacevllm.commands.evaluate_vtg", "video temporal grounding (Charades-STA): R1@0.3/0.5/0.7, mIoU"),
    "rec": ("spacevllm.commands.evaluate_rec", "referring expression comprehension: Acc@0.5"),
    "run": ("spacevllm.commands.evaluate_run", "run a model over Uni-STG records and score it"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_lazy_commands(parser, SUBCOMMANDS, "benchmark", "_evaluate", "BENCHMARK")
    parser.set_defaults(_evaluate_parser=parser)


def run(args) -> int:
    if getattr(args, "_evaluate", None) is None:
        args._evaluate_parser.print_help()
        return 2
    return int(args._evaluate(args) or 0)
