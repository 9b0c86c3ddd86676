"""A cache of re-ranker scores, in memory (LRU) and optionally in a JSON-lines file."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["RerankCache"]


class RerankCache:
    """Re-ranker scores keyed by sha256 of (name, version, history texts, candidate texts).

    In memory (LRU, ``max_entries``), and appended to a JSON-lines file when ``path`` is given
    (read back on start; a corrupt line is skipped).
    """

    def __init__(self, path: str | Path | None = None, max_entries: int = 100_000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_entries = max_entries
        self._data: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._data[str(entry["key"])] = [float(v) for v in entry["scores"]]
                except (ValueError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(name: str, version: str, history: Sequence[str], candidates: Sequence[str]) -> str:
        blob = json.dumps([name, version, list(history), list(candidates)], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> list[float] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, scores: np.ndarray) -> None:
        values = [float(v) for v in scores]
        with self._lock:
            self._data[key] = values
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "scores": values}) + "\n")

    def __len__(self) -> int:
        return len(self._data)
