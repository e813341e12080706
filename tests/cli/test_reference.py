"""The command line reference of the docs site is generated from the parsers: every command and every option
`--help` shows is in it, in its command's section, and the site's page really takes it (the marker is there)."""

from __future__ import annotations

import argparse
import importlib.util
import re
from types import SimpleNamespace

import pytest

from replay.cli._main import COMMANDS, build_parser
from replay.cli._reference import cli_markdown, subcommands, visible_options
from tests.common.paths import ROOT


def _hook():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_hooks_generated", ROOT / "docs" / "_hooks" / "generated.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _page(src_uri: str) -> str:
    """A docs page as the site builds it: its Markdown after the hook filled the generated part."""
    page = SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))
    return _hook().on_page_markdown((ROOT / "docs" / src_uri).read_text(), page=page, config=None, files=None)


def _sections(markdown: str) -> dict[str, str]:
    """Each command's section (``## run-all``, ``### triage ingest``) up to the next heading."""
    parts = re.split(r"^#{2,3} ", markdown, flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command and every subcommand of a command (``triage ingest``), by the name its section has."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for name, sub in subcommands(parser).items():
            found[f"{prefix}{name}"] = sub
            walk(f"{prefix}{name} ", sub)

    walk("", build_parser())
    return found


ALL = _all_parsers()


def test_every_command_has_a_section_in_the_built_page() -> None:
    sections = _sections(_page("reference/cli.md"))
    assert list(COMMANDS) == [name for name in sections if name in COMMANDS]
    assert set(ALL) <= set(sections) and len(ALL) > len(COMMANDS)  # triage's subcommands too


@pytest.mark.parametrize("command", list(ALL))
def test_every_option_of_a_command_is_in_its_section(command: str) -> None:
    section = _sections(_page("reference/cli.md"))[command]
    parser = ALL[command]
    options = [a for a in visible_options(parser) if not isinstance(a, argparse._SubParsersAction)]
    if subcommands(parser):  # a command made of subcommands: each has its own section
        assert all(f"{command} {name}" in ALL for name in subcommands(parser))
    else:
        assert options, command
    for action in options:
        for name in action.option_strings or [action.metavar or action.dest]:
            assert f"`{name}" in section, f"{command}: {name} missing from the reference"
        if action.help and action.option_strings:  # its help text too (whitespace folded)
            first_words = " ".join(action.help.split())[:30].split("%(")[0]
            assert first_words.replace("|", "\\|") in section, f"{command}: help of {action.option_strings}"
    assert "Example:" in section and "Exit codes:" in section, command


def test_hidden_aliases_and_old_command_names_stay_out() -> None:
    markdown = cli_markdown()
    assert "## replay\n" not in markdown  # the old name of `live`, still accepted


def test_the_page_without_its_marker_fails_the_build() -> None:
    page = SimpleNamespace(file=SimpleNamespace(src_uri="reference/cli.md"))
    with pytest.raises(ValueError, match="marker"):
        _hook().on_page_markdown("# Command line reference\n", page=page, config=None, files=None)
