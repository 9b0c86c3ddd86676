"""Loaders: tiny hand-made files for every layout and error, plus counts on the real data sets."""

from __future__ import annotations

import gzip
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmcf.data.loaders import (
    load_amazon2018,
    load_movielens,
    load_movielens_100k_fold,
    load_online_retail,
    load_table,
    resolve_data_path,
    resolve_dataset,
)
from llmcf.errors import DataError

# ------------------------------------------------------------------------------ tiny fixtures
GENRES = "unknown|0\nAction|1\nComedy|2\n\n"
U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://x/toy|0|0|1\n"
    "2|Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)|01-Jan-1995||http://x/st|0|1|0\n"
    "3|unknown||||1|0|0\n"
    "4|Caf\xe9 au lait (1994)|01-Jan-1994||http://x/cafe|0|1|1\n"
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"
U_BASE = "1\t1\t5\t874965758\n2\t2\t3\t876893171\n1\t3\t4\t878542960\n"
U_TEST = "3\t4\t1\t875072484\n1\t2\t2\t875071561\n"


def write_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text(GENRES, encoding="latin-1")
    (folder / "u.item").write_text(U_ITEM, encoding="latin-1")
    (folder / "u.user").write_text(U_USER, encoding="latin-1")
    (folder / "u1.base").write_text(U_BASE)
    (folder / "u1.test").write_text(U_TEST)
    (folder / "u.data").write_text(U_BASE + U_TEST)
    return folder


def write_ml1m(folder: Path, *, gz: bool = True, pairs: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.dat").write_bytes(
        "10::Heat (1995)::Action|Crime\n20::Amélie (2001)::Comedy|Romance\n30::Unrated (1990)::Drama\n".encode(
            "latin-1"
        )
    )
    (folder / "users.dat").write_text(
        "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"
    )
    ratings = b"1::10::5::978300760\n1::20::3::978302109\n2::20::4::978301968\n"
    if gz:
        with gzip.open(folder / "ratings_TRUNCATED_first_3_lines.dat.gz", "wb") as fh:
            fh.write(ratings)
    else:
        (folder / "ratings.dat").write_bytes(ratings)
    if pairs:
        pd.DataFrame(
            {"userID": ["1", "1", "2", "3"], "movieID": ["10", "20", "20", "30"]}
        ).to_parquet(folder / "ratings_pairs_no_rating_no_timestamp.parquet")
    return folder


def write_ml_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,0.5,964982224\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation\n"
        '2,"American President, The (1995)",Comedy|Drama\n'
        "3,Ready Player One,(no genres listed)\n"
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,pixar,2\n2,1,fun,3\n1,9,orphan,4\n"
    )
    return folder


def write_amazon(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [
        {
            "overall": 5.0,
            "reviewerID": "U1",
            "asin": "A1",
            "unixReviewTime": 100,
            "summary": "Great",
            "reviewText": "Loved <b>it</b>",
        },
        {"overall": 4.0, "reviewerID": "U2", "asin": "A1", "unixReviewTime": 110, "summary": "Ok"},
        {
            "overall": 2.0,
            "reviewerID": "U1",
            "asin": "A2",
            "unixReviewTime": 120,
            "reviewText": "meh",
        },
        {
            "overall": 1.0,
            "reviewerID": "U1",
            "asin": "A1",
            "unixReviewTime": 90,
            "summary": "older dup",
        },
    ]
    with gzip.open(folder / "Tiny_5.json.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in reviews) + "\n")
    meta = [
        {
            "asin": "A1",
            "title": "Card &amp; Box",
            "price": "$25.00",
            "category": ["Gift Cards"],
            "description": ["<p>Nice\n  card</p>", "second"],
            "feature": ["a", "<br>"],
            "brand": "Acme",
            "main_cat": "Gift Cards",
            "also_buy": ["A2"],
            "also_view": [],
        },
        {"asin": "A2", "title": "Other", "price": "$10.00 - $50.00"},
        {"asin": "A3", "title": "Cold start item", "price": "$1,299.99", "description": []},
    ]
    with gzip.open(folder / "meta_Tiny.json.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r) for r in meta) + "\n")
    return folder


def retail_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InvoiceNo": ["1", "1", "2", "C3", "4", "5", "6", "7"],
            "StockCode": ["X", "Y", "X", "X", "Y", "X", "Z", "Y"],
            "Description": ["MUG", "CUP", "MUG ", "MUG", "CUP", "BIG MUG", "FREE", None],
            "Quantity": [2, 1, 3, -2, 0, 1, 1, 5],
            "InvoiceDate": [
                "2011-01-01 10:00:00",
                "2011-01-01 10:00:00",
                "2011-02-01 10:00:00",
                "2011-02-02 10:00:00",
                "2011-03-01 10:00:00",
                "2011-03-02 10:00:00",
                "2011-03-03 10:00:00",
                "2011-03-04 10:00:00",
            ],
            "UnitPrice": [1.0, 2.0, 3.0, 1.0, 2.0, 1.5, 0.0, 2.5],
            "CustomerID": [
                17850.0,
                17850.0,
                17850.0,
                17850.0,
                13047.0,
                float("nan"),
                13047.0,
                13047.0,
            ],
            "Country": ["UK"] * 8,
        }
    )


# ------------------------------------------------------------------------------ MovieLens 100K
def test_ml100k_fold_order_and_vocabularies(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    ds, train, test = load_movielens_100k_fold(folder, "u1")
    assert len(ds) == 5 and train.tolist() == [0, 1, 2] and test.tolist() == [3, 4]
    assert ds.users.ids.tolist() == [1, 2, 3] and ds.items.ids.tolist() == [1, 2, 3, 4]
    assert ds.users.ids.dtype == np.int64
    # exactly file order: base lines then test lines
    assert ds.users.external(ds.user_idx).tolist() == [1, 2, 1, 3, 1]
    assert ds.items.external(ds.item_idx).tolist() == [1, 2, 3, 4, 2]
    assert ds.rating.tolist() == [5, 3, 4, 1, 2]
    assert ds.timestamp is not None and ds.timestamp[0] == 874965758
    assert ds.rating_scale == (1.0, 5.0) and ds.feedback == "explicit"
    cat = ds.item_catalog
    assert cat.fields["title"] == [
        "Toy Story",
        "Shanghai Triad (Yao a yao yao dao waipo qiao)",
        "unknown",
        "Café au lait",
    ]
    assert cat.fields["year"] == [1995, 1995, None, 1994]
    assert cat.fields["genres"] == [["Comedy"], ["Action"], ["unknown"], ["Action", "Comedy"]]
    assert cat.get("url", 0) == "http://x/toy" and cat.get("url", 2) is None
    assert ds.user_catalog.fields["occupation"][2] == "writer"


def test_ml100k_full_and_dispatch(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    ds = load_movielens(folder)
    assert len(ds) == 5 and ds.n_items == 4
    assert len(load_movielens(folder / "u.data")) == 5  # a file in the folder works too


def test_ml100k_errors(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    with pytest.raises(DataError, match="unknown ML-100K fold"):
        load_movielens_100k_fold(folder, "u9")
    (folder / "u1.test").write_text("3\t4\t1\t875072484\n1\t2\tx\t875071561\n")
    with pytest.raises(
        DataError, match=r"u1\.test, line 2, column 'rating': not an integer \(value: 'x'\)"
    ):
        load_movielens_100k_fold(folder, "u1")
    (folder / "u1.test").write_text("3\t4\t1\n")
    with pytest.raises(DataError, match=r"line 1: expected 4 fields, found 3"):
        load_movielens_100k_fold(folder, "u1")
    (folder / "u1.test").write_text("3\t99\t1\t875072484\n")
    with pytest.raises(
        DataError, match=r"u1\.test, line 1, column 'item': item id not in the item list.*99"
    ):
        load_movielens_100k_fold(folder, "u1")
    (folder / "u1.test").write_text("3\t4\t7\t875072484\n")
    with pytest.raises(
        DataError,
        match=r"u1\.test, line 1, column 'rating': rating outside the scale \(1, 5\) \(value: 7\)",
    ):
        load_movielens_100k_fold(folder, "u1")
    (folder / "u1.test").write_text("1\t1\t2\t875072484\n")
    with pytest.raises(DataError, match="duplicate"):
        load_movielens_100k_fold(folder, "u1")
    (folder / "u1.test").unlink()
    with pytest.raises(DataError, match="file not found"):
        load_movielens_100k_fold(folder, "u1")


# ------------------------------------------------------------------------------ MovieLens 1M / csv
def test_ml1m_dat_gz_and_pairs(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m")
    ds = load_movielens(folder)
    assert len(ds) == 3 and ds.feedback == "explicit" and ds.rating_scale == (1.0, 5.0)
    assert ds.items.ids.tolist() == [10, 20, 30] and ds.users.ids.tolist() == [1, 2, 3]
    assert (
        ds.item_catalog.fields["title"][1] == "Amélie" and ds.item_catalog.fields["year"][1] == 2001
    )
    assert ds.item_catalog.fields["genres"][0] == ["Action", "Crime"]
    assert ds.info["truncated"] is True
    pairs = load_movielens(folder, pairs_only=True)
    assert len(pairs) == 4 and pairs.feedback == "implicit" and pairs.timestamp is None
    assert pairs.rating.tolist() == [1, 1, 1, 1]


def test_ml1m_plain_dat_and_errors(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m", gz=False, pairs=False)
    assert len(load_movielens(folder)) == 3
    with pytest.raises(DataError, match="pairs_only=True but no ratings_pairs"):
        load_movielens(folder, pairs_only=True)
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::oops::1\n")
    with pytest.raises(
        DataError, match=r"ratings\.dat, line 2, column 'Rating': not a number \(value: 'oops'\)"
    ):
        load_movielens(folder)
    (folder / "ratings.dat").write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_movielens(folder)


def test_ml_csv_layout(tmp_path: Path) -> None:
    ds = load_movielens(write_ml_csv(tmp_path / "ml-latest-small"))
    assert ds.rating_scale == (0.5, 5.0) and ds.rating.tolist() == [4.0, 3.5, 0.5]
    assert ds.items.ids.tolist() == [1, 2, 3]
    cat = ds.item_catalog.fields
    assert cat["title"] == ["Toy Story", "American President, The", "Ready Player One"]
    assert cat["year"] == [1995, 1995, None]
    assert cat["genres"][2] == []
    assert cat["tags"] == [["pixar", "fun"], [], []]


def test_movielens_unrecognised_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match=r"looked for u\.data.*ratings\.dat.*ratings\.csv"):
        load_movielens(tmp_path / "x")
    with pytest.raises(DataError, match="not found"):
        load_movielens(tmp_path / "missing")


# ------------------------------------------------------------------------------ Amazon 2018
def test_amazon_dedup_vocab_and_catalog(tmp_path: Path) -> None:
    folder = write_amazon(tmp_path / "amazon2018-tiny")
    with pytest.warns(UserWarning, match="1 duplicate"):
        ds = load_amazon2018(folder)
    assert len(ds) == 3 and ds.info["duplicates_removed"] == 1
    assert ds.items.ids.tolist() == ["A1", "A2", "A3"]  # reviewed first, then meta-only
    # the latest (U1, A1) review (time 100, rating 5) is kept over the older one (time 90)
    u1a1 = (ds.users.external(ds.user_idx) == "U1") & (ds.items.external(ds.item_idx) == "A1")
    assert ds.rating[u1a1].tolist() == [5.0]
    cat = ds.item_catalog.fields
    assert cat["title"] == ["Card & Box", "Other", "Cold start item"]
    assert cat["price"] == [25.0, None, 1299.99]
    assert cat["description"] == ["Nice card second", None, None]
    assert cat["feature"][0] == ["a"] and cat["category"][0] == ["Gift Cards"]
    assert cat["also_buy"][0] == ["A2"] and cat["brand"][1] is None
    assert cat["reviews"][0][0] == "Great. Loved it" and len(cat["reviews"][0]) == 3
    assert cat["reviews"][2] == []
    # the reviews file itself: meta found next to it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_amazon2018(folder / "Tiny_5.json.gz").n_items == 3


def test_amazon_errors(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "Bad_5.json").write_text(
        '{"overall": 5, "reviewerID": "U", "asin": "A"}\n{"overall": 5, "asin": "B"}\n'
    )
    with pytest.raises(DataError, match=r"Bad_5\.json, line 2: review lacks field 'reviewerID'"):
        load_amazon2018(folder)
    (folder / "Bad_5.json").write_text('{"overall": 9, "reviewerID": "U", "asin": "A"}\n')
    with pytest.raises(DataError, match=r"line 1.*overall outside"):
        load_amazon2018(folder)
    (folder / "Bad_5.json").write_text("{not json\n")
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        load_amazon2018(folder)
    (folder / "Bad_5.json").unlink()
    with pytest.raises(DataError, match="no reviews file"):
        load_amazon2018(folder)


# ------------------------------------------------------------------------------ Online Retail
@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_online_retail_cleaning_and_aggregation(tmp_path: Path, fmt: str) -> None:
    frame = retail_frame()
    path = tmp_path / f"online_retail.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    ds = load_online_retail(tmp_path)
    assert ds.feedback == "implicit"
    assert ds.info["dropped"] == {
        "no_customer": 1,
        "cancelled": 1,
        "quantity_le_0": 1,
        "price_le_0": 1,
    }
    assert ds.info["rows_kept"] == 4
    assert ds.users.ids.tolist() == [17850, 13047] and ds.items.ids.tolist() == ["X", "Y"]
    pairs = dict(
        zip(
            zip(ds.user_idx.tolist(), ds.item_idx.tolist(), strict=True),
            ds.rating.tolist(),
            strict=True,
        )
    )
    assert pairs == {(0, 0): 2.0, (0, 1): 1.0, (1, 1): 1.0}
    assert ds.timestamp is not None
    assert ds.timestamp[0] == pd.Timestamp("2011-02-01 10:00:00", tz="UTC").value // 10**9
    assert ds.item_catalog.fields["description"] == ["MUG", "CUP"]
    assert ds.item_catalog.fields["price"] == [2.0, 2.25]
    by_qty = load_online_retail(path, weight="quantity")
    assert sorted(by_qty.rating.tolist()) == [1.0, 5.0, 5.0]


def test_online_retail_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no online_retail\.parquet"):
        load_online_retail(tmp_path)
    retail_frame().drop(columns=["StockCode"]).to_parquet(tmp_path / "online_retail.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['StockCode'\]"):
        load_online_retail(tmp_path)
    with pytest.raises(DataError, match="weight"):
        load_online_retail(tmp_path, weight="euros")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ generic tables
COLS = {"user": "u", "item": "i", "rating": "r", "timestamp": "t"}


def test_table_csv_tsv_gz_parquet_dataframe(tmp_path: Path) -> None:
    text = "u,i,r,t\na,x,4,10\nb,x,2.5,20\na,y,1,30\n"
    (tmp_path / "t.csv").write_text(text)
    ds = load_table(tmp_path / "t.csv", COLS, rating_scale=(1, 5))
    assert ds.users.ids.tolist() == ["a", "b"] and ds.rating.tolist() == [4, 2.5, 1]
    assert ds.timestamp is not None and ds.timestamp.tolist() == [10, 20, 30]
    (tmp_path / "t.tsv").write_text(text.replace(",", "\t"))
    assert len(load_table(tmp_path / "t.tsv", COLS)) == 3
    with gzip.open(tmp_path / "t.txt.gz", "wt") as fh:
        fh.write(text.replace(",", ";"))
    assert len(load_table(tmp_path / "t.txt.gz", COLS)) == 3
    pd.read_csv(tmp_path / "t.csv").to_parquet(tmp_path / "t.parquet")
    assert load_table(tmp_path / "t.parquet", COLS).rating.tolist() == [4, 2.5, 1]
    frame = pd.DataFrame({"userId": [1, 2], "movieId": [5, 5]})
    implicit = load_table(frame, feedback="implicit")  # columns guessed
    assert implicit.users.ids.tolist() == [1, 2] and implicit.rating.tolist() == [1.0, 1.0]
    dates = pd.DataFrame({"u": ["a"], "i": ["x"], "t": ["2011-01-01 00:00:01"]})
    assert load_table(dates, {"user": "u", "item": "i", "timestamp": "t"}).timestamp.tolist() == [
        1293840001
    ]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "kwargs", "pattern"),
    [
        (
            "u,i,r\na,x,4\n",
            {"columns": {"user": "user", "item": "i"}},
            r"t\.csv, line 1: missing user column 'user'; available columns: \['u', 'i', 'r'\]",
        ),
        (
            "u,i,r\na,x,4\nb,y,good\n",
            {},
            r"t\.csv, line 3, column 'r': rating is not a number \(value: 'good'\)",
        ),
        (
            "u,i,r\na,x,4\nb,y,9\n",
            {"rating_scale": (1, 5)},
            r"line 3, column 'r': rating outside rating_scale \(1, 5\) \(value: '9'\)",
        ),
        ("u,i,r\na,x,4\nb,y,3,extra\n", {}, r"line 3: expected 3 fields, found 4"),
        ("u,i,r\na,x,4\nb,y\n", {}, r"line 3: expected 3 fields, found 2"),
        ("", {}, r"t\.csv: empty file"),
        ("u,i,r\n", {}, r"no data rows"),
        ("u,i,r\na,x,4\n\nb,x,3\na,x,5\n", {}, r"duplicate \(user, item\) pair at lines 2 and 5"),
        ('u,i,r\n"a\nb",x,4\n,y,3\n', {}, r"line 4, column 'u': empty user id"),
    ],
)
def test_table_errors(
    tmp_path: Path, content: str, kwargs: dict[str, object], pattern: str
) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    kwargs.setdefault("columns", {"user": "u", "item": "i", "rating": "r"})
    with pytest.raises(DataError, match=pattern):
        load_table(path, **kwargs)  # type: ignore[arg-type]


def test_table_encoding_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("u,i,r\na,x,4\nb,caf\xe9,3\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3: cannot decode as utf-8 at byte offset 17"):
        load_table(path, {"user": "u", "item": "i", "rating": "r"})
    ds = load_table(path, {"user": "u", "item": "i", "rating": "r"}, encoding="latin-1")
    assert ds.items.ids.tolist() == ["x", "café"]


def test_table_duplicate_policies(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("u,i,r,t\na,x,4,10\na,x,2,5\nb,x,1,1\n")
    with pytest.warns(UserWarning, match="1 duplicate"):
        ds = load_table(path, COLS, duplicates="last")
    assert ds.rating.tolist() == [4.0, 1.0]  # latest by timestamp
    with pytest.warns(UserWarning):
        assert load_table(path, COLS, duplicates="sum").rating.tolist() == [6.0, 1.0]
    frame = pd.DataFrame({"u": [1, 1], "i": [2, 2]})
    with pytest.raises(DataError, match="rows 1 and 2"):
        load_table(frame, {"user": "u", "item": "i"})
    with pytest.raises(DataError, match="file not found"):
        load_table(tmp_path / "nope.csv", COLS)


# ------------------------------------------------------------------------------ resolving
def test_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCF_DATA_DIR", str(tmp_path))
    write_ml100k(tmp_path / "ml-100k")
    write_amazon(tmp_path / "amazon2018-tiny")
    retail_frame().to_parquet(
        (tmp_path / "retail").mkdir() or tmp_path / "retail" / "online_retail.parquet"
    )
    assert resolve_data_path("ml-100k") == tmp_path / "ml-100k"
    assert len(resolve_dataset("ml-100k")) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert resolve_dataset("amazon2018-tiny").n_items == 3
    assert resolve_dataset(str(tmp_path / "retail")).feedback == "implicit"
    (tmp_path / "t.csv").write_text("userId,movieId\n1,2\n")
    assert len(resolve_dataset(str(tmp_path / "t.csv"))) == 1
    with pytest.raises(DataError, match=rf"'ml-1m' not found in {tmp_path}.*known names: ml-100k"):
        resolve_dataset("ml-1m")
    with pytest.raises(
        DataError,
        match=rf"neither a known data set name nor an existing path; searched {tmp_path}.*ml-100k",
    ):
        resolve_dataset("no-such-set")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell which loader"):
        resolve_dataset(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------ reported bugs
@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "frame"])
def test_table_without_rating_column_is_implicit(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"userId": [1, 1, 2], "movieId": [2, 3, 2]})
    source: Path | pd.DataFrame = frame
    if fmt == "parquet":
        source = tmp_path / "t.parquet"
        frame.to_parquet(source)
    elif fmt != "frame":
        source = tmp_path / f"t.{fmt}"
        frame.to_csv(source, sep="," if fmt == "csv" else "\t", index=False)
    ds = load_table(source)
    assert ds.feedback == "implicit" and ds.rating_scale is None
    assert ds.rating.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(DataError, match=r"feedback='explicit' needs a rating column"):
        load_table(source, feedback="explicit")
    with pytest.raises(DataError, match=r"rating_scale \(1, 5\) given but the table has no rating"):
        load_table(source, rating_scale=(1, 5))
    with_rating = frame.assign(rating=[4, 2, 5])
    explicit = load_table(with_rating)
    assert explicit.feedback == "explicit" and explicit.rating_scale == (2.0, 5.0)


def test_resolved_table_without_rating_column_is_implicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCF_DATA_DIR", str(tmp_path))
    (tmp_path / "clicks.csv").write_text("user_id,item_id\nu1,a\nu1,b\nu2,a\n")
    ds = resolve_dataset(str(tmp_path / "clicks.csv"))
    assert (ds.feedback, ds.rating_scale, len(ds)) == ("implicit", None, 3)


def _ml_file(folder: Path, layout: str, bad: str) -> tuple[Path, int, str]:
    """A MovieLens folder whose second rating (after a blank line) is ``bad``: (file, line, column)."""
    if layout == "100k":
        write_ml100k(folder)
        (folder / "u.data").write_text(f"1\t1\t5\t874965758\n2\t2\t{bad}\t876893171\n")
        return folder / "u.data", 2, "rating"
    if layout in ("1m", "10m"):
        write_ml1m(folder, gz=False, pairs=False)
        if layout == "10m":
            (folder / "users.dat").unlink()  # the 10M layout: half stars, scale (0.5, 5)
        (folder / "ratings.dat").write_text(f"1::10::5::978300760\n\n1::20::{bad}::978302109\n")
        return folder / "ratings.dat", 3, "Rating"
    write_ml_csv(folder)
    (folder / "ratings.csv").write_text(
        f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n\n1,3,{bad},964981247\n"
    )
    return folder / "ratings.csv", 4, "rating"


@pytest.mark.parametrize("layout", ["100k", "1m", "10m", "csv"])
@pytest.mark.parametrize("bad", ["7", "-3", "0"])
def test_movielens_rating_outside_scale_names_file_line_column_value(
    tmp_path: Path, layout: str, bad: str
) -> None:
    path, line, column = _ml_file(tmp_path / layout, layout, bad)
    with pytest.raises(DataError, match=r"rating outside the scale \((1|0\.5), 5\)") as info:
        load_movielens(tmp_path / layout)
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), line, column)
    assert err.value == float(bad) and f"(value: {err.value!r})" in str(err)


def test_movielens_half_star_scale_accepts_its_range(tmp_path: Path) -> None:
    path, _, _ = _ml_file(tmp_path / "10m", "10m", "0.5")
    assert load_movielens(path.parent).rating_scale == (0.5, 5.0)


@pytest.mark.parametrize("where", ["parquet", "frame"])
def test_float_ids_beyond_int64_are_an_error(tmp_path: Path, where: str) -> None:
    frame = pd.DataFrame({"u": [1.0, 2.0**63, 2.0**64], "i": [1.0, 2.0, 3.0]})
    source: Path | pd.DataFrame = frame
    label = "<DataFrame>"
    if where == "parquet":
        source = tmp_path / "t.parquet"
        frame.to_parquet(source)
        label = str(source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        with pytest.raises(
            DataError, match=r"line 2, column 'u': user id outside the 64-bit integer range"
        ) as info:
            load_table(source, {"user": "u", "item": "i"})
    assert (info.value.path, info.value.line, info.value.column) == (label, 2, "u")
    assert info.value.value == 2.0**63
    # below 2**63 whole floats are still int64 ids, one per distinct value
    fine = pd.DataFrame({"u": [1.0, -(2.0**63), 2.0**62], "i": [1.0, 2.0, 3.0]})
    ds = load_table(fine, {"user": "u", "item": "i"})
    assert ds.users.ids.dtype == np.int64 and ds.n_users == 3
    unsigned = pd.DataFrame({"u": np.array([1, 2**63], dtype=np.uint64), "i": [1, 2]})
    with pytest.raises(DataError, match=r"line 2, column 'u': user id outside the 64-bit"):
        load_table(unsigned, {"user": "u", "item": "i"})


def test_movielens_pairs_parquet_ids_are_checked(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml-1m", pairs=False)
    pairs = folder / "ratings_pairs.parquet"
    pd.DataFrame({"UserID": [1.0, 2.0**63], "MovieID": [10.0, 20.0]}).to_parquet(pairs)
    with pytest.raises(DataError, match=r"line 2, column 'UserID': user id outside the 64-bit"):
        load_movielens(folder, pairs_only=True)
    pd.DataFrame({"UserID": ["1", "x"], "MovieID": ["10", "20"]}).to_parquet(pairs)
    with pytest.raises(DataError, match=r"line 2, column 'UserID': id is not an integer"):
        load_movielens(folder, pairs_only=True)
    pd.DataFrame({"UserID": [1.0, 2.5], "MovieID": [10, 20]}).to_parquet(pairs)
    with pytest.raises(DataError, match=r"line 2, column 'UserID': id is not an integer"):
        load_movielens(folder, pairs_only=True)
    pd.DataFrame({"UserID": [1, 2], "MovieID": ["10", "20"]}).to_parquet(pairs)
    assert load_movielens(folder, pairs_only=True).items.ids.tolist() == [10, 20, 30]


def _amazon_review(**fields: object) -> str:
    return json.dumps({"overall": 5.0, "reviewerID": "U", "asin": "A", **fields})


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("[" * 200_000, r"Bad_5\.json, line 2: invalid JSON: nested too deeply"),
        ("{" * 200_000, r"Bad_5\.json, line 2: invalid JSON"),
        (
            _amazon_review(unixReviewTime=1).replace(
                '"unixReviewTime": 1', '"unixReviewTime": 1e400'
            ),
            r"Bad_5\.json, line 2, column 'unixReviewTime': unixReviewTime is not an integer "
            r"\(value: inf\)",
        ),
        (
            _amazon_review(unixReviewTime=10**30),
            r"line 2, column 'unixReviewTime': unixReviewTime outside the 64-bit integer range",
        ),
        (
            _amazon_review(overall="five"),
            r"line 2, column 'overall': overall is not a number \(value: 'five'\)",
        ),
        (
            _amazon_review(overall=10**400),
            r"line 2, column 'overall': overall is not a number",
        ),
        (
            '{"overall": 5, "reviewerID": "U", "asin": "A", "unixReviewTime": 1' + "0" * 5000 + "}",
            r"line 2: invalid JSON",
        ),
    ],
)
def test_amazon_pathological_lines_are_data_errors(tmp_path: Path, line: str, pattern: str) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "Bad_5.json").write_text(_amazon_review(unixReviewTime=5) + "\n" + line + "\n")
    with pytest.raises(DataError, match=pattern) as info:
        load_amazon2018(folder)
    assert info.value.path == str(folder / "Bad_5.json") and info.value.line == 2


@pytest.mark.parametrize("tail", ["\n", "\n\n", "\n  \n\n", "\r\n"])
def test_ml100k_trailing_blank_lines_are_accepted(tmp_path: Path, tail: str) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text(U_BASE + U_TEST.rstrip("\n") + tail)
    (folder / "u1.base").write_text(U_BASE + "\n")
    assert len(load_movielens(folder)) == 5
    _, train, test = load_movielens_100k_fold(folder, "u1")
    assert (len(train), len(test)) == (3, 2)
    (folder / "u.data").write_text(U_BASE + "\n" + U_TEST)
    with pytest.raises(DataError, match=r"u\.data, line 4: empty line"):
        load_movielens(folder)


def test_ml100k_large_file_blank_lines_and_ragged_lines(tmp_path: Path) -> None:
    """Files above the reference parser's size take the vectorised path: same rules."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    rows = [
        f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + u * 50 + i}"
        for u in range(1, 201)
        for i in range(1, 51)
    ]
    (folder / "u.data").write_text("\n".join(rows) + "\n\n \n")
    ds = load_movielens(folder)
    assert len(ds) == 10_000 and ds.users.ids.tolist()[:2] == [1, 2]
    assert ds.timestamp is not None and ds.timestamp[-1] == 880000000 + 200 * 50 + 50
    # two ragged lines whose value count adds up (3 + 5 fields) were silently realigned before
    rows[99] = "3\t4\t5"
    rows[100] = "3\t4\t5\t880000000\t1"
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"u\.data, line 100: expected 4 fields, found 3"):
        load_movielens(folder)
    rows[99], rows[100] = "1\t50\t1\t1", "2\t1\t2\t2"
    rows[5000] = "1\t2\t8\t1"  # a duplicate pair too, but the rating is checked first
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"line 5001, column 'rating': rating outside"):
        load_movielens(folder)


def test_loaders_package_keeps_the_old_names() -> None:
    import llmcf.data.loaders as loaders

    for name in (
        "KNOWN_DATASETS",
        "ML100K_FOLDS",
        "DuplicatePolicy",
        "PathLike",
        "load_amazon2018",
        "load_movielens",
        "load_movielens_100k",
        "load_movielens_100k_fold",
        "load_online_retail",
        "load_table",
        "resolve_data_path",
        "resolve_dataset",
        "_guess_columns",  # llmcf.backends.artifact
    ):
        assert hasattr(loaders, name), name
    assert loaders._guess_columns(["userId", "movieId", "rating"]) == {
        "user": "userId",
        "item": "movieId",
        "rating": "rating",
    }


def test_online_retail_csv_errors_name_the_line(tmp_path: Path) -> None:
    frame = retail_frame().astype({"CustomerID": object})
    frame.loc[2, "CustomerID"] = "abc"
    frame.to_csv(tmp_path / "online_retail.csv", index=False)
    with pytest.raises(DataError, match=r"line 4, column 'CustomerID': not a number"):
        load_online_retail(tmp_path)
    frame = retail_frame()
    frame.loc[1, "InvoiceDate"] = "someday"
    frame.to_csv(tmp_path / "online_retail.csv", index=False)
    with pytest.raises(DataError, match=r"line 3, column 'InvoiceDate': unparseable InvoiceDate"):
        load_online_retail(tmp_path)


# ------------------------------------------------------------------------------ real data
def real_folder(name: str) -> Path:
    root = os.environ.get("LLMCF_DATA_DIR")
    if not root:
        pytest.skip("LLMCF_DATA_DIR is not set; real data sets unavailable")
    folder = Path(root) / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.mark.realdata
def test_real_ml100k() -> None:
    folder = real_folder("ml-100k")
    ds = load_movielens(folder)
    assert (len(ds), ds.n_users, ds.n_items) == (100_000, 943, 1682)
    assert ds.item_catalog.get("title", 0) == "Toy Story" and ds.item_catalog.get("year", 0) == 1995
    fold, train, test = load_movielens_100k_fold(folder, "u1")
    assert (len(train), len(test)) == (80_000, 20_000)
    first_base = (folder / "u1.base").read_text().split("\n", 1)[0].split("\t")
    assert fold.users.external(fold.user_idx[0]) == int(first_base[0])
    assert fold.items.external(fold.item_idx[0]) == int(first_base[1])
    best = min(_timed(lambda: load_movielens_100k_fold(folder, "u1")) for _ in range(5))
    assert best < 0.250, f"fold load took {best * 1000:.0f} ms"
    catalog_time = _timed(lambda: load_movielens_100k_fold(folder, "u2")[0].item_catalog.fields)
    assert catalog_time < 0.350


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


@pytest.mark.realdata
def test_real_ml1m_partial() -> None:
    folder = real_folder("ml-1m-partial")
    ds = load_movielens(folder)
    assert len(ds) == 487_650 and ds.n_users == 6040 and ds.n_items == 3883
    pairs = load_movielens(folder, pairs_only=True)
    assert len(pairs) == 1_000_209 and pairs.feedback == "implicit"
    assert int((pairs.item_counts() > 0).sum()) == 3706


@pytest.mark.realdata
def test_real_amazon_gift_cards() -> None:
    folder = real_folder("amazon2018-gift-cards")
    with pytest.warns(UserWarning, match="7 duplicate"):
        ds = load_amazon2018(folder)
    assert ds.info["n_reviews"] == 2972
    assert (len(ds), ds.n_users, ds.n_items) == (2965, 458, 1547)
    assert int((ds.item_counts() > 0).sum()) == 148
    assert all(isinstance(t, str) and "<" not in t for t in ds.item_catalog.fields["title"] if t)


@pytest.mark.realdata
def test_real_online_retail() -> None:
    folder = real_folder("uci-online-retail")
    ds = load_online_retail(folder, drop_nonpositive_price=False)
    assert (ds.n_users, ds.n_items, len(ds)) == (4339, 3665, 266_802)
    assert ds.info["rows_kept"] == 397_924
    default = load_online_retail(folder)
    assert default.info["dropped"] == {
        "no_customer": 135_080,
        "cancelled": 8905,
        "quantity_le_0": 0,
        "price_le_0": 40,
    }
    assert (default.n_users, default.n_items, len(default)) == (4338, 3665, 266_792)
