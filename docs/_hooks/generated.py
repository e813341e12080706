"""mkdocs hook: fills the generated parts of the docs at build time, so they can never go stale.

- ``reference/cli.md``: the command line reference, from the commands' parsers (``replay.cli._reference``);
- ``reference/errors.md``: the exception tree, from the classes under ``recorder.errors.NakamaReplayError``.

Each page holds a marker comment where the generated Markdown goes; a page whose marker is missing fails the
build (``mkdocs build --strict`` runs in ``.ci/run``)."""

from __future__ import annotations

import inspect

MARKERS = {
    "reference/cli.md": "<!-- generated: cli reference -->",
    "reference/errors.md": "<!-- generated: exception tree -->",
}


def on_page_markdown(markdown, page, config, files):  # mkdocs' hook signature
    marker = MARKERS.get(page.file.src_uri)
    if marker is None:
        return markdown
    if marker not in markdown:
        raise ValueError(f"{page.file.src_uri}: the marker {marker} is missing")
    return markdown.replace(marker, GENERATORS[page.file.src_uri]())


def cli_reference() -> str:
    from replay.cli._reference import cli_markdown

    return cli_markdown()


def exception_tree() -> str:
    """A nested list of every error class, where it is defined, its first docstring line, and the exit
    status the command line gives it."""
    import recorder.errors
    import replay.errors  # noqa: F401  (defines the rest of the tree)
    from recorder.errors import IncompleteRecording

    def exit_of(cls: type) -> str:
        return "3" if issubclass(cls, IncompleteRecording) else "2"

    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0]
        doc = " ".join(doc.split())
        bases = [b.__name__ for b in cls.__bases__ if b.__module__ == "builtins" and b is not Exception]
        also = "".join(f" (also {'an' if b[0] in 'AEIOU' else 'a'} `{b}`)" for b in bases)
        lines.append(f"{'    ' * depth}- **`{cls.__name__}`**{also}, `{cls.__module__}`, exit {exit_of(cls)}: {doc}")
        for sub in sorted(cls.__subclasses__(), key=lambda c: (c.__module__, c.__name__)):
            if sub.__module__.startswith(("recorder", "replay")):
                walk(sub, depth + 1)

    walk(recorder.errors.NakamaReplayError, 0)
    return "\n".join(lines) + "\n"


GENERATORS = {"reference/cli.md": cli_reference, "reference/errors.md": exception_tree}
