"""``llmcf predict``: predict ratings with a saved model."""

from __future__ import annotations

import argparse
import json

from llmcf.errors import LlmcfError


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from llmcf.models import load_model

    model = load_model(args.model_dir)
    users = [u for part in args.user for u in part.split(",") if u]
    items = [i for part in args.item for i in part.split(",") if i]
    if len(users) == 1 and len(items) > 1:
        users = users * len(items)
    if len(items) == 1 and len(users) > 1:
        items = items * len(users)
    if len(users) != len(items):
        raise LlmcfError(
            f"--user and --item give {len(users)} and {len(items)} ids; they must pair up"
        )
    u_idx = model.users_.lookup(np.asarray(users), missing="negative")
    i_idx = model.items_.lookup(np.asarray(items), missing="negative")
    est, fallback = model.predict_detailed(u_idx, i_idx)
    for u, i, e, fb, ku, ki in zip(users, items, est, fallback, u_idx, i_idx, strict=True):
        reason = None
        if ku < 0:
            reason = "unknown user"
        elif ki < 0:
            reason = "unknown item"
        elif fb:
            reason = "no usable neighbour"
        if args.json:
            print(
                json.dumps(
                    {
                        "user_id": u,
                        "item_id": i,
                        "prediction": float(e),
                        "was_fallback": bool(fb),
                        "reason": reason,
                    }
                )
            )
        else:
            note = f"  (fallback: {reason})" if fb else ""
            print(f"user {u} item {i}: {e:.4f}{note}")
    return 0
