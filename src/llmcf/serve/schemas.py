"""Request and response bodies of the REST API (pydantic), with their limits.

External ids travel as strings (an integer id in a JSON body is accepted and turned into its
decimal text); they are 1-256 characters without control characters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_ID_LENGTH = 256
MAX_EVENT_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4000
MAX_BATCH = 1000  # events or prediction pairs per request
MAX_N = 100  # items per list
#: no control characters (they break logs and PostgreSQL text); no lone surrogates
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
#: timestamps are unix seconds up to the end of year 9999
MAX_TIMESTAMP = 253_402_300_799
MAX_ABS_VALUE = 1e9


def _id_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("ids must be valid UTF-8 text (no lone surrogates)") from None
    return value


def _text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid UTF-8 (no lone surrogates)") from None
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
    return value


ExternalId = Annotated[
    str,
    BeforeValidator(_id_text),
    Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN),
]
EventId = Annotated[
    str,
    BeforeValidator(_id_text),
    Field(min_length=1, max_length=MAX_EVENT_ID_LENGTH, pattern=ID_PATTERN),
]
EventType = Literal["view", "cart", "purchase", "rating"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemTextIn(_Strict):
    """The catalog text of an item (e.g. a new product's title and description)."""

    text: str = Field(min_length=1, max_length=20_000)


class ItemTextOut(BaseModel):
    item_id: str
    known_to_model: bool
    text_neighbours: bool = Field(
        description="whether the loaded model serves this item through its text neighbours "
        "(text models; plain CF only knows items from their interactions)"
    )


class EventIn(_Strict):
    """One user event. ``value``: the rating of a ``rating`` event (required there), or a
    multiplier of the type's weight (e.g. a quantity) for the other types."""

    user_id: ExternalId
    item_id: ExternalId
    type: EventType
    value: (
        Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)] | None
    ) = None
    timestamp: Annotated[int, Field(ge=0, le=MAX_TIMESTAMP)] | None = Field(
        default=None, description="unix seconds; default: the time the server received it"
    )
    event_id: EventId | None = Field(
        default=None, description="optional client id; a repeated id is stored once (safe retries)"
    )
    item_text: Annotated[str, BeforeValidator(_text), Field(max_length=MAX_TEXT_LENGTH)] | None = (
        Field(
            default=None,
            description="text of an item new to the catalog (title, description); used for "
            "text neighbours when the model has text embeddings",
        )
    )

    @model_validator(mode="after")
    def _rating_has_value(self) -> EventIn:
        if self.type == "rating" and self.value is None:
            raise ValueError("a rating event needs a value")
        return self


class EventBatch(_Strict):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventsAccepted(BaseModel):
    accepted: int = Field(description="events newly stored (durable when this answer is sent)")
    duplicates: int = Field(description="events skipped because their event_id was already stored")


class PairIn(_Strict):
    user_id: ExternalId
    item_id: ExternalId


class PredictionBatch(_Strict):
    pairs: Annotated[list[PairIn], Field(min_length=1, max_length=MAX_BATCH)]


class PredictionOut(BaseModel):
    user_id: str
    item_id: str
    prediction: float
    was_fallback: bool
    reason: str | None = None


class PredictionsOut(BaseModel):
    predictions: list[PredictionOut]


class ScoredItem(BaseModel):
    item_id: str
    score: float
    source: Literal["neighbours", "text", "popular", "model"] = Field(
        description="neighbours: item-item CF; text: text neighbours; popular: popularity "
        "fallback (score = number of interactions); model: the model's own ranking"
    )


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[ScoredItem]
    was_fallback: bool
    reason: str | None = None
    notes: list[str] = Field(default_factory=list)


class SimilarOut(BaseModel):
    item_id: str
    items: list[ScoredItem]
    was_fallback: bool
    reason: str | None = None


class ReloadIn(_Strict):
    model_dir: (
        Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=4096)] | None
    ) = Field(default=None, description="folder of a saved model; default: the current one")


class ReloadOut(BaseModel):
    model: dict[str, Any]
    previous: dict[str, Any] | None = None
    seconds: float


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model: dict[str, Any] | None = None
    error: str | None = None


class ErrorOut(BaseModel):
    detail: Any


# ---------------------------------------------------------------------- session lists
#: events of an inline (session) history; a longer history is a client mistake (422)
MAX_HISTORY = 500


class HistoryEventIn(_Strict):
    """One event of an inline history: the same types and values as a stored event."""

    item_id: ExternalId
    type: EventType
    value: (
        Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)] | None
    ) = None

    @model_validator(mode="after")
    def _rating_has_value(self) -> HistoryEventIn:
        if self.type == "rating" and self.value is None:
            raise ValueError("a rating event needs a value")
        return self


class SessionRecommendationsIn(_Strict):
    """A list for a visitor whose history travels with the request (nothing is stored).

    ``user_id``: optional; a user known to the model adds its training row, any other id
    (or none) is a new visitor. The stored events of ``user_id`` are not read: the inline
    history stands in for them.
    """

    history: Annotated[list[HistoryEventIn], Field(max_length=MAX_HISTORY)] = Field(
        description=f"the visitor's events, oldest first (at most {MAX_HISTORY})"
    )
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 10
    user_id: ExternalId | None = None


class CatalogItem(BaseModel):
    item_id: str
    title: str
    text: str | None = None
    genres: list[str] = Field(default_factory=list)
    popularity: float = Field(description="training interactions of the item (0: unknown)")
    known_to_model: bool
    text_neighbours: bool = Field(
        default=False,
        description="GET /v1/items/{id}/text-neighbours lists its neighbours by text (a text "
        "model and a stored text)",
    )


class CatalogOut(BaseModel):
    total: int
    offset: int
    items: list[CatalogItem]
