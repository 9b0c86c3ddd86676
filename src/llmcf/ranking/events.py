"""Events in the model's units: how a stored event (view, cart, purchase, rating) enters a
user's history vector.

A model's history row holds its training values summed per item, in the units it was fitted
on. An event maps to those units by the model's feedback kind:

* **explicit** models (fitted on ratings, ``rating_scale_`` set): a ``rating`` event *is* a
  rating; it replaces the training rating of that item (the latest rating wins). A
  ``purchase`` or ``cart`` counts as a rating at the top of the scale (a buyer likes what
  they buy) unless the item already has a rating; a ``view`` carries no preference: the
  item counts as seen (excluded from the list) but adds nothing to the scores.
* **implicit** models (counts, quantities, or event weights): an event adds
  ``W[type] * (value if given else 1)`` to the item's value, with ``W`` the model's
  :class:`EventWeights`. A model fitted from the event store (``llmcf fit --events-db``) was
  trained on exactly these sums, so it keeps the weights it was fitted with; a model fitted
  on a data set of interactions counts one purchase as one training interaction
  (:data:`DATASET_EVENT_WEIGHTS`). The model's weighting (e.g. ``log1p``) applies to the
  total, never to each event, so one new purchase weighs what one more training interaction
  weighs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from llmcf.errors import ConfigError

EVENT_TYPES = ("view", "cart", "purchase", "rating")


@dataclass(frozen=True)
class EventWeights:
    """Implicit weight per event type: ``w(e) = W[type] * (value if given else 1)``."""

    view: float = 1.0
    cart: float = 3.0
    purchase: float = 5.0
    rating: float = 1.0

    def __post_init__(self) -> None:
        for name in EVENT_TYPES:
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"event weight {name}={value!r} must be finite and >= 0")

    def weight(self, event_type: str, value: float | None) -> float:
        base = float(getattr(self, event_type))
        return base * (1.0 if value is None else float(value))

    def weights(self, types: Sequence[str], values: Sequence[float | None]) -> np.ndarray:
        """Vector form of :meth:`weight` (float64, shape (n,))."""
        return np.array(
            [self.weight(t, v) for t, v in zip(types, values, strict=True)], dtype=np.float64
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> EventWeights:
        if not isinstance(values, dict) or set(values) - set(EVENT_TYPES):
            raise ConfigError(f"bad event weights {values!r}: expected a mapping of {EVENT_TYPES}")
        return cls(**{k: float(v) for k, v in values.items()})

    @classmethod
    def parse(cls, text: str) -> EventWeights:
        """Parse ``"view=1,cart=3,purchase=5,rating=1"`` (unnamed types keep their default)."""
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, number = part.partition("=")
            name = name.strip()
            if not sep or name not in EVENT_TYPES:
                raise ConfigError(
                    f"bad event weight {part!r}: expected TYPE=NUMBER with TYPE in "
                    f"{', '.join(EVENT_TYPES)}"
                )
            try:
                values[name] = float(number)
            except ValueError:
                raise ConfigError(
                    f"bad event weight {part!r}: {number!r} is not a number"
                ) from None
            if not np.isfinite(values[name]):
                raise ConfigError(f"bad event weight {part!r}: must be finite")
        return cls(**values)


#: event weights of a model fitted on a data set of interactions: a purchase (or a rating
#: event on implicit data) is one training interaction; a cart and a view count less
DATASET_EVENT_WEIGHTS = EventWeights(view=0.2, cart=0.5, purchase=1.0, rating=1.0)


@dataclass(frozen=True)
class EventRows:
    """Events of one user on items the model knows: ``item_idx`` int64, ``types``,
    ``values`` (float, NaN = no value), oldest first."""

    item_idx: np.ndarray
    types: np.ndarray
    values: np.ndarray

    def fold(
        self,
        row_idx: np.ndarray,
        row_values: np.ndarray,
        *,
        explicit: bool,
        weights: EventWeights,
        top_rating: float = 5.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(idx, values, seen)``: the training row (``row_idx`` sorted unique,
        ``row_values``) with these events folded in, and every item the events touched."""
        seen = np.unique(self.item_idx)
        if len(self.item_idx) == 0:
            return row_idx, row_values, seen
        value = dict(zip(row_idx.tolist(), row_values.tolist(), strict=True))
        for i, t, v in zip(
            self.item_idx.tolist(), self.types.tolist(), self.values.tolist(), strict=True
        ):
            given = None if v != v else float(v)  # NaN: no value
            if explicit:
                if t == "rating" and given is not None:
                    value[i] = given  # the latest rating wins
                elif t in ("purchase", "cart") and i not in value:
                    value[i] = top_rating
            else:
                value[i] = value.get(i, 0.0) + weights.weight(t, given)
        idx = np.array(sorted(value), dtype=np.int64)
        vals = np.array([value[i] for i in idx.tolist()], dtype=np.float64)
        keep = vals != 0
        return idx[keep], vals[keep], seen
