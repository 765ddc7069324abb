"""CLI sub-commands: each module has ``add_arguments(parser)`` and ``run(args) -> int``.

Sub-commands are dispatched lazily (:class:`LazyCommandParser`): only the module of the command being run is
imported. Start-up time is the reason: importing every command module to build the parser imports torch and
transformers, which made ``spacevllm --help`` take 3.5 s on the 2-core CPU (torch 2.7 s of it, ``python -X
importtime``); ``evaluate vtg`` likewise need not import the model that ``evaluate run`` uses.
"""

from __future__ import annotations

import argparse
import importlib


class LazyCommandParser(argparse.ArgumentParser):
    """A sub-command parser that imports its command module, and adds that module's arguments, only when it is
    used: when it parses its part of the command line or prints its help (module docstring: why).

    ``module`` (``spacevllm.commands.<name>``, with ``add_arguments(parser)`` and ``run(args)``) and ``run_dest``
    (the namespace attribute that receives ``module.run``) are given through ``add_parser``; sub-parsers of this
    parser are lazy the same way.
    """

    def __init__(self, *args, module: str | None = None, run_dest: str = "_run", **kwargs):
        super().__init__(*args, **kwargs)
        self._module, self._run_dest = module, run_dest

    def _load(self) -> None:
        if self._module is None:
            return
        mod, self._module = importlib.import_module(self._module), None
        mod.add_arguments(self)
        describe_subcommands(self)
        self.set_defaults(**{self._run_dest: mod.run})

    def parse_known_args(self, args=None, namespace=None):
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def add_lazy_commands(parser: argparse.ArgumentParser, commands: dict, dest: str, run_dest: str, metavar: str):
    """One :class:`LazyCommandParser` per ``commands`` entry ``name -> (module, one-line help)``; the chosen
    name goes to ``dest``, the chosen module's ``run`` to ``run_dest``. Returns the sub-parsers action."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=LazyCommandParser)
    for name, (module, help_) in commands.items():
        sub.add_parser(name, help=help_, description=help_, module=module, run_dest=run_dest)
    return sub


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every nested sub-command without a description its one-line help as ``--help`` description."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
