"""A griffe extension for the API reference: the reST bits of our numpydoc docstrings as Markdown.

The docstrings follow numpydoc (read by ``help()``, IDEs and Sphinx users), so they write math as
``.. math::`` blocks and ``:math:`...``` roles, and cross-references as ``:func:`...```.
mkdocstrings renders docstrings as Markdown, so before they are parsed this rewrites

- a ``.. math::`` directive and its indented body into a ``$$ ... $$`` block (pymdownx.arithmatex),
- ``:math:`t``` into ``$t$``,
- ``:func:`f```, ``:class:`c```, ``:mod:`m```, ``:meth:`m```, ``:data:`d``` into code spans.

The docstrings in the source are not changed.
"""

from __future__ import annotations

import re
import textwrap

import griffe

_ROLE_MATH = re.compile(r":math:`([^`]+)`")
_ROLE_REF = re.compile(r":(?:func|class|mod|meth|data|attr|obj):`~?([^`]+)`")


def _math_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(stripped)]
            first = stripped[len(".. math::"):].strip()
            body = [first] if first else []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
                body.append(lines[i])
                i += 1
            formula = textwrap.dedent("\n".join(body)).strip("\n")
            out += [indent + "$$", *(indent + f for f in formula.splitlines()), indent + "$$", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with its reST math and cross-reference roles as Markdown."""
    text = _math_blocks(text)
    text = _ROLE_MATH.sub(lambda m: f"${m.group(1)}$", text)
    return _ROLE_REF.sub(lambda m: f"`{m.group(1)}`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
