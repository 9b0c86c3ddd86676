"""Amazon Review Data (2018): a category's reviews JSON lines plus its ``meta_*`` file -> :class:`Dataset`."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.loaders.common import PathLike, _check_duplicates_or_warn
from llmcf.data.loaders.lines import json_lines, read_bytes
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

__all__ = ["load_amazon2018"]

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_PRICE = re.compile(r"^\$?\s*(\d[\d,]*(?:\.\d+)?)$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CATALOG_FIELDS = (
    "title",
    "brand",
    "category",
    "description",
    "feature",
    "price",
    "main_cat",
    "also_buy",
    "also_view",
    "reviews",
)


def _clean_text(value: object) -> str | None:
    """HTML tags and entities stripped, whitespace folded; empty -> None."""
    if value is None:
        return None
    text = _TAG.sub(" ", str(value))
    text = _SPACE.sub(" ", html.unescape(text)).strip()
    return text or None


def _id_list(value: object, path: object, line: int | None, field: str) -> list[str]:
    """A list of product ids (``also_buy``, ``also_view``); anything else is a DataError."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise DataError(
            "expected a list of product ids",
            path=str(path),
            line=line,
            column=field,
            value=str(value)[:80],
        )
    return [str(v) for v in value]


def _clean_list(value: object) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [t for t in (_clean_text(v) for v in items) if t]


def _parse_price(value: object) -> float | None:
    """``"$25.00"`` -> 25.0; ranges (``"$10.00 - $50.00"``), empty or other text -> None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _PRICE.match(value.strip())
    return float(match.group(1).replace(",", "")) if match else None


def _amazon_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        reviews = path
        stem = reviews.name.split(".json")[0]
        category = stem[: -len("_5")] if stem.endswith("_5") else stem
        candidates = [
            reviews.parent / f"meta_{category}.json.gz",
            reviews.parent / f"meta_{category}.json",
        ]
        meta = next((c for c in candidates if c.exists()), None)
        if meta is None:
            others = sorted(reviews.parent.glob("meta_*.json*"))
            meta = others[0] if len(others) == 1 else None
        return reviews, meta
    if not path.is_dir():
        raise DataError("Amazon 2018 file or folder not found", path=str(path))
    json_files = sorted(p for p in path.iterdir() if p.name.endswith((".json", ".json.gz")))
    metas = [p for p in json_files if p.name.startswith("meta_")]
    reviews_files = [p for p in json_files if not p.name.startswith("meta_")]
    five = [p for p in reviews_files if p.name.split(".json")[0].endswith("_5")]
    chosen = five or reviews_files
    if not chosen:
        raise DataError(
            "no reviews file (*_5.json.gz or *.json[.gz] not starting with meta_) found",
            path=str(path),
        )
    return _amazon_files(chosen[0])[0], (
        _amazon_files(chosen[0])[1] or (metas[0] if len(metas) == 1 else None)
    )


def _review(record: dict[str, object], path: Path, line: int) -> tuple[str, str, float, int]:
    """``(reviewerID, asin, overall, unixReviewTime)`` of one review, checked."""
    for field in ("reviewerID", "asin", "overall"):
        if field not in record:
            raise DataError(f"review lacks field {field!r}", path=str(path), line=line)
    raw_overall = record["overall"]
    try:
        overall = float(raw_overall)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise DataError(
            "overall is not a number",
            path=str(path),
            line=line,
            column="overall",
            value=raw_overall,
        ) from None
    if not 1.0 <= overall <= 5.0:
        raise DataError(
            "overall outside the scale (1, 5)",
            path=str(path),
            line=line,
            column="overall",
            value=overall,
        )
    raw_time = record.get("unixReviewTime", 0)
    try:
        when = int(raw_time)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        # OverflowError: 1e400 parses as an infinite float
        raise DataError(
            "unixReviewTime is not an integer",
            path=str(path),
            line=line,
            column="unixReviewTime",
            value=raw_time,
        ) from None
    if not _INT64_MIN <= when <= _INT64_MAX:
        raise DataError(
            "unixReviewTime outside the 64-bit integer range",
            path=str(path),
            line=line,
            column="unixReviewTime",
            value=raw_time,
        )
    return str(record["reviewerID"]), str(record["asin"]), overall, when


def load_amazon2018(path: PathLike, *, max_reviews_per_item: int = 5) -> Dataset:
    """Amazon Review Data (2018): a category's reviews file plus its ``meta_*.json.gz``.

    ``path`` is a folder holding ``*_5.json.gz`` (or any reviews ``*.json[.gz]``) and
    ``meta_*.json[.gz]``, or the reviews file itself (its meta file is found next to it).

    Interactions: user = ``reviewerID``, item = ``asin``, rating = ``overall`` (scale 1..5),
    timestamp = ``unixReviewTime``. Repeated (user, item) reviews (the 2018 release has some)
    keep the **latest** review (ties: the later line); a warning says how many were removed
    and ``info["duplicates_removed"]`` records it.

    Item vocabulary: reviewed items in order of first appearance, then meta-only items (cold
    start items that still have text). Catalog fields: ``title``, ``brand``, ``category``
    (list), ``description`` (joined text), ``feature`` (list), ``price`` (float or None),
    ``main_cat``, ``also_buy``, ``also_view`` and ``reviews``: up to ``max_reviews_per_item``
    texts ``"summary. reviewText"`` of the item, in file order (note: these come from the same
    reviews as the interactions, mind leakage when used as item text in evaluation).
    HTML tags and entities are stripped and whitespace folded in every text field.

    Raises:
        DataError: naming file and line (and the field where one is at fault): invalid JSON
            (including nesting too deep to parse), a missing field, ``overall`` not a number
            or outside 1..5, ``unixReviewTime`` not an integer or outside int64.
    """
    reviews_path, meta_path = _amazon_files(Path(path))
    user_ids: list[str] = []
    item_ids: list[str] = []
    ratings: list[float] = []
    times: list[int] = []
    review_texts: dict[str, list[str]] = {}
    for lineno, record in json_lines(read_bytes(reviews_path), reviews_path):
        try:
            user, item, overall, when = _review(record, reviews_path, lineno)
            texts = review_texts.setdefault(item, [])
            if len(texts) < max_reviews_per_item:
                joined = ". ".join(
                    t
                    for t in (
                        _clean_text(record.get("summary")),
                        _clean_text(record.get("reviewText")),
                    )
                    if t
                )
                if joined:
                    texts.append(joined)
        except RecursionError:
            raise DataError(
                "review nested too deeply", path=str(reviews_path), line=lineno
            ) from None
        user_ids.append(user)
        item_ids.append(item)
        ratings.append(overall)
        times.append(when)
    if not user_ids:
        raise DataError("no reviews in file", path=str(reviews_path))

    meta: dict[str, dict[str, object]] = {}
    meta_lines: dict[str, int] = {}
    if meta_path is not None:
        for lineno, record in json_lines(read_bytes(meta_path), meta_path):
            asin = record.get("asin")
            if asin is not None and str(asin) not in meta:
                meta[str(asin)] = record
                meta_lines[str(asin)] = lineno

    reviewed, item_idx = Vocabulary.from_values(np.asarray(item_ids, dtype=str), name="item")
    reviewed_set = set(reviewed.ids.tolist())
    meta_only = [a for a in meta if a not in reviewed_set]
    items = (
        Vocabulary(np.concatenate([reviewed.ids, np.asarray(meta_only, dtype=str)]), name="item")
        if meta_only
        else reviewed
    )
    users, user_idx = Vocabulary.from_values(np.asarray(user_ids, dtype=str), name="user")

    fields: dict[str, list[object]] = {k: [] for k in _CATALOG_FIELDS}
    for asin in items.ids.tolist():
        rec = meta.get(asin, {})
        try:
            fields["title"].append(_clean_text(rec.get("title")))
            fields["brand"].append(_clean_text(rec.get("brand")))
            fields["category"].append(_clean_list(rec.get("category")))
            fields["description"].append(_clean_text(" ".join(_clean_list(rec.get("description")))))
            fields["feature"].append(_clean_list(rec.get("feature")))
            fields["price"].append(_parse_price(rec.get("price")))
            fields["main_cat"].append(_clean_text(rec.get("main_cat")))
            fields["also_buy"].append(
                _id_list(rec.get("also_buy"), meta_path, meta_lines.get(asin), "also_buy")
            )
            fields["also_view"].append(
                _id_list(rec.get("also_view"), meta_path, meta_lines.get(asin), "also_view")
            )
        except RecursionError:
            raise DataError(
                "meta record nested too deeply", path=str(meta_path), line=meta_lines.get(asin)
            ) from None
        fields["reviews"].append(review_texts.get(asin, []))

    ds = Dataset(
        users,
        items,
        user_idx,
        item_idx,
        np.asarray(ratings, dtype=np.float64),
        np.asarray(times, dtype=np.int64),
        feedback="explicit",
        rating_scale=(1.0, 5.0),
        item_catalog=Catalog(fields),
        name=_amazon_name(reviews_path),
        check_duplicates=False,
        info={
            "source": str(reviews_path),
            "meta": None if meta_path is None else str(meta_path),
            "n_reviews": len(user_ids),
            "duplicates_removed": 0,
        },
    )
    return _check_duplicates_or_warn(ds, "last", "line", reviews_path)


def _amazon_name(reviews_path: Path) -> str:
    stem = reviews_path.name.split(".json")[0]
    stem = stem[: -len("_5")] if stem.endswith("_5") else stem
    return "amazon2018-" + stem.lower().replace("_", "-")
