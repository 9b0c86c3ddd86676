"""Experiment results: fold means, a text table, a JSON file and a metric-vs-K plot.

A *result row* is a dict with the keys ``model`` (str), ``k`` (int, or None for models without
neighbours), ``fold`` (str), ``mae``, ``rmse``, ``fit_seconds``, ``predict_seconds``,
``n_predictions``, ``n_fallbacks`` and possibly more metrics (``"ndcg@10"``, ...).
matplotlib is imported only inside :func:`plot_metric_vs_k`, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["format_table", "plot_metric_vs_k", "summarize", "write_json"]

Row = Mapping[str, Any]

_KEY_FIELDS = ("model", "k", "fold", "n_folds")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def summarize(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """One row per ``(model, k)``: the mean over its folds of every numeric field.

    Groups keep the order in which they first appear. Each summary row has ``model``, ``k``,
    ``fold = "mean"``, ``n_folds`` (the number of rows averaged; a row that already carries
    ``n_folds`` counts for that many, so summarising a summary changes nothing) and, for every
    other numeric field, the plain mean over the rows of the group that have it (a NaN in one
    fold makes the mean NaN). Non-numeric extra fields are dropped.
    """
    groups: dict[tuple[str, Any], list[Row]] = {}
    for row in rows:
        groups.setdefault((str(row["model"]), row.get("k")), []).append(row)
    summary: list[dict[str, Any]] = []
    for (model, k), members in groups.items():
        out: dict[str, Any] = {"model": model, "k": k, "fold": "mean"}
        weights = [int(m.get("n_folds", 1)) for m in members]
        out["n_folds"] = sum(weights)
        keys = dict.fromkeys(key for m in members for key in m if key not in _KEY_FIELDS)
        for key in keys:
            pairs = [
                (float(m[key]), w)
                for m, w in zip(members, weights, strict=True)
                if _is_number(m.get(key))
            ]
            if pairs:
                total = sum(w for _, w in pairs)
                out[key] = sum(v * w for v, w in pairs) / total
        summary.append(out)
    return summary


def _sort_key_k(k: Any) -> tuple[int, float]:
    return (0, 0.0) if k is None else (1, float(k))


def _ordered_summary(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """The summary with the rows of one model together (first-seen model order), by K."""
    summary = summarize(rows)
    models = list(dict.fromkeys(row["model"] for row in summary))
    return [
        row
        for model in models
        for row in sorted(
            (r for r in summary if r["model"] == model), key=lambda r: _sort_key_k(r["k"])
        )
    ]


def format_table(rows: Iterable[Row], metrics: Sequence[str] = ("mae", "rmse")) -> str:
    """A fixed-width text table of the fold means: one line per ``(model, k)``.

    Columns: ``model`` (left-aligned; lines of one model together, K ascending, ``-`` for no
    K), ``k``, ``folds`` and one column per metric with 4 decimals (``-`` where missing).
    """
    header = ["model", "k", "folds", *metrics]
    lines: list[list[str]] = []
    for row in _ordered_summary(rows):
        cells = [str(row["model"]), "-" if row["k"] is None else str(row["k"]), str(row["n_folds"])]
        for metric in metrics:
            value = row.get(metric)
            cells.append(f"{value:.4f}" if _is_number(value) else "-")
        lines.append(cells)
    widths = [max(len(line[c]) for line in [header, *lines]) for c in range(len(header))]

    def render(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)]) + "\n"


def format_chosen(rows: Iterable[Row]) -> str:
    """One line per (model, fold) whose fit chose settings on validation carves (the
    ``chosen`` field of the rows, see ``Model.chosen_settings``); ``""`` when none did."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        chosen = row.get("chosen")
        if chosen:
            seen.setdefault((str(row["model"]), str(row.get("fold"))), chosen)
    lines = []
    for (model, fold), chosen in seen.items():
        values = ", ".join(f"{k}={v:g}" if _is_number(v) else f"{k}={v}" for k, v in chosen.items())
        lines.append(f"chosen on the training carve: {model} {fold}: {values}")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and infinities become None, numpy scalars and arrays Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> Path:
    """Write ``{"meta": meta, "rows": rows, "summary": summarize(rows)}`` as JSON.

    Keys sorted, indent 2, NaN and infinities written as ``null``; parent folders are created.
    Returns the path written.
    """
    path = Path(path)
    document = {"meta": meta, "rows": list(rows), "summary": summarize(rows)}
    text = json.dumps(_jsonable(document), sort_keys=True, indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def plot_metric_vs_k(
    rows: Iterable[Row], path: str | Path, metric: str = "mae", title: str | None = None
) -> Figure:
    """Plot the fold mean of ``metric`` against K, one line per model, and save it as a PNG.

    Models with a K get a line with markers through their points (K ascending); a model
    without K (``k = None``, e.g. a baseline) gets a dashed horizontal line at its value.
    Axis labels, legend and grid; saved at 120 dpi with the Agg canvas (no pyplot, no global
    backend change). Returns the figure (its single Axes holds one line per model).

    Raises:
        ValueError: no row has a numeric ``metric``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = [r for r in _ordered_summary(rows) if _is_number(r.get(metric))]
    if not summary:
        raise ValueError(f"no result row has a numeric {metric!r} to plot")
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    models = list(dict.fromkeys(r["model"] for r in summary))
    for model in models:
        points = [r for r in summary if r["model"] == model]
        with_k = [r for r in points if r["k"] is not None]
        if with_k:
            ax.plot(
                [r["k"] for r in with_k],
                [r[metric] for r in with_k],
                marker="o",
                label=model,
            )
        else:
            ax.axhline(float(points[0][metric]), linestyle="--", label=model)
    ax.set_xlabel("K (neighbours)")
    ax.set_ylabel(metric)
    ax.set_title(title if title is not None else f"{metric} vs K")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return fig
