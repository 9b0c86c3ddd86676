"""Synthetic interaction data with realistic structure, at any size, fast and memory-lean.

The generative model (all draws vectorised numpy, deterministic given the arguments):

* **Latent tastes.** Users and items get factor vectors ``p_u, q_i ~ N(0, k^-1/2 I_k)`` so that
  the true affinity ``a_ui = p_u . q_i`` has unit variance; users get a bias
  ``b_u ~ N(0, 0.35^2)`` and items ``b_i ~ N(0, 0.25^2)`` plus a small bonus for popular items.
* **Popularity.** Item ``i`` of popularity rank ``r`` (a random permutation of the items) has
  weight ``pi_i ∝ r^-item_alpha`` (Zipf-like).
* **Activity.** User ``u`` of activity rank ``r`` has weight ``w_u ∝ r^-user_alpha``. When
  ``n_interactions >= n_users`` every user gets one interaction and the rest are spread by a
  multinomial over ``w``; counts are capped at ``n_items`` (pairs are unique) and the overflow
  re-spread, so the counts sum to ``n_interactions`` exactly.
* **Choice.** A user with ``c_u`` interactions picks ``c_u`` distinct items by a Gumbel-top-k
  over ``log pi_i + a_ui / temperature``, i.e. without replacement from the Plackett-Luce
  distribution ``∝ pi_i exp(a_ui / temperature)``. For most users this is approximated by
  drawing ``oversample * c_u + 2`` candidates by popularity, dropping repeats and keeping the
  top ``c_u`` by ``a_ui / temperature + Gumbel``; heavy users (and the rare user with too few
  distinct candidates) are scored exactly against every item.
* **Ratings.** Explicit: ``r_ui = clip(round_step(3.6 + b_u + b_i + 0.8 (a_ui - 1.2) + e), 1, 5)``
  with ``e ~ N(0, noise^2)`` and ``round_step`` rounding to multiples of ``rating_step``
  (1.0: integer stars 1..5; 0.5: half stars). Implicit: event counts
  ``1 + Poisson(0.5 exp(0.5 a_ui + b_u + b_i))``.
* **Time.** Each user is active on a window ``[s_u, s_u + d_u]`` inside 2015-2025 (lognormal
  length, median 180 days); interactions are uniform in it, rows are ordered by (user, time).
* **Text** (``with_text=True``). Sixteen topics of ten words; latent factor ``f`` belongs to
  topic ``f mod 16``. An item's title takes words from the topics of its two largest factors
  and its description six words from its three largest, so items close in factor space share
  words and text similarity follows CF similarity.

Rows come in chunks of whole users (about ``chunk_size`` interactions each), so any size can be
streamed to Parquet with bounded memory (:func:`generate_to_parquet`). The latent truth and
per-user counts do not depend on ``chunk_size``; which items are drawn does (each chunk has its
own random stream), and :func:`generate` and :func:`generate_to_parquet` give the same rows for
the same arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from llmcf.data.dataset import Catalog, Dataset, Feedback
from llmcf.data.vocab import Vocabulary

__all__ = [
    "PARQUET_SCHEMA",
    "TOPIC_WORDS",
    "SynthConfig",
    "SyntheticTruth",
    "generate",
    "generate_to_parquet",
    "iter_chunks",
    "latent_truth",
    "write_parquet",
]

PARQUET_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)

_TOPICS = """
space galaxy rocket orbit planet comet nebula astronaut lunar star
love romance heart kiss wedding passion darling valentine bride embrace
murder detective crime clue alibi suspect verdict heist gangster witness
dragon wizard spell castle quest sword elf kingdom sorcery prophecy
war soldier battle army tank siege general trench veteran front
laugh comedy prank joke clown party roommate blunder sitcom farce
ghost haunted zombie vampire curse scream shadow demon crypt nightmare
family kids puppy holiday school friendship treehouse summer cartoon toy
music song band guitar concert dance rhythm melody singer stage
football race champion coach league stadium boxing marathon trophy team
history empire king queen revolution dynasty pharaoh medieval throne rome
robot cyborg android hacker virus matrix laser drone code future
western cowboy sheriff outlaw saloon desert ranch horse frontier bandit
ocean island pirate shark voyage ship treasure storm reef sailor
spy agent mission secret embassy chase cipher double border briefcase
cooking chef kitchen recipe bakery feast spice dinner wine garden
"""
#: Sixteen topics of ten words each; latent factor ``f`` writes words of topic ``f % 16``.
TOPIC_WORDS: tuple[tuple[str, ...], ...] = tuple(
    tuple(line.split()) for line in _TOPICS.strip().splitlines()
)

_T0 = 1_420_070_400  # 2015-01-01 UTC
_T1 = 1_735_689_600  # 2025-01-01 UTC
_DAY = 86_400
# named random streams; chunk c uses stream _STREAM_CHUNK + c
_STREAM_ITEMS, _STREAM_USERS, _STREAM_COUNTS, _STREAM_TEXT, _STREAM_CHUNK = 0, 1, 2, 3, 16
# exact (all-item) scoring works on blocks of about this many user x item scores
_DENSE_BLOCK = 1 << 22
# candidate affinities are computed this many rows at a time (bounds the gather temporaries)
_DOT_BATCH = 1 << 20


#: the largest data set the generator makes: at ~40 bytes per interaction and ~100 bytes
#: per user or item (factors, popularity), 500M interactions need ~20 GB
MAX_INTERACTIONS = 500_000_000
MAX_ENTITIES = 50_000_000


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic data set; see the module docstring for the model.

    Args:
        n_users, n_items, n_interactions: exact sizes; ``n_interactions <= n_users * n_items``.
        seed: the random seed.
        feedback: ``"explicit"`` (ratings 1..5) or ``"implicit"`` (event counts >= 1).
        n_factors: latent dimension ``k``.
        item_alpha: Zipf exponent of item popularity by rank.
        user_alpha: Zipf exponent of user activity by rank.
        temperature: softmax temperature of the affinity in item choice; lower = more taste-driven.
        rating_step: explicit ratings are multiples of it (1.0 integers, 0.5 half stars).
        noise: standard deviation of the rating noise before rounding.
        with_text: add ``title`` and ``description`` to the item catalog.
        chunk_size: about this many interactions are generated at a time (whole users).
        oversample: popularity candidates drawn per wanted interaction.
    """

    n_users: int
    n_items: int
    n_interactions: int
    seed: int = 0
    feedback: Feedback = "explicit"
    n_factors: int = 16
    item_alpha: float = 1.1
    user_alpha: float = 0.6
    temperature: float = 0.5
    rating_step: float = 1.0
    noise: float = 0.5
    with_text: bool = False
    chunk_size: int = 1_000_000
    oversample: int = 3

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_factors", "chunk_size", "oversample"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_interactions < 0:
            raise ValueError(f"n_interactions must be >= 0, got {self.n_interactions!r}")
        if self.n_interactions > self.n_users * self.n_items:
            raise ValueError(
                f"n_interactions={self.n_interactions} exceeds n_users * n_items = "
                f"{self.n_users * self.n_items}: (user, item) pairs are unique"
            )
        for name, limit in (
            ("n_users", MAX_ENTITIES),
            ("n_items", MAX_ENTITIES),
            ("n_interactions", MAX_INTERACTIONS),
        ):
            if int(getattr(self, name)) > limit:
                raise ValueError(
                    f"{name}={getattr(self, name)} exceeds the generator's limit {limit:,} "
                    "(memory grows with users, items and interactions)"
                )
        if self.feedback not in ("explicit", "implicit"):
            raise ValueError(f"feedback must be 'explicit' or 'implicit', got {self.feedback!r}")
        for name in ("item_alpha", "user_alpha", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("temperature", "rating_step"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


@dataclass
class SyntheticTruth:
    """The latent state a data set was drawn from (the oracle for tests and benchmarks).

    Attributes:
        user_factors: float32 (n_users, k); item_factors: float32 (n_items, k).
        user_bias: float32 (n_users,); item_bias: float32 (n_items,).
        item_popularity: float64 (n_items,), sums to 1 (the Zipf prior, before taste).
        user_activity: float64 (n_users,), sums to 1.
        user_counts: int64 (n_users,), interactions per user; sums to ``n_interactions``.
        user_start, user_span: int64 (n_users,), activity window in unix seconds.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    item_popularity: np.ndarray
    user_activity: np.ndarray
    user_counts: np.ndarray
    user_start: np.ndarray
    user_span: np.ndarray

    def affinity(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """True affinity ``p_u . q_i`` for parallel index arrays, float32 of their shape."""
        out = np.empty(np.shape(user_idx), dtype=np.float32)
        _row_dot(
            self.user_factors, np.asarray(user_idx), self.item_factors, np.asarray(item_idx), out
        )
        return out


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def _zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``w ∝ rank^-alpha`` with ranks given to positions by a random permutation; sums to 1."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    w /= w.sum()
    return w[rng.permutation(n)]


def _user_counts(
    n_interactions: int, n_items: int, activity: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Interactions per user: >= 1 each when possible, multinomial by ``activity``, <= n_items."""
    n_users = activity.shape[0]
    base = 1 if n_interactions >= n_users else 0
    counts = np.full(n_users, base, dtype=np.int64)
    extra = n_interactions - base * n_users
    counts += rng.multinomial(extra, activity)
    # heavy users cannot have more distinct items than there are; re-spread the overflow among
    # users with room, in proportion to activity, until none is left
    for _ in range(100):
        over = int(np.maximum(counts - n_items, 0).sum())
        if over == 0:
            return counts
        np.minimum(counts, n_items, out=counts)
        room = counts < n_items
        p = np.where(room, activity, 0.0)
        counts += rng.multinomial(over, p / p.sum())
    # pathological densities: fill the remaining room in user order
    over = int(np.maximum(counts - n_items, 0).sum())
    np.minimum(counts, n_items, out=counts)
    spare = np.cumsum(n_items - counts)
    k = int(np.searchsorted(spare, over))
    counts[:k] = n_items
    counts[k] += over - (int(spare[k - 1]) if k else 0)
    return counts


def latent_truth(config: SynthConfig) -> SyntheticTruth:
    """Draw the latent state (factors, biases, popularity, activity, counts) of ``config``.

    Memory: ``4 k (n_users + n_items)`` bytes of factors plus ~40 bytes per user.
    """
    k = config.n_factors
    scale = np.float32(k**-0.25)  # so that p_u . q_i has unit variance

    rng = _rng(config.seed, _STREAM_ITEMS)
    popularity = _zipf_weights(config.n_items, config.item_alpha, rng)
    item_factors = rng.standard_normal((config.n_items, k), dtype=np.float32) * scale
    log_pop = np.log(popularity)
    pop_bonus = 0.1 * (log_pop - log_pop.mean()) / max(float(log_pop.std()), 1e-12)
    item_bias = (rng.standard_normal(config.n_items, dtype=np.float32) * 0.25 + pop_bonus).astype(
        np.float32
    )

    rng = _rng(config.seed, _STREAM_USERS)
    activity = _zipf_weights(config.n_users, config.user_alpha, rng)
    user_factors = rng.standard_normal((config.n_users, k), dtype=np.float32) * scale
    user_bias = rng.standard_normal(config.n_users, dtype=np.float32) * np.float32(0.35)
    span_total = _T1 - _T0
    user_span = np.minimum(
        np.exp(rng.normal(np.log(180 * _DAY), 1.0, config.n_users)), span_total
    ).astype(np.int64)
    user_start = _T0 + (rng.random(config.n_users) * (span_total - user_span)).astype(np.int64)

    counts = _user_counts(
        config.n_interactions, config.n_items, activity, _rng(config.seed, _STREAM_COUNTS)
    )
    return SyntheticTruth(
        user_factors=user_factors,
        item_factors=item_factors,
        user_bias=user_bias,
        item_bias=item_bias,
        item_popularity=popularity,
        user_activity=activity,
        user_counts=counts,
        user_start=user_start,
        user_span=user_span,
    )


def _row_dot(
    left: np.ndarray,
    left_idx: np.ndarray,
    right: np.ndarray,
    right_idx: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[j] = left[left_idx[j]] . right[right_idx[j]]``, in batches to bound temporaries."""
    for start in range(0, out.shape[0], _DOT_BATCH):
        sl = slice(start, start + _DOT_BATCH)
        np.einsum("ij,ij->i", left[left_idx[sl]], right[right_idx[sl]], out=out[sl])


def _choose_by_candidates(
    config: SynthConfig,
    truth: SyntheticTruth,
    cdf: np.ndarray,
    users: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Approximate Gumbel-top-k for ``users`` (global indices) from popularity candidates.

    Returns ``(user_pos, item_idx, affinity, short)``: ``user_pos`` indexes ``users``; ``short``
    is a bool mask over ``users`` of those with fewer distinct candidates than their count (they
    get nothing here and must be scored exactly).
    """
    n_items = config.n_items
    n_cand = config.oversample * counts + 2
    cand_user = np.repeat(np.arange(users.shape[0], dtype=np.int64), n_cand)
    cand_item = np.searchsorted(cdf, rng.random(cand_user.shape[0]), side="right")
    np.minimum(cand_item, n_items - 1, out=cand_item)  # guard the float tail of the cdf
    # unique (user, item) pairs, sorted by user: one in-place sort of a packed key
    key = cand_user * n_items + cand_item
    del cand_user, cand_item
    key.sort()
    first = np.empty(key.shape[0], dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    key = key[first]
    del first
    user_pos = key // n_items
    item = (key - user_pos * n_items).astype(np.int32)
    del key
    n_distinct = np.bincount(user_pos, minlength=users.shape[0])
    short = n_distinct < counts
    if short.any():
        keep = ~short[user_pos]
        user_pos, item = user_pos[keep], item[keep]
        n_distinct[short] = 0

    affinity = np.empty(item.shape[0], dtype=np.float32)
    _row_dot(truth.user_factors, users[user_pos], truth.item_factors, item, affinity)
    # Gumbel-top-k as an exponential race: the smallest E / exp(a / T) win. Map race times
    # monotonically into [0, 1) and add the user position, so one sort orders each user's
    # candidates best-first while keeping users in place.
    race = rng.standard_exponential(item.shape[0], dtype=np.float32)
    race *= np.exp(affinity * np.float32(-1.0 / config.temperature))
    frac = race.astype(np.float64)
    frac /= 1.0 + frac
    np.minimum(frac, 1.0 - 1e-9, out=frac)
    frac += user_pos
    order = np.argsort(frac)
    del frac, race
    group_start = np.concatenate(([0], np.cumsum(n_distinct)[:-1]))
    rank = np.arange(item.shape[0], dtype=np.int64) - group_start[user_pos]
    take = order[rank < counts[user_pos]]
    return user_pos[take], item[take], affinity[take], short


def _choose_exactly(
    config: SynthConfig,
    truth: SyntheticTruth,
    log_pop: np.ndarray,
    users: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Gumbel-top-k over all items for ``users``; returns ``(user_pos, item_idx, affinity)``."""
    n_items = config.n_items
    rows = max(1, _DENSE_BLOCK // n_items)
    out_pos, out_item, out_aff = [], [], []
    columns = np.arange(n_items)
    for start in range(0, users.shape[0], rows):
        block = users[start : start + rows]
        affinity = truth.user_factors[block] @ truth.item_factors.T
        # smallest log race time -log(E) ... wins: log E - log pi - a / T
        log_race = np.log(rng.standard_exponential(affinity.shape)) - log_pop
        log_race -= affinity * (1.0 / config.temperature)
        order = np.argsort(log_race, axis=1)
        chosen = columns[None, :] < counts[start : start + rows, None]
        out_pos.append(np.nonzero(chosen)[0] + start)
        out_item.append(order[chosen].astype(np.int32))
        out_aff.append(np.take_along_axis(affinity, order, axis=1)[chosen])
    if not out_pos:
        return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.float32)
    return np.concatenate(out_pos), np.concatenate(out_item), np.concatenate(out_aff)


def _ratings(
    config: SynthConfig,
    truth: SyntheticTruth,
    users: np.ndarray,
    items: np.ndarray,
    affinity: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Ratings (explicit, on ``rating_step`` in [1, 5]) or event counts (implicit), float32."""
    bias = truth.user_bias[users] + truth.item_bias[items]
    if config.feedback == "implicit":
        rate = 0.5 * np.exp(np.clip(0.5 * affinity + bias, -10.0, 5.0))
        return (1 + rng.poisson(rate)).astype(np.float32)
    raw = 3.6 + bias + 0.8 * (affinity - 1.2) + rng.normal(0.0, config.noise, affinity.shape[0])
    step = config.rating_step
    return np.clip(np.round(raw / step) * step, 1.0, 5.0).astype(np.float32)


def _chunk_bounds(counts: np.ndarray, chunk_size: int) -> np.ndarray:
    """User index boundaries of chunks holding about ``chunk_size`` interactions each."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if ends.shape[0] else 0
    bounds = [0]
    while bounds[-1] < counts.shape[0]:
        target = (int(ends[bounds[-1] - 1]) if bounds[-1] else 0) + chunk_size
        nxt = int(np.searchsorted(ends, min(target, total), side="right"))
        bounds.append(max(nxt, bounds[-1] + 1))
    return np.asarray(bounds, dtype=np.int64)


def _generate_chunk(
    config: SynthConfig,
    truth: SyntheticTruth,
    cdf: np.ndarray,
    log_pop: np.ndarray,
    lo: int,
    hi: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    users = np.arange(lo, hi, dtype=np.int64)
    counts = truth.user_counts[lo:hi]
    # heavy users would need most of the catalogue as candidates: score them exactly
    dense = config.oversample * counts * 2 > config.n_items
    sparse = ~dense & (counts > 0)
    pos_s, item_s, aff_s, short = _choose_by_candidates(
        config, truth, cdf, users[sparse], counts[sparse], rng
    )
    pos_s = np.flatnonzero(sparse)[pos_s]
    exact = dense.copy()
    exact[np.flatnonzero(sparse)[short]] = True
    exact_idx = np.flatnonzero(exact)
    pos_d, item_d, aff_d = _choose_exactly(
        config, truth, log_pop, users[exact_idx], counts[exact_idx], rng
    )
    user_pos = np.concatenate((pos_s, exact_idx[pos_d]))
    item = np.concatenate((item_s, item_d))
    affinity = np.concatenate((aff_s, aff_d))
    del pos_s, item_s, aff_s, pos_d, item_d, aff_d

    # uniform times in each user's window; rows ordered by (user, time) with one sort
    when = np.empty(item.shape[0], dtype=np.float64)
    rng.random(out=when)
    np.minimum(when, 1.0 - 1e-9, out=when)
    order = np.argsort(when + user_pos)
    user_pos, item, affinity, when = user_pos[order], item[order], affinity[order], when[order]
    del order
    user = users[user_pos]
    timestamp = truth.user_start[user] + (when * truth.user_span[user]).astype(np.int64)
    rating = _ratings(config, truth, user, item, affinity, rng)
    return {
        "user_idx": user.astype(np.int32),
        "item_idx": item,
        "rating": rating,
        "timestamp": timestamp,
        "affinity": affinity,
    }


def iter_chunks(
    config: SynthConfig, truth: SyntheticTruth | None = None, *, progress: bool = False
) -> Iterator[dict[str, np.ndarray]]:
    """Yield the interactions of ``config`` chunk by chunk (whole users, in user order).

    Each chunk is a dict of parallel arrays: ``user_idx`` int32, ``item_idx`` int32,
    ``rating`` float32, ``timestamp`` int64 (unix seconds) and ``affinity`` float32 (the true
    ``p_u . q_i``). Pairs are unique within and across chunks.
    """
    truth = latent_truth(config) if truth is None else truth
    cdf = np.cumsum(truth.item_popularity)
    cdf /= cdf[-1]
    log_pop = np.log(truth.item_popularity)
    bounds = _chunk_bounds(truth.user_counts, config.chunk_size)
    with tqdm(total=config.n_interactions, unit="rows", disable=not progress, desc="synth") as bar:
        for c in range(bounds.shape[0] - 1):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            rng = _rng(config.seed, _STREAM_CHUNK + c)
            chunk = _generate_chunk(config, truth, cdf, log_pop, lo, hi, rng)
            bar.update(chunk["item_idx"].shape[0])
            yield chunk


def _item_text(config: SynthConfig, truth: SyntheticTruth) -> Catalog:
    """Titles and descriptions from the topics of each item's largest latent factors."""
    n_topics, n_words = len(TOPIC_WORDS), len(TOPIC_WORDS[0])
    words = np.array([w for topic in TOPIC_WORDS for w in topic])
    rng = _rng(config.seed, _STREAM_TEXT)
    k = config.n_factors
    top = np.argsort(-truth.item_factors, axis=1)[:, : min(3, k)]
    top = np.concatenate([top] + [top[:, :1]] * (3 - top.shape[1]), axis=1) % n_topics
    # title: word of factor 1, word of factor 2; description: 3, 2, 1 words from factors 1..3
    title_topics = top[:, [0, 1]]
    desc_topics = top[:, [0, 0, 0, 1, 1, 2]]
    title_words = words[title_topics * n_words + rng.integers(0, n_words, title_topics.shape)]
    desc_words = words[desc_topics * n_words + rng.integers(0, n_words, desc_topics.shape)]
    titles = [
        f"The {a.capitalize()} of the {b.capitalize()} {i}"
        for i, (a, b) in enumerate(title_words.tolist())
    ]
    descriptions = [
        f"A tale of {a}, {b} and {c}, with {d} and {e}; {f}."
        for a, b, c, d, e, f in desc_words.tolist()
    ]
    return Catalog(fields={"title": list(titles), "description": list(descriptions)})


def generate(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    seed: int = 0,
    feedback: Feedback = "explicit",
    n_factors: int = 16,
    item_alpha: float = 1.1,
    user_alpha: float = 0.6,
    temperature: float = 0.5,
    rating_step: float = 1.0,
    noise: float = 0.5,
    with_text: bool = False,
    chunk_size: int = 1_000_000,
    progress: bool = False,
) -> Dataset:
    """A synthetic :class:`Dataset` of exactly ``n_interactions`` unique (user, item) pairs.

    External ids are the indices (``user_id == user_idx``, int64). Ratings are integers 1..5
    (``rating_step=1.0``, the default) or half stars (``0.5``) for explicit feedback, event
    counts >= 1 for implicit. Rows are ordered by user, then time. The true latent state is
    ``latent_truth(SynthConfig(...same arguments...))``. See the module docstring for the model.

    Memory: ~24 bytes per interaction for the result plus one chunk of working space
    (~150 bytes x ``chunk_size``).
    """
    config = SynthConfig(
        n_users=n_users,
        n_items=n_items,
        n_interactions=n_interactions,
        seed=seed,
        feedback=feedback,
        n_factors=n_factors,
        item_alpha=item_alpha,
        user_alpha=user_alpha,
        temperature=temperature,
        rating_step=rating_step,
        noise=noise,
        with_text=with_text,
        chunk_size=chunk_size,
    )
    truth = latent_truth(config)
    user_idx = np.empty(n_interactions, dtype=np.int32)
    item_idx = np.empty(n_interactions, dtype=np.int32)
    rating = np.empty(n_interactions, dtype=np.float64)
    timestamp = np.empty(n_interactions, dtype=np.int64)
    at = 0
    for chunk in iter_chunks(config, truth, progress=progress):
        n = chunk["item_idx"].shape[0]
        user_idx[at : at + n] = chunk["user_idx"]
        item_idx[at : at + n] = chunk["item_idx"]
        rating[at : at + n] = chunk["rating"]
        timestamp[at : at + n] = chunk["timestamp"]
        at += n
    assert at == n_interactions, (at, n_interactions)
    catalog = _item_text(config, truth) if with_text else None
    return Dataset(
        Vocabulary(np.arange(n_users, dtype=np.int64), name="user"),
        Vocabulary(np.arange(n_items, dtype=np.int64), name="item"),
        user_idx,
        item_idx,
        rating,
        timestamp,
        feedback=feedback,
        rating_scale=(1.0, 5.0) if feedback == "explicit" else None,
        item_catalog=catalog,
        name=f"synth-{n_users}x{n_items}-{n_interactions}-s{seed}",
        check_duplicates=False,  # unique by construction (and tested)
    )


def _to_table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(columns["user_id"], dtype=np.int64)),
            pa.array(np.asarray(columns["item_id"], dtype=np.int64)),
            pa.array(np.asarray(columns["rating"], dtype=np.float32)),
            pa.array(np.asarray(columns["timestamp"], dtype=np.int64)),
        ],
        schema=PARQUET_SCHEMA,
    )


def write_parquet(
    data: Dataset | Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    row_group_size: int = 1_000_000,
    compression: str = "zstd",
) -> None:
    """Write interactions to Parquet with :data:`PARQUET_SCHEMA`, ``row_group_size`` rows at a time.

    ``data`` is a :class:`Dataset` (external ids are written, which must be integers) or a
    mapping with ``user_id``, ``item_id``, ``rating`` and ``timestamp`` arrays (``user_idx``
    and ``item_idx`` are accepted in place of the ids). A missing timestamp is written as 0.
    """
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    if isinstance(data, Dataset):
        n = len(data.user_idx)
        user_ids, item_ids = data.users.ids, data.items.ids
        user_idx, item_idx = data.user_idx, data.item_idx
        rating = data.rating
        timestamp = data.timestamp if data.timestamp is not None else np.zeros(n, np.int64)
    else:
        user_idx = np.asarray(data["user_id"] if "user_id" in data else data["user_idx"])
        item_idx = np.asarray(data["item_id"] if "item_id" in data else data["item_idx"])
        rating = np.asarray(data["rating"])
        n = user_idx.shape[0]
        timestamp = np.asarray(data["timestamp"]) if "timestamp" in data else np.zeros(n, np.int64)
    with pq.ParquetWriter(path, PARQUET_SCHEMA, compression=compression) as writer:
        for start in range(0, n, row_group_size):
            sl = slice(start, start + row_group_size)
            writer.write_table(
                _to_table(
                    {
                        "user_id": user_idx[sl] if user_ids is None else user_ids[user_idx[sl]],
                        "item_id": item_idx[sl] if item_ids is None else item_ids[item_idx[sl]],
                        "rating": rating[sl],
                        "timestamp": timestamp[sl],
                    }
                )
            )


def generate_to_parquet(
    n_users: int,
    n_items: int,
    n_interactions: int,
    path: str | os.PathLike[str],
    *,
    items_path: str | os.PathLike[str] | None = None,
    seed: int = 0,
    feedback: Feedback = "explicit",
    n_factors: int = 16,
    item_alpha: float = 1.1,
    user_alpha: float = 0.6,
    temperature: float = 0.5,
    rating_step: float = 1.0,
    noise: float = 0.5,
    with_text: bool = False,
    chunk_size: int = 1_000_000,
    compression: str = "zstd",
    progress: bool = False,
) -> SynthConfig:
    """Stream :func:`generate`'s rows to a Parquet file, one row group per chunk.

    Holds one chunk (plus the latent state, ~``4 k`` bytes per user and item) in memory, so
    any ``n_interactions`` fits. Columns: ``user_id`` int64, ``item_id`` int64, ``rating``
    float32, ``timestamp`` int64 (ids are the indices). With ``with_text`` and ``items_path``
    the item catalog (``item_id``, ``title``, ``description``) goes to ``items_path``. Returns
    the config, from which :func:`latent_truth` recovers the latent state.
    """
    config = SynthConfig(
        n_users=n_users,
        n_items=n_items,
        n_interactions=n_interactions,
        seed=seed,
        feedback=feedback,
        n_factors=n_factors,
        item_alpha=item_alpha,
        user_alpha=user_alpha,
        temperature=temperature,
        rating_step=rating_step,
        noise=noise,
        with_text=with_text,
        chunk_size=chunk_size,
    )
    truth = latent_truth(config)
    with pq.ParquetWriter(path, PARQUET_SCHEMA, compression=compression) as writer:
        for chunk in iter_chunks(config, truth, progress=progress):
            writer.write_table(
                _to_table(
                    {
                        "user_id": chunk["user_idx"],
                        "item_id": chunk["item_idx"],
                        "rating": chunk["rating"],
                        "timestamp": chunk["timestamp"],
                    }
                )
            )
    if with_text and items_path is not None:
        catalog = _item_text(config, truth)
        table = pa.table(
            {
                "item_id": pa.array(np.arange(n_items, dtype=np.int64)),
                "title": pa.array(catalog.fields["title"], type=pa.string()),
                "description": pa.array(catalog.fields["description"], type=pa.string()),
            }
        )
        pq.write_table(table, items_path, compression=compression)
    return config
