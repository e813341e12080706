"""The docs site and the short README: what the pages promise and what the README links to."""

from __future__ import annotations

import importlib.util
import re
from types import SimpleNamespace

from tests.common.paths import ROOT

DOCS = ROOT / "docs"


def _slug(heading: str) -> str:
    """The anchor mkdocs' toc extension gives a heading (its default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: str) -> set[str]:
    text = (DOCS / page).read_text()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_readme_is_short_and_keeps_its_quickstart() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024
    quickstart = readme[readme.index("## Quickstart") :]
    block = re.search(r"```bash\n(.*?)```", quickstart, re.S).group(1)  # type: ignore[union-attr]
    assert block.splitlines() == [
        'python -m pip install -e ".[test]"',
        "nakama-replay reproduce fixtures/recordings/arena-reconnect-crash.nkrec --handler fixtures/handlers/arena.py",
        "python -m pytest",
    ]


def test_readme_links_into_the_docs_resolve() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", (ROOT / "README.md").read_text())
    assert len(links) >= 15
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), path
        if anchor:
            assert anchor in _anchors(str(target.relative_to(DOCS))), f"{path}#{anchor}"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert pages, "no pages"
    for page in pages:
        assert f": {page}\n" in nav, f"{page} is not in mkdocs.yml's nav"


def test_exception_tree_page_names_every_error_class() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks_generated", DOCS / "_hooks" / "generated.py")
    hook = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(hook)  # type: ignore[union-attr]
    page = SimpleNamespace(file=SimpleNamespace(src_uri="reference/errors.md"))
    text = hook.on_page_markdown((DOCS / "reference/errors.md").read_text(), page=page, config=None, files=None)

    import recorder.errors
    import replay.errors

    classes = [
        obj
        for module in (recorder.errors, replay.errors)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, recorder.errors.NakamaReplayError)
    ]
    assert len(classes) >= 20
    for cls in classes:
        assert f"**`{cls.__name__}`**" in text, cls.__name__
    assert "**`IncompleteRecording`**, `recorder.errors`, exit 3" in text
    assert "**`CorruptRecording`**, `recorder.errors`, exit 2" in text


def test_no_line_turns_into_a_quote_by_accident() -> None:
    """A wrapped line that starts with ``>`` (``>= 1``) renders as a block quote: none outside code blocks."""
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        quoted = [line for line in text.splitlines() if line.startswith(">")]
        assert not quoted, f"{page.name}: {quoted}"
