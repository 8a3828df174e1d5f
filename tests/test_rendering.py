"""Model output renders as readable HTML that can neither run code nor load anything."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup, escape
from pygments.token import STANDARD_TYPES  # type: ignore[import-untyped]

from tutelage.workspace.rendering import HIGHLIGHT_CSS, render_markdown, render_plain

STATIC = Path(__file__).resolve().parents[1] / "src" / "tutelage" / "workspace" / "static"

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "span", "div", "blockquote", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# Links are rendered as text, so not even <a> may appear.
FORBIDDEN_TAGS = {
    "script", "style", "iframe", "img", "svg", "math", "form", "input", "object", "embed",
    "link", "meta", "base", "a",
}  # fmt: skip
PYGMENTS_CLASSES = {name for name in STANDARD_TYPES.values() if name}


class _Page(HTMLParser):
    """Collects every tag, attribute and piece of visible text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text += data


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(str(html))  # as plain str: slices of Markup would escape again when joined
    page.close()
    return page


def assert_inert(html: str) -> _Page:
    """Fail unless the HTML holds only allow-listed tags and attributes; return what it shows."""
    assert "<script" not in html.lower()
    page = parse(html)
    for tag, attrs in page.tags:
        assert tag in ALLOWED_TAGS, f"<{tag}> in {html!r}"
        assert tag not in FORBIDDEN_TAGS
        for name, value in attrs:
            assert not name.startswith("on"), f"{name} on <{tag}>"
            assert name not in {"style", "src", "href", "srcset", "action", "formaction"}
            if name == "class":
                allowed = {"hl"} if tag == "div" else PYGMENTS_CLASSES if tag == "span" else set()
                assert set((value or "").split()) <= allowed, f'<{tag} class="{value}">'
            elif name == "start":
                assert tag == "ol" and re.fullmatch(r"\d+", value or "")
            else:
                pytest.fail(f"unexpected attribute {name}={value!r} on <{tag}>")
    return page


HOSTILE = [
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("[click](javascript:alert(1))", "javascript:alert(1)"),
    ("[x](JaVaScRiPt:alert(1))", "JaVaScRiPt:alert(1)"),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("![tracker](https://evil.example/pixel.png)", "[image: tracker]"),
    ('<a href="https://x" onclick="steal()">x</a>', '<a href="https://x" onclick="steal()">'),
    ("<style>body{display:none}</style>", "<style>body{display:none}</style>"),
    ("<iframe src=//evil>", "<iframe src=//evil>"),
    ("<svg onload=alert(1)>", "<svg onload=alert(1)>"),
    ("<math><mi xlink:href=javascript:alert(1)>", "<math>"),
    ("<form action=https://evil.example><input name=q>", "<input name=q>"),
    ("<object data=x.swf><embed src=x.swf>", "<embed src=x.swf>"),
    ('<link rel=stylesheet href=//evil><meta http-equiv=refresh content="0;url=//evil">', "<meta"),
    ("<base href=https://evil.example/>", "<base href"),
    ("&#106;avascript:alert(1)", "javascript:alert(1)"),
    ("[x](&#106;avascript:alert(1))", "javascript:alert(1)"),
    ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "data:text/html"),
    ('```"><script>alert(1)</script>\nprint(1)\n```', "print(1)"),
    ("```python\n</code></pre><script>alert(1)</script>\n```", "</code></pre><script>"),
    ("<!-- hidden --><noscript>x</noscript>", "<!-- hidden -->"),
    ("| a |\n|---|\n| <script>alert(1)</script> |", "<script>alert(1)</script>"),
    ("# <img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("<https://evil.example/beacon>", "<https://evil.example/beacon>"),
]


@pytest.mark.parametrize(("source", "visible"), HOSTILE, ids=[s for s, _ in HOSTILE])
def test_hostile_output_is_shown_but_cannot_run_or_load(source: str, visible: str) -> None:
    page = assert_inert(render_markdown(source))
    assert visible in page.text


HOSTILE_FRAGMENTS = [source for source, _ in HOSTILE] + [
    "\n", "\n\n", "```", "```python\n", "`", "[", "](", ")", "![", "<", ">", "&", "&#", ";",
    "# ", "*", "_", "~~", "|", "|---|\n", "- ", "1. ", "> ", "    ", "\\", "javascript:",
    "https://evil.example/x.png", '"', "'", "=",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_FRAGMENTS)), max_size=25))
def test_no_markdown_can_produce_a_disallowed_tag_or_attribute(pieces: list[str]) -> None:
    assert_inert(render_markdown("".join(pieces)))


def test_everyday_markdown_keeps_its_structure() -> None:
    source = (
        "# Assessment\n\n## Dosage\n\n"
        "The answer is **mostly** right but *overstates* `ibuprofen` risk, ~~not~~ fine.\n\n"
        "- first point\n- second point\n\n"
        "3. third\n4. fourth\n\n"
        "> quoted guideline\n\n"
        "| drug | dose |\n|---|---|\n| ibuprofen | 400 mg |\n\n---\n"
    )
    page = assert_inert(render_markdown(source))
    tags = {tag for tag, _ in page.tags}
    assert {"h1", "h2", "strong", "em", "code", "s", "ul", "ol", "li", "blockquote"} <= tags
    assert {"table", "thead", "tbody", "tr", "th", "td", "hr"} <= tags
    assert ("ol", [("start", "3")]) in page.tags
    assert "400 mg" in page.text


def test_python_fence_is_highlighted_inside_the_hl_wrapper() -> None:
    html = render_markdown("```python\ndef dose(kg):\n    return 10 * kg\n```")
    assert html.startswith('<div class="hl"><pre>')
    assert '<span class="k">def</span>' in html
    assert "def dose(kg):\n    return 10 * kg" in assert_inert(html).text


def test_unknown_language_is_shown_as_plain_text() -> None:
    html = render_markdown("```klingon\nqapla' <batlh>\n```")
    assert html.startswith('<div class="hl"><pre>')
    assert "qapla' <batlh>" in assert_inert(html).text


def test_link_shows_its_text_and_its_destination_but_is_not_clickable() -> None:
    page = assert_inert(render_markdown("See [NICE guidance](https://www.nice.org.uk/cks)."))
    assert page.text.strip() == "See NICE guidance (https://www.nice.org.uk/cks)."


def test_link_text_cannot_hide_where_a_link_really_goes() -> None:
    page = assert_inert(render_markdown("[https://bank.example](https://evil.example/login)"))
    assert page.text.strip() == "https://bank.example (https://evil.example/login)"


def test_link_whose_text_is_its_destination_shows_it_once() -> None:
    page = assert_inert(render_markdown("[https://example.org](https://example.org)"))
    assert page.text.strip() == "https://example.org"


def test_image_becomes_its_alt_text() -> None:
    html = render_markdown("![chest X-ray](https://evil.example/pixel.png?id=42)")
    assert assert_inert(html).text.strip() == "[image: chest X-ray]"
    assert "evil.example" not in html


def test_rendered_html_is_not_escaped_again_by_templates() -> None:
    html = render_markdown("**bold**")
    assert isinstance(html, Markup)
    assert escape(html) == html == "<p><strong>bold</strong></p>\n"


def test_plain_text_keeps_line_breaks_and_shows_markup_as_text() -> None:
    html = render_plain("Dose <b>too</b> high\r\nsee **notes** & refs\n")
    assert isinstance(html, Markup)
    assert html == "Dose &lt;b&gt;too&lt;/b&gt; high<br>\nsee **notes** &amp; refs<br>\n"


@given(st.text())
def test_plain_text_shows_exactly_what_was_written(text: str) -> None:
    page = assert_inert(render_plain(text))
    assert page.text == re.sub(r"\r\n|\r", "\n", text)


def test_shipped_stylesheet_matches_the_highlighter() -> None:
    shipped = (STATIC / "highlight.css").read_text(encoding="utf-8")
    assert shipped == HIGHLIGHT_CSS, (
        "regenerate with: python -c 'from tutelage.workspace.rendering import HIGHLIGHT_CSS; "
        'open("src/tutelage/workspace/static/highlight.css", "w").write(HIGHLIGHT_CSS)\''
    )


def test_highlight_styles_apply_only_inside_code_blocks() -> None:
    rules = [line for line in HIGHLIGHT_CSS.splitlines() if line.strip()]
    assert rules
    assert all(rule.startswith(".hl ") or rule.startswith(".hl{") for rule in rules), rules


# accents, curly quotes, dashes, other scripts, symbols and odd spaces
TYPOGRAPHY = "éü\u2019\u201c\u201d\u2014\u2026中文ß¿«»·•§°±\u00d7€©™→\u00a0\u2028"
PLAIN_FRAGMENTS = [
    "\n", "\n\n", "`", "*", "**", "_", "~~", "~", "|", "|---|\n", "| a | b |\n", "- ", "* ",
    "1. ", "3) ", "> ", "    ", "\\", "&", "&amp;", "&#x27;", "# ", "## ", "===\n", "---\n",
    "  \n", "\t", "\r\n", "é", "😀", "¬", "x", "word ", "1", ".", ")", "!", '"', "'", "-", "+",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=20),
            st.text(alphabet=TYPOGRAPHY, max_size=5),
            st.sampled_from(PLAIN_FRAGMENTS),
        ),
        max_size=30,
    )
)
def test_the_compiled_parser_renders_plain_markdown_exactly_as_our_own_rules(
    pieces: list[str],
) -> None:
    # Text with no link, image, fence or HTML (and none of the constructs the two parse
    # differently) goes to the compiled markdown-it, which is faster; it must give what
    # the pure-Python renderer with our rules gives.
    from tutelage.workspace.rendering import (
        _FAST_MARKDOWN,
        _MARKDOWN,
        _NEEDS_OUR_RULES,
        _SANITISER,
    )

    source = "".join(pieces)
    if _NEEDS_OUR_RULES.search(source):
        return
    # line breaks between tags are all that may differ (an empty quote: one or two lines)
    fast, ours = (
        re.sub(r">\n+<", "><", _SANITISER.clean(parser.render(source)))
        for parser in (_FAST_MARKDOWN, _MARKDOWN)
    )
    assert fast == ours
    assert_inert(render_markdown(source))
