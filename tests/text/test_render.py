"""Item text rendering and cleaning, on hand-made catalogs."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError
from llmcf.text.render import (
    TEMPLATE_VERSIONS,
    clean_text,
    render_item_texts,
    resolve_template,
    template_version,
    truncate_at_word,
)


def make_dataset(fields: dict[str, list[object]], n_items: int | None = None) -> Dataset:
    n = n_items if n_items is not None else len(next(iter(fields.values()), []))
    items = Vocabulary([f"i{k}" for k in range(n)], name="item")
    users = Vocabulary(["u0"], name="user")
    empty = np.zeros(0, dtype=np.int32)
    return Dataset(users, items, empty, empty, item_catalog=Catalog(fields), name="hand")


def test_clean_text_strips_html_entities_and_spaces() -> None:
    raw = "  <p>Great&nbsp;gift &amp; <b>fun</b></p>\n\n&lt;br&gt;for   kids &amp;amp; adults "
    assert clean_text(raw) == "Great gift & fun for kids & adults"
    assert clean_text(None) == ""
    assert clean_text(float("nan")) == ""


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        # scraped Amazon metadata: a tag cut off by the end of the value, with or without text
        ('<span class="a-size-medium a-color-secondary"', ""),
        ('<span class="a-size-medium a-color-secondary" Amazon eGift Card', "Amazon eGift Card"),
        ('Visa card <div class="a-row', "Visa card"),
        ('<span class="a-color-secondary">Gift</span> <b>card', "Gift card"),
        ("x<script>var a = '<b>';</script>y<style>p {}</style>", "x y"),
        ("a<!-- note -->b", "ab"),
        ("Line1<br>Line2<br/>Line3<p>Para</p>", "Line1 Line2 Line3 Para"),
        ("ab<b>c</b>d", "abcd"),  # inline elements do not split words
        ("Fish &amp chips &#39;n&#x27; peas", "Fish & chips 'n' peas"),
        ("&lt;span class=&quot;x&quot;&gt;Gift", "Gift"),  # escaped markup
        ("AT&amp;amp;T", "AT&T"),  # double-escaped entity
        ("a < b and c > d", "a < b and c > d"),  # a "<" that starts no tag stays
        ("Price <$10", "Price <$10"),
    ],
)
def test_clean_text_parses_cut_and_escaped_markup(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_truncate_at_word_boundary() -> None:
    assert truncate_at_word("short text", 50) == "short text"
    assert truncate_at_word("alpha beta gamma", 12) == "alpha beta"
    assert truncate_at_word("alpha beta gamma", 10) == "alpha beta"
    assert truncate_at_word("alpha, beta gamma", 8) == "alpha"
    assert truncate_at_word("supercalifragilistic", 5) == "super"
    with pytest.raises(ConfigError):
        truncate_at_word("x", 0)


def test_movielens_template() -> None:
    ds = make_dataset(
        {
            "title": ["Toy Story", "Heat", None, "Untitled"],
            "year": [1995, None, 2001, float("nan")],
            "genres": [["Animation", "Comedy"], ["(no genres listed)"], ["Drama"], []],
            "tags": [["pixar", "Pixar", "fun"], None, [], None],
        }
    )
    assert render_item_texts(ds) == [
        "Toy Story (1995). Genres: Animation, Comedy. Tags: pixar, fun.",
        "Heat.",
        "Genres: Drama.",
        "Untitled.",
    ]
    assert resolve_template(ds.item_catalog.fields) == "movielens"
    assert template_version(ds.item_catalog.fields) == "movielens-v1"


def test_amazon_template() -> None:
    ds = make_dataset(
        {
            "title": ["Gift Card <b>$25</b>", None],
            "brand": ["Amazon", None],
            "category": [["Gift Cards", "Gift Card Categories"], []],
            "description": [["<p>Give the gift</p>", "of choice"], "Only text here"],
            "feature": [["No fees", "Never expires"], None],
            "price": [25.0, None],
            "main_cat": ["Gift Cards", "Toys"],
        }
    )
    texts = render_item_texts(ds)
    assert texts[0] == (
        "Gift Card $25. Brand: Amazon. Category: Gift Cards > Gift Card Categories. "
        "Description: Give the gift of choice. Features: No fees; Never expires. Price: $25.00"
    )
    assert texts[1] == "Category: Toys. Description: Only text here."
    assert resolve_template(ds.item_catalog.fields) == "amazon"


def test_retail_template_title_cases_capitals() -> None:
    ds = make_dataset(
        {
            "description": [
                "WHITE HANGING HEART T-LIGHT HOLDER",
                "DOLLY GIRL'S MUG",
                "Postage",
                None,
            ],
            "price": [2.55, 1.0, 18.0, None],
        }
    )
    assert render_item_texts(ds) == [
        "White Hanging Heart T-Light Holder",
        "Dolly Girl's Mug",
        "Postage",
        "",
    ]
    assert template_version(ds.item_catalog.fields) == TEMPLATE_VERSIONS["retail"]


def test_max_chars_and_short_catalog_columns() -> None:
    ds = make_dataset({"description": ["one two three four five six"]}, n_items=3)
    texts = render_item_texts(ds, max_chars=14)
    assert texts == ["one two three", "", ""]
    assert all(len(t) <= 14 for t in texts)


def test_explicit_template_and_errors() -> None:
    ds = make_dataset({"title": ["A"], "description": ["b"]})
    assert render_item_texts(ds, template="retail") == ["b"]
    with pytest.raises(ConfigError, match="valid: auto, movielens"):
        render_item_texts(ds, template="nope")
    with pytest.raises(ConfigError, match="price"):
        render_item_texts(make_dataset({"price": [1.0]}))
    with pytest.raises(ConfigError):
        render_item_texts(ds, max_chars=0)


def test_every_template_has_a_version() -> None:
    assert set(TEMPLATE_VERSIONS) == {"movielens", "amazon", "retail"}
    # amazon-v2: the HTML parser replaced the tag regex (cut tags no longer leak into texts)
    assert TEMPLATE_VERSIONS == {
        "movielens": "movielens-v1",
        "amazon": "amazon-v2",
        "retail": "retail-v1",
    }
