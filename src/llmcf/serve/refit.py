"""Refit the served model with the stored catalog texts, so products added with
``PUT /v1/items/{id}`` become items the model knows (``POST /v1/admin/refit-catalog``).

A product new to the model cannot be *listed*: the ranking path ranks the model's items.
A refit puts it in the model's catalog as an item with text and no interactions, which a text
model (T-ItemKNN) then recommends through its text neighbours (its cold-item text weight),
to visitors whose history matches the text. The refit is the model's own ``fit`` with its
saved name and config (nothing is chosen here) on its own training interactions (the same
arrays, in the same order), with the catalog = the stored item texts (items without one
have none). It is saved as a new model folder beside the served one, loaded from there (the
served model is the saved artifact) and swapped in like a reload. The events cutoff and event
weights are kept, so stored events count as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from llmcf.errors import ConfigError
from llmcf.serve.engine import ServingModel


def catalog_dataset(serving: ServingModel, texts: dict[str, str]) -> object:
    """The model's training interactions with the vocabulary extended by the stored texts'
    new items and a catalog of those texts (field ``description``)."""
    from llmcf.data.dataset import Catalog, Dataset
    from llmcf.data.vocab import Vocabulary

    model = serving.model
    known = set(serving.item_ids_str.tolist())
    new = sorted(set(texts) - known)
    old_ids = model.items_.ids
    if old_ids.dtype.kind in "iu":
        bad = [i for i in new if not (i.lstrip("-").isdigit() and str(int(i)) == i)]
        if bad:
            raise ConfigError(
                f"the model's item ids are integers; stored item {bad[0]!r} cannot join them"
            )
        new_ids = np.array([int(i) for i in new], dtype=old_ids.dtype)
    else:
        new_ids = np.array(new, dtype=str)  # its own width: <U9 ids would cut longer ones
    ids = np.concatenate([old_ids, new_ids]) if len(new_ids) else old_ids
    names = [str(x) for x in ids]
    scale = getattr(model, "rating_scale_", None)
    return Dataset(
        model.users_,
        Vocabulary(ids, name="item"),
        model.user_idx_,
        model.item_idx_,
        model.rating_,
        feedback="explicit" if scale is not None else "implicit",
        rating_scale=scale,
        item_catalog=Catalog({"description": [texts.get(i) for i in names]}),
        name="served-catalog",
    )


def refit_with_catalog(serving: ServingModel, texts: dict[str, str]) -> tuple[Path, int]:
    """Fit the served model's class and config again with the catalog ``texts`` (module
    docstring); ``(new model folder, items added)``. Blocking (seconds: the fit and the
    embedding of the texts)."""
    from llmcf.models import make_model
    from llmcf.persist import read_manifest, save_model

    source = Path(serving.source)
    if not source.is_dir():
        raise ConfigError("the served model was not loaded from a folder: nothing to refit")
    manifest = read_manifest(source)
    if not getattr(serving.model, "text_similarities", None):
        raise ConfigError(
            f"{manifest['class']} has no text: a refit would not serve new items through text"
        )
    dataset = catalog_dataset(serving, texts)
    model = make_model(manifest["model"], **manifest["config"])
    model.fit(dataset)
    model.set_ranking(**manifest["ranking"])
    model.events_cutoff_ = serving.events_cutoff
    model.event_weights_ = getattr(serving.model, "event_weights_", None)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = source.name.split("+catalog-")[0]
    out = source.parent / f"{base}+catalog-{stamp}"
    save_model(model, out)
    added = len(dataset.items) - serving.n_items  # type: ignore[attr-defined]
    return out, int(added)
