"""Turn untrusted model output and user text into HTML that can neither run nor load anything.

Model output may contain `<script>`, `javascript:` links, tracking images or CSS that hides
text. Experts must see such attempts, not suffer them, and pages must work air-gapped, so:

- raw HTML in Markdown is shown as text, never interpreted;
- links are not links: `[text](url)` renders as `text (url)`, so a click cannot leak that an
  NDA-protected page was opened, and the real destination is always visible;
- images are never loaded: `![alt](src)` renders as `[image: alt]`;
- code fences are highlighted on the server by pygments;
- the whole result then passes an allow-list sanitiser (nh3) as a second line of defence.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import markdown_it_pyrs
import nh3
from markdown_it import MarkdownIt
from markdown_it.common.normalize_url import normalizeLinkText
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexer import Lexer  # type: ignore[import-untyped]
from pygments.lexers import get_all_lexers, get_lexer_by_name  # type: ignore[import-untyped]
from pygments.token import STANDARD_TYPES  # type: ignore[import-untyped]

__all__ = ["HIGHLIGHT_CSS", "RENDERER", "render_markdown", "render_plain"]

_CODE_CLASS = "hl"
_STYLE = "friendly"
_FORMATTER = HtmlFormatter(nowrap=False, cssclass=_CODE_CLASS, style=_STYLE)

# Only the token and background rules: the full `get_style_defs` also styles bare `pre` and
# line-number elements, which would leak into the rest of the app.
HIGHLIGHT_CSS: str = (
    "\n".join(
        [
            *_FORMATTER.get_background_style_defs(f".{_CODE_CLASS}"),
            *_FORMATTER.get_token_style_defs(f".{_CODE_CLASS}"),
        ]
    )
    + "\n"
)

# Built-in lexers only: looking up an unknown name in pygments also scans installed plugins
# (about half a millisecond each time), and a model can invent any number of names.
_LEXER_ALIASES = frozenset(
    alias for _, aliases, _, _ in get_all_lexers(plugins=False) for alias in aliases
)
_LANGUAGE_NAME = re.compile(r"[\w+#.-]{1,40}")

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "span", "div", "blockquote", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# Classes only as pygments emits them, so a model cannot borrow the app's own CSS classes to
# hide or spoof parts of the page.
_CLASSES = {
    "div": frozenset({_CODE_CLASS}),
    "span": frozenset(name for name in STANDARD_TYPES.values() if name),
}
_LIST_START = re.compile(r"\d{1,9}")


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Return the part of an allowed attribute's value that is safe to keep, or None to drop it."""
    if attribute == "class":
        kept = [name for name in value.split() if name in _CLASSES.get(tag, ())]
        return " ".join(kept) or None
    if attribute == "start":
        return value if _LIST_START.fullmatch(value) else None
    return None


_SANITISER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"div": {"class"}, "span": {"class"}, "ol": {"start"}},
    attribute_filter=_keep_attribute,
    link_rel=None,
    url_schemes=set(),
)


@lru_cache(maxsize=128)
def _lexer(language: str) -> Lexer:
    """Return the lexer for a fence's language name, or the plain-text lexer when unknown."""
    name = language.lower()
    return get_lexer_by_name(name if name in _LEXER_ALIASES else "text")


class _InertRenderer(RendererHTML):
    """markdown-it renderer that highlights code and emits no links and no images."""

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        words = unescapeAll(token.info).split(maxsplit=1)
        language = words[0] if words and _LANGUAGE_NAME.fullmatch(words[0]) else "text"
        return str(highlight(token.content, _lexer(language), _FORMATTER))

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        alt = self.renderInlineAsText(tokens[idx].children or [], options, env)
        return escapeHtml(f"[image: {alt}]")

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return ""

    def link_close(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        start = next(i for i in range(idx - 1, -1, -1) if tokens[i].type == "link_open")
        url = normalizeLinkText(str(tokens[start].attrGet("href") or ""))
        label = "".join(token.content for token in tokens[start + 1 : idx])
        return "" if label == url else escapeHtml(f" ({url})")


_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "linkify": False}, renderer_cls=_InertRenderer)
    .enable(["table", "strikethrough"])
    .disable("autolink")
)


# The same parser (markdown-it), compiled: about 10x faster, and rendering was a tenth of
# the server's work per next-task call. It has no hooks for our own rules, so it takes only
# text those rules cannot apply to: no link or image ("["), no fence, no raw HTML or
# autolink ("<"). It follows an older CommonMark (symbols, control characters and odd
# spaces next to emphasis, tables, lazy lines in quotes, blank code spans differ), so it
# takes only text with none of those: ASCII, and beyond it letters, marks, digits and
# punctuation (accents, curly quotes, dashes, other scripts). On such text both give the
# same HTML (a property test holds them to it); everything else takes the slow path.
_FAST_MARKDOWN = markdown_it_pyrs.MarkdownIt("commonmark").enable_many(["table", "strikethrough"])


def _other_characters() -> str:
    """Return a regex class of the characters the fast path leaves alone: ASCII controls,
    and past ASCII whatever is not a letter, mark, digit or punctuation (all of the planes
    past the first, emoji included)."""
    ranges: list[list[int]] = []
    for code in range(0x80, 0x10000):
        if unicodedata.category(chr(code))[0] in "LMNP":
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    spans = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f{spans}\\U00010000-\\U0010ffff]"


_NEEDS_OUR_RULES = re.compile(
    # other characters; links, HTML, tables; fences; quotes; code spans of only spaces
    _other_characters() + r"|[\[<|]|```|~~~|^[ \t]*>|(`+)\s+\1",
    re.MULTILINE,
)


def render_markdown(text: str) -> Markup:
    """Return untrusted Markdown as sanitised HTML, safe to insert into a page unescaped."""
    return _render_markdown(text)


# The same answer is shown to many experts and on every page load, and a first rendering of
# a code-heavy 5,000 characters costs pygments over 10 ms; a repeat costs microseconds.
@lru_cache(maxsize=512)
def _render_markdown(text: str) -> Markup:
    if _NEEDS_OUR_RULES.search(text):
        return Markup(_SANITISER.clean(_MARKDOWN.render(text)))
    return Markup(_SANITISER.clean(_FAST_MARKDOWN.render(text)))


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def render_plain(text: str) -> Markup:
    """Return text as escaped HTML whose line breaks survive as `<br>`."""
    return Markup("<br>\n").join(escape(line) for line in _LINE_BREAK.split(text))


def _renderer() -> str:
    """Name this renderer: a hash of this module's source and of the versions of the
    libraries it uses. HTML stored by another renderer is not served (`RenderedAnswerRow`):
    a stricter sanitiser, say, takes effect on answers rendered before it."""
    parts = [Path(__file__).read_bytes()]
    parts += [
        version(name).encode() for name in ("nh3", "markdown-it-py", "markdown-it-pyrs", "pygments")
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


RENDERER = _renderer()
