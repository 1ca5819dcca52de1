"""The documentation site's two helpers (mkdocs.yml names both):

* a mkdocs hook: pages from outside ``docs/`` (the README as the home page, the READMEs of
  ``benchmarks/`` and ``data/``, and a page for each source file a page links to), and links
  between them rewritten to the site's paths, so that one Markdown source reads right on
  GitHub and on the site, and ``mkdocs build --strict`` checks every link;
* a griffe extension, :class:`SphinxRoles`: the docstrings' reST roles (``:class:`~x.Y```)
  become links to the API reference where the target is documented there, and code where it
  is not (a private module), instead of raw role markup.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

OUTSIDE = {
    "README.md": "index.md",
    "benchmarks/README.md": "benchmarks.md",
    "data/README.md": "data.md",
}
"""Markdown files outside docs/ that are pages of the site: repository path -> site path."""

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)", re.M)


# -- the mkdocs hook -------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for repo_path, site_path in OUTSIDE.items():
        files.append(File.generated(config, site_path, content=(ROOT / repo_path).read_text()))
    for source in sorted(set(_linked_sources())):
        files.append(File.generated(config, _source_page(source), content=_code_page(source)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    here = _repo_path(page.file.src_uri)
    if here is None:
        return markdown
    return _outside_code(
        markdown, lambda text: _LINK.sub(lambda m: _relinked(m, here, page.file.src_uri), text)
    )


def _repo_path(src_uri: str) -> str | None:
    """Where a page's Markdown lives in the repository (``None``: a generated code page)."""
    for repo_path, site_path in OUTSIDE.items():
        if src_uri == site_path:
            return repo_path
    if src_uri.startswith("source/"):
        return None
    return f"docs/{src_uri}"


def _site_path(repo_path: str) -> str | None:
    if repo_path in OUTSIDE:
        return OUTSIDE[repo_path]
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    if (ROOT / repo_path).is_file() and not repo_path.endswith(".md"):
        return _source_page(repo_path)
    return None  # left as written: mkdocs reports it if it is broken


def _relinked(match: re.Match[str], here: str, src_uri: str) -> str:
    target, hash_, anchor = match.group(1).partition("#")
    if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):  # an anchor, a URL, mailto:
        return match.group(0)
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(here), target))
    site = _site_path(repo_path)
    if site is None:
        return match.group(0)
    relative = posixpath.relpath(site, posixpath.dirname(src_uri) or ".")
    return f"]({relative}{hash_}{anchor})"


def _outside_code(markdown: str, change: Callable[[str], str]) -> str:
    """``change`` applied to the text between fenced code blocks, not inside them."""
    parts = _FENCE.split(markdown)
    out, inside = [], False
    for part in parts:
        if part in ("```", "~~~"):
            inside = not inside
            out.append(part)
        else:
            out.append(part if inside else change(part))
    return "".join(out)


def _linked_sources() -> Iterator[str]:
    """Source files (not Markdown) that the site's pages link to, by repository path."""
    pages = [
        *OUTSIDE,
        *(f"docs/{p.relative_to(ROOT / 'docs')}" for p in (ROOT / "docs").rglob("*.md")),
    ]
    for page in pages:
        for match in _LINK.finditer((ROOT / page).read_text()):
            target = match.group(1).partition("#")[0]
            if not target or ":" in target or target.endswith(".md"):
                continue
            repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
            if (ROOT / repo_path).is_file():
                yield repo_path


def _source_page(repo_path: str) -> str:
    return f"source/{repo_path}.md"


def _code_page(repo_path: str) -> str:
    language = {".py": "python", ".toml": "toml", ".ini": "ini", ".json": "json"}.get(
        Path(repo_path).suffix, "text"
    )
    return f"# `{repo_path}`\n\n````{language}\n{(ROOT / repo_path).read_text()}````\n"


# -- the griffe extension --------------------------------------------------------------------

try:
    import griffe
except ImportError:  # pragma: no cover - only mkdocstrings loads this part
    griffe = None  # type: ignore[assignment]

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj):`(~?)([^`<]+?)\s*(?:<([^>`]+)>)?`"
)
_RENDERED = re.compile(r"^::: (\S+)", re.M)


def _rendered_roots() -> list[str]:
    """What the API reference pages render (``::: eventlab.MongoEventStore``): an identifier
    is documented if it is one of these or a member of one."""
    pages = (ROOT / "docs" / "reference").glob("*.md")
    return [root for page in pages for root in _RENDERED.findall(page.read_text())]


class SphinxRoles(griffe.Extension if griffe else object):  # type: ignore[misc]
    """reST roles in docstrings as links (documented targets) or code (the others)."""

    def on_package(self, *, pkg: Any, **kwargs: Any) -> None:
        roots = _rendered_roots()
        for obj in _objects(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _ROLE.sub(
                    lambda m, obj=obj: _role(m, obj, pkg, roots), obj.docstring.value
                )


def _objects(obj: Any) -> Iterator[Any]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _role(match: re.Match[str], where: Any, pkg: Any, roots: list[str]) -> str:
    short, text, explicit = match.group(1), match.group(2).strip(), match.group(3)
    target = (explicit or text).strip()
    shown = text.rsplit(".", 1)[-1] if short else text
    if explicit:
        shown = text
    for candidate in _candidates(target, where):
        identifier = _documented(candidate, pkg, roots)
        if identifier is not None:
            return f"[`{shown}`][{identifier}]"
    return f"`{shown}`"


def _candidates(target: str, where: Any) -> Iterator[str]:
    if target.startswith("eventlab"):
        yield target
        return
    scope = where if where.is_module or where.is_class else where.parent
    while scope is not None:
        yield f"{scope.path}.{target}"
        scope = scope.parent
    yield f"eventlab.{target}"


def _documented(path: str, pkg: Any, roots: list[str]) -> str | None:
    """The identifier under which the reference renders ``path``, if it does: the path
    itself, or the one it is found at, without its private modules
    (``eventlab._core.records.StoredEvent`` -> ``eventlab.StoredEvent``)."""
    found = _lookup(path, pkg)
    if found is None or not found.docstring:
        return None
    for parts in (path.split("."), found.path.split(".")):
        public = ".".join(part for part in parts if not part.startswith("_"))
        rendered = any(public == root or public.startswith(f"{root}.") for root in roots)
        if rendered and _lookup(public, pkg) is not None:
            return public
    return None


def _lookup(path: str, pkg: Any) -> Any:
    parts = path.split(".")
    if parts[0] != pkg.name:
        return None
    obj = pkg
    for part in parts[1:]:
        try:
            obj = obj.members[part]
            if obj.is_alias:
                obj = obj.final_target
        except Exception:  # not a member, or an alias that leads nowhere
            return None
    return obj
