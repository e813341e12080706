"""The command line reference as Markdown, built from the parsers themselves (one source of truth: the
docs site's ``reference/cli.md`` is generated from this at build time, ``docs/_hooks/generated.py``).

``python -m replay.cli._reference`` prints it."""

from __future__ import annotations

import argparse

__all__ = ["cli_markdown", "subcommands", "visible_options"]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The listed commands of ``parser`` (hidden old names left out), in ``--help`` order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {choice.dest for choice in action._choices_actions}
            return {name: p for name, p in action.choices.items() if name in listed}
    return {}


def visible_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and arguments ``--help`` shows (hidden aliases and ``-h`` left out)."""
    return [a for a in parser._actions if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        metavar = " " + (action.metavar if isinstance(action.metavar, str) else action.dest.upper())
    return ", ".join(f"`{o}{metavar}`" for o in action.option_strings)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    text = formatter._expand_help(action) if action.help else ""
    return _cell(text)


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """Every command with its summary, usage, description, options (with defaults), examples and exit codes."""
    from replay.cli._main import build_parser

    parser = parser or build_parser()
    commands = subcommands(parser)
    out: list[str] = []
    out.append("| command | what it does |\n|---|---|")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                out.append(f"| [`{choice.dest}`](#{choice.dest}) | {_cell(choice.help or '')} |")
    out.append("")
    out.append("Options every command takes: `-h, --help`; `nakama-replay --version` prints the version.\n")
    for name, sub in commands.items():
        _command(out, name, sub, "##")
    return "\n".join(out).rstrip() + "\n"


def _command(out: list[str], name: str, parser: argparse.ArgumentParser, level: str) -> None:
    """One command's section; a command with subcommands of its own (``triage ingest``) gets one
    subsection per subcommand."""
    out.append(f"{level} {name}\n")
    out.append("```text\n" + parser.format_usage().strip() + "\n```\n")
    if parser.description:
        out.append("```text\n" + parser.description.strip() + "\n```\n")
    options = [a for a in visible_options(parser) if not isinstance(a, argparse._SubParsersAction)]
    if options:
        out.append("| option | meaning |\n|---|---|")
        for action in options:
            out.append(f"| {_names(action)} | {_help_text(parser, action)} |")
        out.append("")
    if parser.epilog:
        out.append("```text\n" + parser.epilog.strip() + "\n```\n")
    for sub_name, sub in subcommands(parser).items():
        _command(out, f"{name} {sub_name}", sub, level + "#")


if __name__ == "__main__":
    print(cli_markdown(), end="")
