"""The artifact both backends build: top-K neighbour lists plus the vocabularies they index.

A :class:`NeighborArtifact` holds, for every entity x of one ``kind`` (items for item-item,
users for user-user), its K most similar other entities with similarity > 0:

* ``nbr_idx`` (n_x, K) int32, -1 padded; ``nbr_sim`` (n_x, K) float64, 0 padded;
* each row sorted by decreasing similarity, ties broken by the lower index -- the order of
  :func:`llmcf.cf._kernels.topk_similarity`;
* indices refer to the artifact's own vocabularies, which are **canonical**: the distinct ids
  that occur in the interactions, sorted (numbers numerically, text by code point). Sorting
  makes the indices, and so the tie order, independent of the input row order and of how a
  distributed reader splits the file, which is what lets the local and Spark backends agree.

Similarities are the co-rated measures of :mod:`llmcf.cf.similarity` (cosine, adjusted_cosine,
pearson, msd), with ``shrinkage`` lambda and ``min_support``::

    sim(x, x') = measure over Y_xx' * (n - 1) / (n - 1 + lambda)   (lambda > 0)
    sim(x, x') = 0                                                 (n = |Y_xx'| < min_support)

With text neighbours (item kind only) the stored similarity is the fused T-similarity (see
:func:`fuse_neighbors`)::

    sim_T(x, x') = alpha * sim_CF(x, x') + (1 - alpha) * cos_text(x, x')

over x' in the union of x's CF neighbours and its precomputed text neighbours, a term absent
from its list counting 0.

Saved as a folder: ``manifest.json`` (format, kind, similarity, params, sizes, vocabulary
digests, per-array sha256) and ``arrays.npz`` (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmcf.data.vocab import Vocabulary
from llmcf.errors import ConfigError, DataError, ModelLoadError
from llmcf.text.fusion import fuse_similarity

ARTIFACT_FORMAT = "llmcf.neighbor-artifact"
ARTIFACT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

Kind = Literal["item", "user"]
KINDS: tuple[str, ...] = ("item", "user")
#: Similarities both backends compute (pearson_baseline needs ALS baselines: local models only).
BACKEND_SIMILARITIES: tuple[str, ...] = ("cosine", "adjusted_cosine", "pearson", "msd")


def check_params(
    kind: str,
    similarity: str,
    n_neighbors: int,
    min_support: int,
    shrinkage: float | None,
    alpha: float | None = None,
) -> None:
    """Validate the options shared by both backends; raises :class:`ConfigError`."""
    if kind not in KINDS:
        raise ConfigError(f"unknown neighbour kind {kind!r}; valid: {', '.join(KINDS)}")
    if similarity not in BACKEND_SIMILARITIES:
        raise ConfigError(
            f"similarity {similarity!r} is not available in the backends; valid: "
            f"{', '.join(BACKEND_SIMILARITIES)} (pearson_baseline needs fitted baselines: use "
            "the in-memory UserKNN/ItemKNN)"
        )
    if n_neighbors < 1:
        raise ConfigError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if min_support < 0:
        raise ConfigError(f"min_support must be >= 0, got {min_support}")
    if shrinkage is not None and shrinkage < 0:
        raise ConfigError(f"shrinkage must be >= 0, got {shrinkage}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")


def canonical_vocabulary(ids: np.ndarray, name: str) -> Vocabulary:
    """Sorted distinct ids (the artifact's index order)."""
    arr = np.asarray(ids)
    if arr.dtype == object:
        arr = arr.astype(str)
    return Vocabulary(np.unique(arr), name=name)


@dataclass
class NeighborArtifact:
    """Top-K neighbour lists of one kind; see the module docstring for every field's meaning."""

    kind: Kind
    similarity: str
    params: dict[str, Any]
    users: Vocabulary
    items: Vocabulary
    nbr_idx: np.ndarray
    nbr_sim: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.entities)
        if self.nbr_idx.shape != self.nbr_sim.shape or self.nbr_idx.ndim != 2:
            raise ValueError(
                f"nbr_idx {self.nbr_idx.shape} and nbr_sim {self.nbr_sim.shape} must be equal (n, K)"
            )
        if self.nbr_idx.shape[0] != n:
            raise ValueError(f"{self.nbr_idx.shape[0]} neighbour rows for {n} {self.kind}s")
        self.nbr_idx = np.ascontiguousarray(self.nbr_idx, dtype=np.int32)
        self.nbr_sim = np.ascontiguousarray(self.nbr_sim, dtype=np.float64)

    @property
    def entities(self) -> Vocabulary:
        """The vocabulary the neighbour lists index (items or users)."""
        return self.items if self.kind == "item" else self.users

    @property
    def n_neighbors(self) -> int:
        return int(self.nbr_idx.shape[1])

    def __repr__(self) -> str:
        return (
            f"NeighborArtifact({self.kind}-{self.kind}, {self.similarity}, "
            f"n={len(self.entities)}, K={self.n_neighbors}, backend={self.info.get('backend')})"
        )

    def neighbors(self, x_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """``(idx, sim)`` of entity ``x_idx``'s stored neighbours, best first."""
        idx = self.nbr_idx[x_idx]
        keep = idx >= 0
        return idx[keep], self.nbr_sim[x_idx][keep]

    def to_csr(self, k: int | None = None) -> Any:
        """CSR (n_x, n_x) of the first ``k`` (default all K) neighbours of each row."""
        import scipy.sparse as sp

        k = self.n_neighbors if k is None else int(k)
        if not 1 <= k <= self.n_neighbors:
            raise ConfigError(f"k must be in 1..{self.n_neighbors} (stored neighbours), got {k}")
        idx, sim = self.nbr_idx[:, :k], self.nbr_sim[:, :k]
        keep = idx >= 0
        n = idx.shape[0]
        rows = np.repeat(np.arange(n), keep.sum(axis=1))
        return sp.csr_matrix((sim[keep], (rows, idx[keep])), shape=(n, n))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``manifest.json`` + ``arrays.npz`` into the folder ``path``; returns it."""
        from llmcf import __version__
        from llmcf.persist import digest as _digest

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "user_ids": self.users.ids,
            "item_ids": self.items.ids,
            "nbr_idx": self.nbr_idx,
            "nbr_sim": self.nbr_sim,
        }
        manifest = {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "llmcf_version": __version__,
            "kind": self.kind,
            "similarity": self.similarity,
            "params": self.params,
            "n_users": len(self.users),
            "n_items": len(self.items),
            "n_neighbors": self.n_neighbors,
            "vocabulary": {"users": self.users.digest(), "items": self.items.digest()},
            "arrays": {name: _digest(a) for name, a in arrays.items()},
            "info": self.info,
        }
        tmp = folder / (ARRAYS + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, folder / ARRAYS)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NeighborArtifact:
        """Read a folder written by :meth:`save`; raises :class:`ModelLoadError` on any problem."""
        from llmcf.persist import load_checked_arrays

        folder = Path(path)
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise ModelLoadError(
                f"{folder}: no {MANIFEST}; is this a folder written by `llmcf fit --backend`?"
            )
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{mpath}: corrupted manifest ({exc})") from None
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise ModelLoadError(
                f"{mpath}: not a neighbour artifact (format {manifest.get('format')!r})"
            )
        if manifest.get("format_version") != ARTIFACT_VERSION:
            raise ModelLoadError(
                f"{mpath}: artifact version {manifest.get('format_version')!r}; this llmcf reads "
                f"{ARTIFACT_VERSION}. Rebuild it."
            )
        apath = folder / ARRAYS
        arrays = load_checked_arrays(apath, manifest.get("arrays", {}))
        users = Vocabulary(arrays["user_ids"], name="user")
        items = Vocabulary(arrays["item_ids"], name="item")
        if (users.digest(), items.digest()) != (
            manifest["vocabulary"]["users"],
            manifest["vocabulary"]["items"],
        ):
            raise ModelLoadError(f"{mpath}: vocabulary digest mismatch")
        return cls(
            manifest["kind"],
            manifest["similarity"],
            manifest.get("params", {}),
            users,
            items,
            arrays["nbr_idx"],
            arrays["nbr_sim"],
            manifest.get("info", {}),
        )

    # ------------------------------------------------------------------ comparison
    def compare(self, other: NeighborArtifact, *, atol: float = 1e-9) -> ArtifactDiff:
        """How far ``other`` is from this artifact (see :class:`ArtifactDiff`)."""
        return compare_neighbors(self, other, atol=atol)


@dataclass
class ArtifactDiff:
    """Result of :func:`compare_neighbors`.

    ``same_vocabularies``/``same_meta``: vocabularies, kind, similarity and K agree.
    ``max_sim_diff``: max |sim_a - sim_b| over aligned positions (inf when the padding differs).
    ``rows_exact``: rows whose neighbour indices are identical. ``rows_tied``: rows that differ
    only by the order of, or the choice among, neighbours whose similarities are within ``atol``
    of each other (equal similarities in exact arithmetic). ``rows_different``: anything else.
    """

    same_vocabularies: bool
    same_meta: bool
    max_sim_diff: float
    rows_exact: int
    rows_tied: int
    rows_different: int
    first_different: int | None

    @property
    def equal(self) -> bool:
        """Same vocabularies and meta, sims within ``atol``, no row beyond a tie reorder."""
        return (
            self.same_vocabularies
            and self.same_meta
            and self.rows_different == 0
            and self.max_sim_diff <= self._atol
        )

    _atol: float = 1e-9


def compare_neighbors(
    a: NeighborArtifact, b: NeighborArtifact, *, atol: float = 1e-9
) -> ArtifactDiff:
    """Compare two artifacts position by position; ties within ``atol`` may be reordered."""
    same_vocab = a.users == b.users and a.items == b.items
    same_meta = (a.kind, a.similarity, a.n_neighbors) == (b.kind, b.similarity, b.n_neighbors)
    if not (same_vocab and same_meta) or a.nbr_idx.shape != b.nbr_idx.shape:
        return ArtifactDiff(same_vocab, same_meta, float("inf"), 0, 0, len(a.entities), 0, atol)
    pad_a, pad_b = a.nbr_idx < 0, b.nbr_idx < 0
    same_pad = (pad_a == pad_b).all(axis=1)
    diff = np.where(pad_a | pad_b, 0.0, np.abs(a.nbr_sim - b.nbr_sim))
    max_diff = float(diff.max()) if diff.size else 0.0
    if not same_pad.all():
        max_diff = float("inf")
    exact = (a.nbr_idx == b.nbr_idx).all(axis=1)
    tied = np.zeros(len(exact), dtype=bool)
    different = ~exact
    for r in np.flatnonzero(~exact):
        if not same_pad[r]:
            continue
        ia, ib, sa = a.nbr_idx[r], b.nbr_idx[r], a.nbr_sim[r]
        ok = True
        # walk groups of (near-)equal similarity; within a group the index sets must match,
        # except the last group, which the K cut may truncate differently
        start = 0
        k = int((ia >= 0).sum())
        while start < k:
            end = start + 1
            while end < k and abs(sa[end] - sa[end - 1]) <= atol:
                end += 1
            if end < k and set(ia[start:end].tolist()) != set(ib[start:end].tolist()):
                ok = False
                break
            start = end
        tied[r] = ok
        different[r] = not ok
    first = int(np.flatnonzero(different)[0]) if different.any() else None
    return ArtifactDiff(
        True, True, max_diff, int(exact.sum()), int(tied.sum()), int(different.sum()), first, atol
    )


def fuse_neighbors(
    cf_idx: np.ndarray,
    cf_sim: np.ndarray,
    text_idx: np.ndarray,
    text_sim: np.ndarray,
    alpha: float,
    n_neighbors: int,
    *,
    shift: float = 0.0,
    power: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fused T-similarity top-K from CF and text neighbour lists (both (n, *) -1 padded).

    The "fixed" blend of :mod:`llmcf.text.fused`: for each x, over x' in
    N_CF(x) ∪ N_text(x), x' != x::

        text(x, x')  = max(0, (cos(x, x') - shift) / (1 - shift)) ** power
        sim_T(x, x') = alpha * sim_CF(x, x') + (1 - alpha) * text(x, x')

    where sim_CF is 0 when x' is not in x's CF list and cos is 0 when x' is not in x's text
    list (``llmcf.text.fused`` in sparse mode computes that cosine from the embeddings; from
    precomputed lists it is unknown, so make the text lists at least as long as needed). The
    ``n_neighbors`` largest sim_T > 0 are kept, sorted by decreasing sim_T, ties by the lower
    index. Returns ``(idx int32, sim float64)`` of shape (n, n_neighbors), -1 / 0 padded.
    """
    if not 0.0 <= shift < 1.0:
        raise ConfigError(f"shift must be in [0, 1), got {shift}")
    if not power > 0.0:
        raise ConfigError(f"power must be > 0, got {power}")
    n = cf_idx.shape[0]
    if text_idx.shape[0] != n:
        raise ConfigError(f"text neighbours have {text_idx.shape[0]} rows, CF neighbours {n}")

    def pairs(idx: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.repeat(np.arange(n, dtype=np.int64), idx.shape[1])
        flat, vals = idx.ravel().astype(np.int64), sim.ravel().astype(np.float64)
        keep = (flat >= 0) & (flat != rows)
        return rows[keep], flat[keep], vals[keep]

    cx, cy, cs = pairs(cf_idx, cf_sim)
    tx, ty, ts = pairs(text_idx, text_sim)
    keys = np.concatenate([cx * n + cy, tx * n + ty])
    uniq, inverse = np.unique(keys, return_inverse=True)
    cf_part = np.zeros(len(uniq))
    text_part = np.zeros(len(uniq))
    cf_part[inverse[: len(cx)]] = cs
    text_part[inverse[len(cx) :]] = ts
    fused = fuse_similarity(
        cf_part, text_part, np.zeros(len(uniq)), fusion="fixed", alpha=alpha, beta=1.0,
        shift=shift, power=power,
    )  # fmt: skip
    x, x2 = uniq // n, uniq % n
    keep = fused > 0.0
    x, x2, fused = x[keep], x2[keep], fused[keep]
    order = np.lexsort((x2, -fused, x))
    x, x2, fused = x[order], x2[order], fused[order]
    starts = np.searchsorted(x, np.arange(n))
    rank = np.arange(len(x)) - starts[x]
    top = rank < n_neighbors
    out_idx = np.full((n, n_neighbors), -1, dtype=np.int32)
    out_sim = np.zeros((n, n_neighbors), dtype=np.float64)
    out_idx[x[top], rank[top]] = x2[top]
    out_sim[x[top], rank[top]] = fused[top]
    return out_idx, out_sim


def _guess(available: list[str], columns: dict[str, str] | None, label: str) -> dict[str, str]:
    """Column mapping for an interactions file (given, else guessed); clear error if incomplete."""
    from llmcf.data.loaders import _guess_columns

    mapping = dict(columns) if columns is not None else _guess_columns(available)
    for role in ("user", "item"):
        if role not in mapping:
            raise DataError(
                f"no {role} column given or recognised; available columns: {available}", path=label
            )
    for role, col in mapping.items():
        if col not in available:
            raise DataError(
                f"missing {role} column {col!r}; available columns: {available}", path=label
            )
    return mapping
