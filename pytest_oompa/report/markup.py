"""HTML as a tree: build elements with :func:`el`, turn them into text with :func:`to_html`.

Most of what the report shows is agent output (replies, error snippets, stderr, task ids), so
escaping must not depend on remembering an escape call at every interpolation. The page is built
as :mod:`xml.etree.ElementTree` elements, as pytest's junitxml builds its XML, and only
:func:`to_html` turns them into text: it escapes every text node and every attribute value, the
one place in the report that does.

ElementTree's own ``method="html"`` writer would do, but it leaves quotes in text and ``<`` in
attribute values as they are; this writer escapes both exactly as :func:`html.escape` does, so
a value reads the same wherever it lands. It also checks what an element tree cannot: tag and
attribute names are plain names, void elements stay empty, and the raw text of ``<script>`` and
``<style>`` (the package's own static files, never artifact text) cannot end its element early.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias
from xml.etree.ElementTree import Element

__all__ = ["Attrs", "Child", "Element", "add", "document", "el", "to_html"]

#: An attribute value: None or False leaves the attribute out, True writes a bare boolean one.
AttrValue: TypeAlias = str | int | float | bool | None
Attrs: TypeAlias = Mapping[str, AttrValue]
#: Content of an element: text, an element, nothing (None), or a sequence of those.
Child: TypeAlias = "str | Element | Iterable[Child] | None"

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_RAW_TEXT = frozenset({"script", "style"})
_BOOLEAN = frozenset({"hidden", "open", "disabled", "checked"})
_NAME = re.compile(r"[a-z][a-z0-9-]*")


def el(tag: str, *content: Attrs | Child) -> Element:
    """``<tag>`` with its attributes (a mapping, when it comes first) and its children.

    ``el("a", {"href": "#x", "class": "bar"}, "text ", el("b", "bold"), " more")``.
    """
    attrs: Attrs = {}
    if content and isinstance(content[0], Mapping):
        attrs, content = content[0], content[1:]
    node = Element(tag)
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        node.set(name, "" if value is True else str(value))
    for child in content:
        if isinstance(child, Mapping):
            raise TypeError(f"<{tag}>: attributes must come first")
        add(node, child)
    return node


def add(parent: Element, *children: Child) -> Element:
    """Append children to ``parent`` (text goes to its text or its last child's tail)."""
    for child in children:
        if child is None or child == "":
            continue
        if isinstance(child, str):
            if len(parent):
                last = parent[-1]
                last.tail = (last.tail or "") + child
            else:
                parent.text = (parent.text or "") + child
        elif isinstance(child, Element):
            parent.append(child)
        else:
            add(parent, *child)
    return parent


def to_html(node: Element) -> str:
    """The element and everything in it as HTML, every text and attribute value escaped."""
    out: list[str] = []
    _write(node, out)
    return "".join(out)


def document(root: Element) -> str:
    """A whole page: the doctype, then ``root`` (the ``<html>`` element)."""
    return f"<!doctype html>\n{to_html(root)}\n"


def _write(node: Element, out: list[str]) -> None:
    tag = node.tag
    if not isinstance(tag, str) or not _NAME.fullmatch(tag):
        raise ValueError(f"not an HTML element name: {tag!r}")
    out.append(f"<{tag}")
    for name, value in node.attrib.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"<{tag}>: not an attribute name: {name!r}")
        if value == "" and name in _BOOLEAN:
            out.append(f" {name}")
        else:
            out.append(f' {name}="{html.escape(value, quote=True)}"')
    out.append(">")
    if tag in _VOID:
        if node.text or len(node):
            raise ValueError(f"<{tag}> is a void element and cannot have content")
    elif tag in _RAW_TEXT:
        text = node.text or ""
        if len(node) or re.search(f"</{tag}", text, re.IGNORECASE):
            raise ValueError(f"<{tag}> holds raw text only, and that text cannot close it")
        out.append(f"{text}</{tag}>")
    else:
        if node.text:
            out.append(html.escape(node.text, quote=True))
        for child in node:
            _write(child, out)
        out.append(f"</{tag}>")
    if node.tail:
        out.append(html.escape(node.tail, quote=True))
