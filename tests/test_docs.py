"""The documentation: the generated reference pages are current and complete, the site builds with no
broken link or anchor, the README's and the pages' own links resolve, and the plugin guide's example
passes ``mypy --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from gateway import docgen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


# ------------------------------------------------------------------ generated pages


def test_the_generated_pages_are_current() -> None:
    # In a fresh interpreter: other tests register plugin capabilities in this one, and those are not part
    # of the shipped reference.
    out = subprocess.run([sys.executable, "-m", "gateway.docgen", "--check", "--docs", str(DOCS)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, f"{out.stderr.strip()}\n(regenerate with `{docgen.REGENERATE}`)"


def test_every_public_name_of_the_sdk_is_documented() -> None:
    missing = docgen.undocumented()
    assert not missing, ("public names of gateway.sdk without a description (a docstring, or a `#:` comment "
                         "above a field or constant):\n" + "\n".join(missing))


def test_every_config_key_is_described() -> None:
    missing = docgen.undocumented_config()
    assert not missing, "config keys without a `#:` comment or Field(description=...):\n" + "\n".join(missing)


def test_every_route_is_in_the_http_reference_with_a_description(tmp_path: Path) -> None:
    from gateway.api.auth import TokenStore
    from tests.gateway.test_api import _make_hub
    from tests.gateway.test_routes_auth import _routes, full_app

    # The app as the route tests build it (they check that it has every route-adding function).
    served = {(m, p) for m, p in _routes(full_app(_make_hub(), TokenStore(tmp_path / "tokens.json")))
              if m != "HEAD"}
    documented = {(m, p) for m, p, _ in docgen.http_routes()}
    assert documented == served
    assert not docgen.undocumented_routes(), f"handlers without a docstring: {docgen.undocumented_routes()}"
    page = (DOCS / "http-api.md").read_text(encoding="utf-8")
    assert all(f"`{m} {p}`" in page for m, p in served)


def test_the_sdk_reference_names_every_public_name() -> None:
    import gateway.sdk

    page = (DOCS / "sdk.md").read_text(encoding="utf-8")
    assert [name for name in gateway.sdk.__all__ if f"### `{name}`" not in page] == []
    # The fields the plugin guide relies on are there, with their meaning.
    for needle in ("| `device_id` |", "| `expected` |", "`confirmed`", "`unavailable`", "| `suggested_area` |"):
        assert needle in page, needle


# ------------------------------------------------------------------ the site and its links


def test_the_site_builds_with_no_broken_link(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed (the test extras have it)")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "sdk.html").is_file()


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without code blocks and inline code (links there are examples, not links)."""
    return _CODE.sub("", _FENCE.sub("", text))


def _slugs(heading: str) -> set[str]:
    """The anchors a heading gets: GitHub's (for the README) and Python-Markdown's (for the site)."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    github = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    markdown = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip().lower())
    return {github, markdown}


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = {slug for heading in _HEADING.findall(_FENCE.sub("", text)) for slug in _slugs(heading)}
    return found | set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))


def broken_links(page: Path) -> list[str]:
    """Relative links of a Markdown file whose file or ``#anchor`` does not exist."""
    broken = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading for #{anchor} in {resolved.name}")
    return broken


@pytest.mark.parametrize("page", [ROOT / "README.md", ROOT / "profiles" / "README.md", *sorted(DOCS.glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n## The `x` part: here\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#the-x-part-here) [ok](#b) `[skip](nowhere.md)`\n# B\n"
                    "[bad](a.md#nope) [bad](missing.md)\n", encoding="utf-8")
    assert [b.split(":")[0] for b in broken_links(page)] == ["a.md#nope", "missing.md"]


def test_the_readme_lists_the_reference_pages() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("sdk.md", "config.md", "http-api.md", "capabilities.md", "profile-language.md", "plugins.md"):
        assert f"](docs/{page})" in readme, page


# ------------------------------------------------------------------ the plugin guide's example


def test_the_plugin_examples_pass_mypy_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed (the test extras have it)")
        pytest.skip("mypy is not installed")
    blocks = re.findall(r"^```python\n(.*?)^```", (DOCS / "plugins.md").read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) >= 2
    files = []
    for index, block in enumerate(blocks):
        if "class AcmeAdapter" in block:
            # ...and the adapter is an Adapter, as the gateway's protocol says.
            block += "\n\nfrom gateway.sdk import Adapter\n\nadapter: Adapter = AcmeAdapter()\n"
        path = tmp_path / f"example_{index}.py"
        path.write_text(block, encoding="utf-8")
        files.append(str(path))
    assert any("adapter: Adapter" in Path(f).read_text() for f in files)
    # The SDK from this work tree (an editable install is invisible to mypy); only the examples' own
    # errors are reported.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    for path in files:
        out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
                              "--cache-dir", os.devnull, path], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, f"{Path(path).name}:\n{out.stdout}{out.stderr}"
