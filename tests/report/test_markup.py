"""The report's HTML builder (``pytest_oompa.report.markup``): text and attribute values are
escaped by the serializer alone, and what a tree cannot express safely is refused."""

from __future__ import annotations

import pytest

from pytest_oompa.report.markup import add, document, el, to_html

HOSTILE = "<script>alert(1)</script>\"'&"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;"


def test_text_and_attribute_values_are_escaped():
    node = el("a", {"href": HOSTILE, "title": HOSTILE}, HOSTILE, el("b", HOSTILE), HOSTILE)
    assert to_html(node) == (
        f'<a href="{ESCAPED}" title="{ESCAPED}">{ESCAPED}<b>{ESCAPED}</b>{ESCAPED}</a>'
    )


def test_children_attributes_and_void_elements():
    node = el(
        "div",
        {"id": "x", "hidden": True, "class": None, "data-n": 3, "open": False},
        "a ",
        None,
        [el("br"), " b", ""],
        el("meta", {"charset": "utf-8"}),
    )
    add(node, " c")
    assert to_html(node) == '<div id="x" hidden data-n="3">a <br> b<meta charset="utf-8"> c</div>'
    assert document(el("html")) == "<!doctype html>\n<html></html>\n"


def test_script_and_style_are_raw_but_cannot_close_early():
    assert to_html(el("script", "if(a<b&&c>d)x()")) == "<script>if(a<b&&c>d)x()</script>"
    with pytest.raises(ValueError, match="cannot close it"):
        to_html(el("script", "x</SCRIPT ><img src=x onerror=alert(1)>"))
    with pytest.raises(ValueError, match="cannot close it"):
        to_html(el("style", "a{}</style>"))


def test_names_that_are_not_plain_are_refused():
    with pytest.raises(ValueError, match="attribute name"):
        to_html(el("a", {'x" onclick="alert(1)': "y"}))
    with pytest.raises(ValueError, match="element name"):
        to_html(el("a b"))
    with pytest.raises(ValueError, match="void element"):
        to_html(el("br", "text"))
    with pytest.raises(TypeError, match="attributes must come first"):
        el("a", "text", {"href": "#"})
