"""UCI Online Retail (Parquet or CSV) -> implicit-feedback :class:`Dataset` (customer x StockCode)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from llmcf.data.dataset import Catalog, Dataset
from llmcf.data.loaders.common import PathLike
from llmcf.data.loaders.lines import Kind, Table, header_names, parse_delimited, read_bytes
from llmcf.data.vocab import Vocabulary
from llmcf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_online_retail"]

_RETAIL_COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
]
_CSV_KINDS: dict[str, Kind] = {"Quantity": "float?", "UnitPrice": "float?", "CustomerID": "float?"}
_SPACE = re.compile(r"\s+")
# the texts pandas.read_csv reads as missing by default (the CSV used to be read with them)
_PANDAS_NA = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def _retail_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("online_retail.parquet", "online_retail.csv.gz", "online_retail.csv"):
        if (path / name).exists():
            return path / name
    raise DataError(
        "no online_retail.parquet, online_retail.csv.gz or online_retail.csv found", path=str(path)
    )


def _read_retail(file: Path) -> tuple[pd.DataFrame, Table | None]:
    """The rows as a DataFrame and, for a CSV, the parsed table (for line numbers).

    CSV columns are typed as pandas inferred them before: Quantity, UnitPrice and CustomerID
    numbers (empty -> NaN), the others text, with a Description spelled like a pandas
    missing value (``""``, ``"NA"``, ...) missing.
    """
    import pandas as pd

    if file.suffix == ".parquet":
        try:
            return pd.read_parquet(file), None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read Parquet: {exc}", path=str(file)) from None
    data = read_bytes(file)
    names, _ = header_names(data, file, sep=",", quoting=True)
    missing = [c for c in _RETAIL_COLUMNS if c not in names]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; available columns: {names}", path=str(file), line=1
        )
    fields: list[tuple[str, Kind]] = [(c, _CSV_KINDS.get(c, "str")) for c in _RETAIL_COLUMNS]
    table = parse_delimited(data, file, fields, sep=",", header=True, quoting=True)
    # text stays object dtype: converting it to pandas' string dtype costs more than it saves
    frame = pd.DataFrame(
        {name: pd.Series(v, dtype=v.dtype, copy=False) for name, v in table.columns.items()}
    )
    description = frame["Description"].astype(object)
    frame["Description"] = description.where(~description.isin(_PANDAS_NA), None)
    return frame, table


def load_online_retail(
    path: PathLike,
    *,
    weight: Literal["invoices", "quantity"] = "invoices",
    drop_nonpositive_price: bool = True,
) -> Dataset:
    """UCI Online Retail as implicit feedback (customer x StockCode).

    Rows are dropped, each counted under the first reason that applies, in this order:
    no CustomerID, cancellation (InvoiceNo starting with "C"), Quantity <= 0, UnitPrice <= 0
    (the last only when ``drop_nonpositive_price``; on the real file it removes 40 free
    lines, one customer and 10 pairs: 4,338 customers, 3,665 items, 266,792 pairs; without it
    the commonly quoted 4,339 / 3,665 / 266,802 and 397,924 kept rows are obtained).
    The remaining purchases are aggregated per (customer, StockCode): the weight is the number
    of distinct invoices (``weight="invoices"``, default) or the total quantity
    (``weight="quantity"``); the timestamp is the last purchase (InvoiceDate read as UTC, unix
    seconds). Users and items are numbered in order of first appearance among kept rows.

    Catalog: ``description`` = most frequent Description of the StockCode (ties: the first
    seen), ``price`` = median UnitPrice. ``info`` holds ``rows_read``, ``dropped`` (per reason)
    and ``rows_kept``.

    Raises:
        DataError: a missing column, a CSV line with the wrong number of fields, a CustomerID
            that is not a number, an unparseable InvoiceDate (file, line or row, column, value).
    """
    import pandas as pd

    if weight not in ("invoices", "quantity"):
        raise DataError("weight must be 'invoices' or 'quantity'", value=weight)
    file = _retail_file(Path(path))
    frame, table = _read_retail(file)
    missing = [c for c in _RETAIL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; available columns: {list(frame.columns)}", path=str(file)
        )

    def where(row: int) -> int:
        return table.line(row) if table is not None else row + 1

    n_read = len(frame)
    invoice = frame["InvoiceNo"].astype(str)
    quantity = pd.to_numeric(frame["Quantity"], errors="coerce")
    price = pd.to_numeric(frame["UnitPrice"], errors="coerce")
    no_customer = frame["CustomerID"].isna().to_numpy()
    customer = pd.to_numeric(frame["CustomerID"], errors="coerce")
    not_number = customer.isna().to_numpy() & ~no_customer
    if not_number.any():  # Parquet only: CSV numbers are checked while parsing
        row = int(np.flatnonzero(not_number)[0])
        raise DataError(
            "CustomerID is not a number",
            path=str(file),
            line=where(row),
            column="CustomerID",
            value=frame["CustomerID"].iloc[row],
        )
    reasons = {
        "no_customer": no_customer,
        "cancelled": invoice.str.startswith("C").to_numpy(),
        "quantity_le_0": ~(quantity > 0).to_numpy(),
    }
    if drop_nonpositive_price:
        reasons["price_le_0"] = ~(price > 0).to_numpy()
    dropped: dict[str, int] = {}
    gone = np.zeros(n_read, dtype=bool)
    for reason, mask in reasons.items():
        dropped[reason] = int((mask & ~gone).sum())
        gone |= mask
    kept = frame.loc[~gone, ["InvoiceNo", "StockCode", "Description", "InvoiceDate"]].copy()
    kept["Quantity"] = quantity[~gone]
    kept["UnitPrice"] = price[~gone]
    kept["CustomerID"] = customer[~gone].astype(np.int64)
    kept["StockCode"] = kept["StockCode"].astype(str)
    times = pd.to_datetime(kept["InvoiceDate"], errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            "unparseable InvoiceDate",
            path=str(file),
            line=where(int(np.flatnonzero(~gone)[row])),
            column="InvoiceDate",
            value=kept["InvoiceDate"].iloc[row],
        )
    kept["ts"] = times.astype("datetime64[s]").astype(np.int64)

    users, user_idx = Vocabulary.from_values(kept["CustomerID"].to_numpy(), name="user")
    items, item_idx = Vocabulary.from_values(kept["StockCode"].to_numpy(dtype=str), name="item")
    kept["u"] = user_idx
    kept["i"] = item_idx
    grouped = kept.groupby(["u", "i"], sort=False)
    agg = grouped.agg(
        invoices=("InvoiceNo", "nunique"), quantity=("Quantity", "sum"), ts=("ts", "max")
    ).reset_index()
    values = agg["invoices"] if weight == "invoices" else agg["quantity"]

    desc = kept.dropna(subset=["Description"])
    counts = desc.groupby(["i", "Description"], sort=False).size().reset_index(name="n")
    # stable sort keeps first-seen order among equally frequent descriptions
    best = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("i")
    description: list[object] = [None] * len(items)
    for k, text in zip(best["i"].tolist(), best["Description"].tolist(), strict=True):
        description[k] = _SPACE.sub(" ", str(text)).strip() or None
    medians = kept.groupby("i")["UnitPrice"].median()
    prices: list[object] = [None] * len(items)
    for k, value in medians.items():
        prices[int(k)] = float(value)  # type: ignore[call-overload]

    return Dataset(
        users,
        items,
        agg["u"].to_numpy(np.int32),
        agg["i"].to_numpy(np.int32),
        values.to_numpy(np.float64),
        agg["ts"].to_numpy(np.int64),
        feedback="implicit",
        item_catalog=Catalog({"description": description, "price": prices}),
        name="uci-online-retail",
        info={
            "source": str(file),
            "rows_read": n_read,
            "dropped": dropped,
            "rows_kept": int((~gone).sum()),
            "weight": weight,
        },
    )
