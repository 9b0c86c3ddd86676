"""Local backend: neighbour lists against a pure-Python oracle, ItemKNN's kernel, batch top-N,
Parquet output, the CLI, and every error path, on the tiny hand-made table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmcf.backends import local
from llmcf.backends.artifact import NeighborArtifact
from llmcf.errors import ConfigError, DataError

from .conftest import TINY_ROWS
from .oracle import neighbor_lists

SIMILARITIES = ["cosine", "adjusted_cosine", "pearson", "msd"]


def as_lists(art: NeighborArtifact) -> dict[str, list[tuple[str, float]]]:
    ents = art.entities
    out = {}
    for x in range(len(ents)):
        idx, sim = art.neighbors(x)
        out[str(ents.ids[x])] = [
            (str(ents.ids[i]), float(s)) for i, s in zip(idx, sim, strict=True)
        ]
    return out


def assert_lists_close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for x in want:
        assert [i for i, _ in got[x]] == [i for i, _ in want[x]], x
        np.testing.assert_allclose(
            [s for _, s in got[x]], [s for _, s in want[x]], rtol=0, atol=1e-12
        )


def test_hand_checked_cosine_and_canonical_order(tiny_csv: Path) -> None:
    art = local.build_neighbors(tiny_csv, "item", "cosine", n_neighbors=4)
    # ids sorted, whatever the input order
    assert art.items.ids.tolist() == ["i1", "i2", "i3", "i4", "i5"]
    assert art.users.ids.tolist() == ["alice", "bob", "carol", "dave", "erin", "frank", "zed"]
    lists = as_lists(art)
    # i1 and i2 are co-rated by alice (5, 3), bob (3, 1), frank (2, 4.5)
    want = (15 + 3 + 9) / math.sqrt((25 + 9 + 4) * (9 + 1 + 20.25))
    assert dict(lists["i1"])["i2"] == pytest.approx(want, abs=1e-15)
    assert lists["i5"] == []  # nobody else rated i5
    assert art.nbr_idx.dtype == np.int32 and art.nbr_sim.dtype == np.float64
    assert (art.nbr_idx[4] == -1).all() and (art.nbr_sim[4] == 0).all()


@pytest.mark.parametrize("kind", ["item", "user"])
@pytest.mark.parametrize("similarity", SIMILARITIES)
@pytest.mark.parametrize(("min_support", "shrinkage"), [(1, None), (2, 1.5)])
def test_lists_equal_the_oracle(
    tiny_csv: Path, kind: str, similarity: str, min_support: int, shrinkage: float | None
) -> None:
    art = local.build_neighbors(
        tiny_csv, kind, similarity, n_neighbors=3, min_support=min_support, shrinkage=shrinkage
    )
    want = neighbor_lists(TINY_ROWS, kind, similarity, 3, min_support, shrinkage or 0.0)
    assert_lists_close(as_lists(art), want)
    assert art.params == {
        "n_neighbors": 3,
        "shrinkage": shrinkage or 0.0,
        "min_support": min_support,
    }


def test_same_neighbours_as_itemknn_sparse_mode(tiny_frame: pd.DataFrame) -> None:
    from llmcf.cf import ItemKNN
    from llmcf.data.dataset import Dataset

    ds = Dataset.from_arrays(tiny_frame.user_id, tiny_frame.item_id, tiny_frame.rating)
    model = ItemKNN(similarity="pearson", dense_max=0, n_neighbors=4, k=4).fit(ds)
    art = local.build_neighbors(ds, "item", "pearson", n_neighbors=4)
    for x, item in enumerate(ds.items.ids):
        idx, sim = model.neighbors(x, 4)
        mine = dict(as_lists(art)[str(item)])
        assert {str(ds.items.ids[i]): s for i, s in zip(idx, sim, strict=True)} == pytest.approx(
            mine
        )


def test_save_load_round_trip_and_corruption(tmp_path: Path, tiny_csv: Path) -> None:
    from llmcf.errors import ModelLoadError

    art = local.build_neighbors(tiny_csv, "user", "msd", n_neighbors=2)
    folder = art.save(tmp_path / "art")
    back = NeighborArtifact.load(folder)
    assert back.compare(art).equal and back.compare(art).rows_exact == len(art.users)
    assert back.kind == "user" and back.similarity == "msd" and back.params == art.params
    np.testing.assert_array_equal(back.nbr_sim, art.nbr_sim)
    data = np.load(folder / "arrays.npz")
    arrays = {k: data[k] for k in data.files}
    arrays["nbr_sim"] = arrays["nbr_sim"] + 1.0
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(ModelLoadError, match="checksum"):
        NeighborArtifact.load(folder)
    with pytest.raises(ModelLoadError, match="no manifest"):
        NeighborArtifact.load(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelLoadError, match="not a neighbour artifact"):
        NeighborArtifact.load(tmp_path / "other")


def test_compare_tolerates_only_tie_reorders(tiny_csv: Path) -> None:
    art = local.build_neighbors(tiny_csv, "item", "cosine", n_neighbors=4)
    other = NeighborArtifact(
        art.kind,
        art.similarity,
        art.params,
        art.users,
        art.items,
        art.nbr_idx.copy(),
        art.nbr_sim.copy(),
    )
    other.nbr_sim[0, 0] += 1e-7
    diff = art.compare(other)
    assert not diff.equal and diff.max_sim_diff == pytest.approx(1e-7)
    tied = NeighborArtifact(
        art.kind,
        art.similarity,
        art.params,
        art.users,
        art.items,
        np.array([[1, 2], [0, -1]], dtype=np.int32)[[0, 1, 1, 1, 1]],
        np.array([[0.5, 0.5], [0.4, 0.0]])[[0, 1, 1, 1, 1]],
    )
    swapped = NeighborArtifact(
        art.kind,
        art.similarity,
        art.params,
        art.users,
        art.items,
        np.array([[2, 1], [0, -1]], dtype=np.int32)[[0, 1, 1, 1, 1]],
        np.array([[0.5, 0.5], [0.4, 0.0]])[[0, 1, 1, 1, 1]],
    )
    d = tied.compare(swapped)
    assert d.equal and d.rows_tied == 1 and d.rows_exact == 4
    wrong = NeighborArtifact(
        art.kind,
        art.similarity,
        art.params,
        art.users,
        art.items,
        np.array([[3, 2, 1], [0, -1, -1]], dtype=np.int32)[[0, 1, 1, 1, 1]],
        np.array([[0.6, 0.5, 0.5], [0.4, 0.0, 0.0]])[[0, 1, 1, 1, 1]],
    )
    right = NeighborArtifact(
        art.kind,
        art.similarity,
        art.params,
        art.users,
        art.items,
        np.array([[2, 3, 1], [0, -1, -1]], dtype=np.int32)[[0, 1, 1, 1, 1]],
        np.array([[0.6, 0.5, 0.5], [0.4, 0.0, 0.0]])[[0, 1, 1, 1, 1]],
    )
    d = wrong.compare(right)
    assert not d.equal and d.rows_different == 1 and d.first_different == 0
    assert not art.compare(local.build_neighbors(tiny_csv, "item", "cosine", n_neighbors=3)).equal


@pytest.mark.parametrize("name", ["item-knn", "user-knn", "baseline", "global-mean"])
def test_recommend_all_is_the_one_ranking_path(tmp_path: Path, tiny_csv: Path, name: str) -> None:
    from llmcf.data.loaders import load_table
    from llmcf.models import make_model

    model = make_model(name, k=2).fit(load_table(tiny_csv))
    frame = local.recommend_all(model, 3)
    for u, uid in enumerate(model.users_.ids):
        want = model.recommend(u, 3)
        got = frame[frame.user_id == uid].sort_values("rank")
        assert got.item_id.tolist() == want.item_ids.tolist(), uid
        np.testing.assert_allclose(got.score.to_numpy(), want.scores, atol=1e-12)
        assert got.source.tolist() == want.sources
        assert got["rank"].tolist() == list(range(1, len(want) + 1))
        assert bool(got.was_fallback.iloc[0]) == want.was_fallback
    path = local.write_recommendations(tmp_path / "recs.parquet", frame)
    back = local.read_recommendations(path)
    assert len(back) == len(frame)


def test_fused_text_neighbours(tiny_csv: Path) -> None:
    text = pd.DataFrame(
        {
            "item_id": ["i1", "i1", "i5", "i2", "unknown"],
            "neighbor_id": ["i5", "i3", "i1", "i1", "i1"],
            "similarity": [0.9, 0.2, 0.9, 0.4, 0.5],
        }
    )
    cf = local.build_neighbors(tiny_csv, "item", "cosine", n_neighbors=3)
    fused = local.build_neighbors(
        tiny_csv, "item", "cosine", n_neighbors=3, text_neighbors=text, alpha=0.7
    )
    assert fused.info["text_rows_dropped"] == 1
    cf_l, got = as_lists(cf), as_lists(fused)
    for x in got:
        cands = {i for i, _ in cf_l[x]} | set(text[text.item_id == x].neighbor_id) - {"unknown"}
        scores = {
            i: 0.7 * dict(cf_l[x]).get(i, 0.0)
            + 0.3 * float(text[(text.item_id == x) & (text.neighbor_id == i)].similarity.sum())
            for i in cands
        }
        want = sorted(((i, s) for i, s in scores.items() if s > 0), key=lambda t: (-t[1], t[0]))[:3]
        assert [i for i, _ in got[x]] == [i for i, _ in want], x
        assert [v for _, v in got[x]] == pytest.approx([v for _, v in want]), x
    # i5 has no CF neighbour: its list is the text list
    assert [i for i, _ in got["i5"]] == ["i1"]
    assert fused.params["alpha"] == 0.7 and fused.params["fusion"] == "fixed"


def test_fusion_formula_matches_text_fused_module() -> None:
    import llmcf.text.fused as fused_mod
    from llmcf.backends.artifact import fuse_neighbors

    rng = np.random.default_rng(0)
    cf_idx = np.array([[1, 2], [0, -1], [0, 1]], dtype=np.int32)
    cf_sim = np.array([[0.8, 0.1], [0.8, 0.0], [0.1, 0.3]])
    text_idx = np.array([[2, 1], [2, 0], [1, -1]], dtype=np.int32)
    text_cos = rng.uniform(0.2, 0.9, size=(3, 2))
    idx, sim = fuse_neighbors(cf_idx, cf_sim, text_idx, text_cos, 0.6, 3, shift=0.3, power=2.0)
    for x in range(3):
        for j in range(3):
            if idx[x, j] < 0:
                continue
            nb = idx[x, j]
            cf = cf_sim[x][cf_idx[x] == nb].sum()
            cos = text_cos[x][text_idx[x] == nb].sum()
            want = fused_mod.fuse_similarity(
                np.array([cf]),
                np.array([cos]),
                np.array([1.0]),
                fusion="fixed",
                alpha=0.6,
                beta=1.0,
                shift=0.3,
                power=2.0,
            )[0]
            assert sim[x, j] == want


def test_text_neighbor_table_is_exact_cosine() -> None:
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    table = local.text_neighbor_table(np.array(["a", "b", "c"]), emb, 1)
    assert table.item_id.tolist() == ["a", "b", "c"]
    assert table.neighbor_id.tolist() == ["b", "c", "b"]
    np.testing.assert_allclose(table.similarity, [0.6, 0.8, 0.8])


def test_errors_name_the_problem(tmp_path: Path, tiny_csv: Path, tiny_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="unknown neighbour kind"):
        local.build_neighbors(tiny_csv, "shop", "cosine")
    with pytest.raises(ConfigError, match="pearson_baseline needs fitted baselines"):
        local.build_neighbors(tiny_csv, "item", "pearson_baseline")
    with pytest.raises(ConfigError, match="n_neighbors"):
        local.build_neighbors(tiny_csv, "item", "cosine", n_neighbors=0)
    with pytest.raises(ConfigError, match="alpha"):
        local.build_neighbors(tiny_csv, "item", "cosine", alpha=2.0)
    with pytest.raises(ConfigError, match="kind='item'"):
        local.build_neighbors(tiny_csv, "user", "cosine", text_neighbors=tiny_frame)
    with pytest.raises(DataError, match="missing column 'neighbor_id'"):
        local.build_neighbors(tiny_csv, "item", "cosine", text_neighbors=tiny_frame)
    bad_text = tmp_path / "text.csv"
    bad_text.write_text("item_id,neighbor_id,similarity\ni1,i2,0.5\ni2,i1,high\n")
    with pytest.raises(DataError, match=r"text.csv, line 3, column 'similarity'.*'high'"):
        local.build_neighbors(tiny_csv, "item", "cosine", text_neighbors=bad_text)
    from llmcf.data.loaders import load_table
    from llmcf.models import make_model

    model = make_model("item-knn").fit(load_table(tiny_csv))
    with pytest.raises(ConfigError, match="n must be between 1 and"):
        local.recommend_all(model, 0)
    with pytest.raises(ConfigError, match="n must be between 1 and"):
        local.recommend_all(model, 10**9)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,rating\na,x,4\nb,y,lots\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3.*'lots'"):
        local.build_neighbors(bad, "item", "cosine")
    with pytest.raises(ConfigError, match="single Parquet/CSV"):
        local.load_interactions("ml-100k", columns={"user": "u", "item": "i"})


def test_cli_fit_backend_local_and_synth(
    tmp_path: Path, tiny_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmcf.cli import main
    from llmcf.models import load_model

    out, recs = tmp_path / "model", tmp_path / "recs.parquet"
    code = main([
        "fit", "--backend", "local", "--data", str(tiny_csv), "--model", "user-knn",
        "--similarity", "pearson", "--k", "3", "--out", str(out),
        "--recommend", "2", "--recs-out", str(recs), "--quiet",
    ])  # fmt: skip
    assert code == 0
    model = load_model(out)  # the folder is a model: servable, loadable
    assert type(model).__name__ == "UserKNN" and model.config.similarity == "pearson"
    frame = pd.read_parquet(recs)
    assert list(frame.columns[:4]) == ["user_id", "rank", "item_id", "score"]
    assert set(frame.user_id) == set(model.users_.ids) and frame["rank"].max() == 2
    for u, uid in enumerate(model.users_.ids):
        got = frame[frame.user_id == uid].sort_values("rank").item_id.tolist()
        assert got == model.recommend(u, 2).item_ids.tolist()
    assert (
        main(
            [
                "fit",
                "--backend",
                "local",
                "--data",
                str(tiny_csv),
                "--out",
                str(out),
                "--recommend",
                "2",
            ]
        )
        == 2
    )
    assert "together" in capsys.readouterr().err
    synth_out = tmp_path / "s.parquet"
    assert (
        main(
            [
                "synth",
                "--users",
                "30",
                "--items",
                "20",
                "--interactions",
                "200",
                "--text",
                "--out",
                str(synth_out),
                "--quiet",
            ]
        )
        == 0
    )
    assert len(pd.read_parquet(synth_out)) == 200
    catalog = pd.read_parquet(tmp_path / "s.items.parquet")
    assert len(catalog) == 20 and {"title", "description"} <= set(catalog.columns)
    assert (
        main(
            [
                "synth",
                "--users",
                "2",
                "--items",
                "2",
                "--interactions",
                "5",
                "--out",
                str(synth_out),
            ]
        )
        == 2
    )
    assert "exceeds" in capsys.readouterr().err


def test_parquet_reader_agrees_with_load_table_and_checks_input(
    tmp_path: Path, tiny_csv: Path, tiny_parquet: Path, tiny_frame: pd.DataFrame
) -> None:
    from llmcf.data.dataset import Dataset
    from llmcf.data.loaders import load_table

    fast = local.load_interactions(tiny_parquet)
    slow = local.Interactions.from_dataset(load_table(tiny_parquet))
    assert fast.users == slow.users and fast.items == slow.items
    np.testing.assert_array_equal(fast.user_idx, slow.user_idx)
    np.testing.assert_array_equal(fast.item_idx, slow.item_idx)
    np.testing.assert_array_equal(fast.rating, slow.rating)
    ds = Dataset.from_arrays(tiny_frame.user_id, tiny_frame.item_id, tiny_frame.rating)
    assert (
        local.build_neighbors(ds, "item", "cosine")
        .compare(local.build_neighbors(tiny_parquet, "item", "cosine"))
        .equal
    )
    numeric = tmp_path / "numeric.parquet"
    pd.DataFrame({"user": [3.0, 1.0], "item": [20, 10], "weight": [1.0, 2.0]}).to_parquet(numeric)
    data = local.load_interactions(
        numeric, columns={"user": "user", "item": "item", "rating": "weight"}
    )
    assert data.users.ids.tolist() == [1, 3] and data.items.ids.dtype.kind == "i"

    def write(frame: pd.DataFrame) -> Path:
        path = tmp_path / "bad.parquet"
        frame.to_parquet(path)
        return path

    cases = [
        (
            pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "x"]}),
            r"rows 1 and 2.*\('a', 'x'\)",
        ),
        (
            pd.DataFrame({"user_id": ["a", None], "item_id": ["x", "y"]}),
            "line 2, column 'user_id': empty user id",
        ),
        (pd.DataFrame({"user_id": ["a", " "], "item_id": ["x", "y"]}), "line 2.*empty user id"),
        (pd.DataFrame({"user_id": [1.0, np.nan], "item_id": ["x", "y"]}), "line 2.*empty user id"),
        (
            pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "rating": ["4", "five"]}),
            "line 2.*'five'",
        ),
        (pd.DataFrame({"user_id": ["a"], "thing": ["x"]}), "no item column"),
        (
            pd.DataFrame(
                {"user_id": pd.Series([], dtype=str), "item_id": pd.Series([], dtype=str)}
            ),
            "no data rows",
        ),
    ]
    for frame, message in cases:
        with pytest.raises(DataError, match=message):
            local.load_interactions(write(frame))
    with pytest.raises(DataError, match="missing item column 'sku'"):
        local.load_interactions(tiny_parquet, columns={"user": "user_id", "item": "sku"})
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read Parquet"):
        local.load_interactions(tmp_path / "junk.parquet")


def test_parquet_float_ids_beyond_int64_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pd.DataFrame(
        {"user_id": [1.0, 2.0**63, 3.0], "item_id": [1.0, 2.0, 3.0], "rating": [4.0, 5.0, 3.0]}
    ).to_parquet(path)
    with pytest.raises(
        DataError, match=r"line 2, column .user_id.: user id outside the 64-bit integer range"
    ):
        local.load_interactions(path)
