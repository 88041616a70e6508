"""The ``mlchaos`` command line.

Subcommands are loaded lazily: ``mlchaos --help`` lists them from the table
below without importing any of them, so help and version answer in the time
it takes to start Python and click.  Each subcommand lives in its own module
(``mlchaos.cli.<name>``) and exposes either a typer app (a command group) or a
plain function (a single command).
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from mlchaos import __version__

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("mlchaos.cli.run", "run", "Run an experiment and print its verdict."),
    "validate": ("mlchaos.cli.validate", "validate", "Check experiment files; print FILE:LINE:COL errors."),
    "schema": ("mlchaos.cli.validate", "schema", "Print the experiment JSON Schema (for editor completion)."),
    "journal": ("mlchaos.cli.journal", "journal", "Summarise a run journal (also an unfinished one)."),
    "report": ("mlchaos.cli.report", "report", "Render an HTML/JSON/JUnit report from journals."),
    "stop": ("mlchaos.cli.stop", "stop", "Remove every active fault on this machine and refuse new runs."),
    "demo": ("mlchaos.cli.demo", "demo", "Run the classic ML chaos scenarios on the lab, naive vs mitigated."),
    "init": ("mlchaos.cli.init", "init", "Scaffold an experiment for your own HTTP service."),
    "plugins": ("mlchaos.cli.plugins", "plugins", "List the registered faults, probes and targets."),
    "proxy": ("mlchaos.cli.proxy", "proxy", "Run the fault proxy in front of a TCP/HTTP upstream."),
    "load": ("mlchaos.cli.load", "load", "Drive open-loop HTTP load and report trustworthy latency."),
    "lab": ("mlchaos.cli.lab", "app", "Start, inspect and stop the built-in ML lab systems."),
    "k8s": ("mlchaos.cli.k8s", "app", "Render the Chaos Mesh objects of an experiment; clean up this machine's."),
    "examples": ("mlchaos.cli.examples", "app", "List the shipped example experiments, or copy them out to edit."),
}


class LazyGroup(TyperGroup):
    """A click group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    _formatting_help = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # click asks for every command object to list them in the top-level help: answer with stubs
        # while (and only while) the help is being written, so no subcommand module is imported
        self._formatting_help = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._formatting_help = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._formatting_help:
            return _stub(cmd_name)
        module, attr, _ = COMMANDS[cmd_name]
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("mlchaos.cli"):
                return _unavailable(cmd_name)
            raise
        if isinstance(obj, typer.Typer):
            cmd: Any = typer.main.get_command(obj)
        else:
            sub = typer.Typer(add_completion=False)
            sub.command(name=cmd_name)(obj)
            cmd = typer.main.get_command(sub)
        cmd.name = cmd_name
        return _plain(cmd)


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_words(text: str | None) -> str | None:
    """Docstrings are written for Sphinx; a person reading ``--help`` or a script's output wants plain words.

    ``x`` becomes x and :class:`~pkg.mod.Name` becomes Name.
    """
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).find("~") > 0 else m.group(1), text)
    return _LITERAL.sub(r"\1", text)


def _plain_metavar(param: Any) -> None:
    """PATH, TEXT, INTEGER, EXPERIMENT...: the metavars of every Unix tool, not Python type names."""
    if getattr(param, "param_type_name", "") == "argument":
        name = param.metavar or (param.name or "arg").upper()
        param.metavar = name
        dots = "..." if param.nargs != 1 else ""
        shown = name + dots if param.required else f"[{name}]{dots}"
        # typer appends "<type>" to an argument's name and braces it in the usage line: plain instead
        param.display_type_rich = lambda ctx: None
        param.get_usage_pieces = lambda ctx: [shown]
        return
    if param.metavar is not None or getattr(param, "is_flag", False) or getattr(param, "count", False):
        return
    try:
        label = str(param.display_type(None)).strip("<>")
    except Exception:  # a type typer cannot describe without a context: keep its own display
        return
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        param.metavar = "[" + label + "]"
        return
    param.metavar = _TYPE_NAMES.get(label.lower(), label.upper())


_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "bool": "BOOLEAN"}


def _plain(cmd: Any) -> Any:
    """Plain click help for a command and its sub-commands, at every depth.

    Typer's rich help draws boxes at 80 columns and shows ``<bool>``/``<list[str]>`` placeholders
    that mean nothing to a person; click's own help shows the metavars people know (PATH, TEXT).
    ``-h`` is inherited from the root context's help option names.
    """
    cmd.rich_markup_mode = None
    cmd.help = plain_words(cmd.help)
    cmd.short_help = plain_words(cmd.short_help)
    for param in getattr(cmd, "params", []):
        if getattr(param, "help", None):
            param.help = plain_words(param.help)
        _plain_metavar(param)
    for sub in getattr(cmd, "commands", {}).values():
        _plain(sub)
    return cmd


def _stub(name: str) -> TyperCommand:
    return TyperCommand(name, help=COMMANDS[name][2], short_help=COMMANDS[name][2])


def _unavailable(name: str) -> TyperCommand:
    def cb() -> None:
        print(f"mlchaos {name}: not available in this build", file=sys.stderr)
        raise SystemExit(2)

    return TyperCommand(name, callback=cb, help=COMMANDS[name][2] + " (not available)")


app = typer.Typer(
    cls=LazyGroup,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    help="Chaos engineering for ML systems: steady-state hypothesis, controlled fault, honest verdict.",
)


def _version(value: bool) -> None:
    if value:
        print(f"mlchaos {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Chaos engineering for ML systems."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return app(args=argv, prog_name="mlchaos")
