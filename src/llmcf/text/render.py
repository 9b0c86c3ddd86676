"""Item text rendering: one short, cleaned, versioned string per catalog item.

The rendered text is what a text embedder or a language model sees of an item, so the
templates are part of the experiment: each has a version (``TEMPLATE_VERSIONS``) that goes
into every embedding cache key. Change a template's output and you must bump its version.

Templates (fields missing or empty are left out, with their label):

``movielens`` (``movielens-v1``)
    ``"Toy Story (1995). Genres: Animation, Children's, Comedy. Tags: pixar, fun."``
    Fields ``title``, ``year``, ``genres``, ``tags``; the ``(no genres listed)`` marker is
    dropped, tags are de-duplicated case-insensitively in first-seen order.
``amazon`` (``amazon-v1``)
    ``"Title. Brand: B. Category: A > B. Description: ... Features: f1; f2. Price: $12.99"``
    Fields ``title``, ``brand``, ``category`` (list, joined with ``" > "``; ``main_cat``
    when there is none), ``description`` (str or list), ``feature``, ``price``. Reviews
    are not rendered (they describe opinions, and they dwarf the product text).
``retail`` (``retail-v1``)
    The ``description``, title-cased when it is written in capitals
    (``"WHITE HANGING HEART T-LIGHT HOLDER"`` -> ``"White Hanging Heart T-Light Holder"``).

Cleaning (all templates): HTML entities decoded, tags stripped, whitespace folded, and the
result cut to ``max_chars`` at a word boundary. An item with no text gives ``""``; the caller
decides what to do with it (embedders return a zero vector for it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from llmcf.errors import ConfigError

if TYPE_CHECKING:
    from llmcf.data.dataset import Dataset

__all__ = [
    "TEMPLATE_VERSIONS",
    "clean_text",
    "render_item_texts",
    "resolve_template",
    "template_version",
    "truncate_at_word",
]

#: Template name -> version string; part of every embedding cache key.
TEMPLATE_VERSIONS: dict[str, str] = {
    "movielens": "movielens-v1",
    "amazon": "amazon-v2",
    "retail": "retail-v1",
}

_SPACE_RE = re.compile(r"\s+")
#: what HTMLParser hands back as text for a tag cut off by the end of the value (``<span
#: class="a-size-medium"`` with no ``>``): the tag name and its name=value attributes
_CUT_TAG_RE = re.compile(
    r"""\A/?[A-Za-z][\w:-]*(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"?|'[^']*'?|[^\s"'<>]+))*\s*/?"""
)
#: elements whose content is not text
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "title"})
#: elements that separate words (the others, such as b, i, span and a, do not)
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 "
    "h4 h5 h6 header hr li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)


class _TextOf(HTMLParser):
    """The text of an HTML fragment (the standard library's tolerant parser: unclosed and
    stray tags, comments, character and named references with or without ``;``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.after_lt = False  # the parser gave back a lone "<" (a cut tag or a plain "<")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self.skip:
            self.skip -= 1
        if tag in _BLOCK_TAGS or tag in _SKIP_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.after_lt:
            self.after_lt = False
            cut = _CUT_TAG_RE.match(data)
            if cut and cut.end() > 0:  # "<" + "span class=..." : a tag cut short
                self.parts.pop()  # the "<"
                self.parts.append(" ")
                data = data[cut.end() :]
        if data == "<":
            self.after_lt = True
        self.parts.append(data)


def _strip_markup(text: str) -> str:
    parser = _TextOf()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_NO_GENRE = {"(no genres listed)", "unknown", ""}


def clean_text(value: object) -> str:
    """Plain text from a catalog value: markup parsed away, entities decoded, spaces folded.

    The value is parsed as HTML by the standard library's tolerant parser (``html.parser``):
    tags, comments and the content of ``script``/``style`` go, block elements separate words,
    entities are decoded; a tag cut off by the end of the value (``<span class="a-size-medium
    a-color-secondary"`` and no ``>``, as in scraped Amazon metadata) goes with its
    attributes. The result is parsed once more, so escaped markup (``"&lt;br&gt;"``) and
    double-escaped entities (``"&amp;amp;"``) come out clean too; a ``<`` that starts no tag
    (``"a < b"``) stays. ``None`` and NaN give ``""``.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _strip_markup(_strip_markup(str(value)))
    return _SPACE_RE.sub(" ", text).strip()


def truncate_at_word(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at the last word boundary.

    A single word longer than ``max_chars`` is cut inside the word. Trailing separators
    (``,;:-``) left by the cut are removed.
    """
    if max_chars <= 0:
        raise ConfigError(f"max_chars must be positive, got {max_chars}")
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    head = cut[:space] if space > 0 else text[:max_chars]
    return head.rstrip(" ,;:-")


def _as_list(value: object) -> list[str]:
    """A list field as cleaned, non-empty strings (a plain string counts as one item)."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Sequence[object] = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        try:
            items = list(value)  # type: ignore[call-overload]  # numpy arrays, tuples
        except TypeError:
            items = [value]
    out = [clean_text(v) for v in items]
    return [v for v in out if v]


def _sentence(text: str) -> str:
    """``text`` ending with sentence punctuation."""
    return text if not text or text[-1] in ".!?" else text + "."


def _unique_casefold(values: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        key = v.casefold()
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _year(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return clean_text(value)
    return "" if math.isnan(number) else str(int(number))


def _price(value: object) -> str:
    if value is None or isinstance(value, bool):
        return ""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return clean_text(value)
    return "" if math.isnan(number) or number < 0 else f"${number:,.2f}"


def _render_movielens(row: Mapping[str, object]) -> str:
    title = clean_text(row.get("title"))
    year = _year(row.get("year"))
    parts = []
    if title:
        parts.append(_sentence(f"{title} ({year})" if year else title))
    genres = [g for g in _as_list(row.get("genres")) if g.lower() not in _NO_GENRE]
    if genres:
        parts.append(f"Genres: {', '.join(genres)}.")
    tags = _unique_casefold(_as_list(row.get("tags")))
    if tags:
        parts.append(f"Tags: {', '.join(tags)}.")
    return " ".join(parts)


def _render_amazon(row: Mapping[str, object]) -> str:
    parts = []
    title = clean_text(row.get("title"))
    if title:
        parts.append(_sentence(title))
    brand = clean_text(row.get("brand"))
    if brand:
        parts.append(_sentence(f"Brand: {brand}"))
    category = _as_list(row.get("category")) or _as_list(row.get("main_cat"))
    if category:
        parts.append(_sentence(f"Category: {' > '.join(category)}"))
    description = " ".join(_as_list(row.get("description")))
    if description:
        parts.append(_sentence(f"Description: {description}"))
    features = _as_list(row.get("feature"))
    if features:
        parts.append(_sentence(f"Features: {'; '.join(features)}"))
    price = _price(row.get("price"))
    if price:
        parts.append(f"Price: {price}")
    return " ".join(parts)


def _title_case(text: str) -> str:
    """Capitalise each word (``"GIRL'S T-LIGHT"`` -> ``"Girl's T-Light"``)."""
    return _WORD_RE.sub(lambda m: m.group(0).capitalize(), text.lower())


def _render_retail(row: Mapping[str, object]) -> str:
    description = clean_text(row.get("description"))
    return _title_case(description) if description.isupper() else description


_RENDERERS: dict[str, Callable[[Mapping[str, object]], str]] = {
    "movielens": _render_movielens,
    "amazon": _render_amazon,
    "retail": _render_retail,
}


def resolve_template(fields: Mapping[str, object], template: str = "auto") -> str:
    """The template name that ``template`` means for a catalog with these field names.

    ``"auto"`` picks ``movielens`` when ``genres``, ``year`` or ``tags`` are present,
    ``amazon`` when ``brand``, ``category``, ``feature`` or ``main_cat`` are (or ``title``
    together with ``description``), ``retail`` for ``description`` alone, and ``movielens``
    for ``title`` alone. Raises :class:`ConfigError` for an unknown name or a catalog with
    none of these fields.
    """
    if template != "auto":
        if template not in _RENDERERS:
            raise ConfigError(
                f"unknown item text template {template!r}; valid: "
                + ", ".join(["auto", *_RENDERERS])
            )
        return template
    names = set(fields)
    if names & {"genres", "year", "tags"}:
        return "movielens"
    if names & {"brand", "category", "feature", "main_cat"} or {"title", "description"} <= names:
        return "amazon"
    if "description" in names:
        return "retail"
    if "title" in names:
        return "movielens"
    raise ConfigError(
        "cannot pick an item text template: the catalog has none of the fields "
        f"title, description, genres, brand, category (fields: {sorted(names)})"
    )


def template_version(fields: Mapping[str, object], template: str = "auto") -> str:
    """The version string of the template :func:`render_item_texts` would use."""
    return TEMPLATE_VERSIONS[resolve_template(fields, template)]


def render_item_texts(dataset: Dataset, template: str = "auto", max_chars: int = 512) -> list[str]:
    """One cleaned text per item, in item-index order (``len == dataset.n_items``).

    Args:
        dataset: its ``item_catalog.fields`` are read; rows missing from the catalog count
            as empty.
        template: ``"auto"``, ``"movielens"``, ``"amazon"`` or ``"retail"`` (see the module
            docstring for each layout and :data:`TEMPLATE_VERSIONS` for their versions).
        max_chars: the longest text returned; longer ones are cut at a word boundary.

    Returns:
        A list of ``n_items`` strings; ``""`` for an item with no text.
    """
    fields = dataset.item_catalog.fields
    renderer = _RENDERERS[resolve_template(fields, template)]
    if max_chars <= 0:
        raise ConfigError(f"max_chars must be positive, got {max_chars}")
    n_items = dataset.n_items
    columns = {
        name: (list(values) + [None] * max(0, n_items - len(values)))[:n_items]
        for name, values in fields.items()
    }
    texts = []
    for idx in range(n_items):
        row = {name: values[idx] for name, values in columns.items()}
        texts.append(truncate_at_word(renderer(row), max_chars))
    return texts
