"""A warning on the command line is one line naming the command, never a line of llmcf's
source (the Python default echoes the source line that called ``warnings.warn``)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_warning_is_the_message_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dup.csv"
    rows = ["user,item,rating"] + [
        f"u{u},i{i},{1 + (u + i) % 5}" for u in range(8) for i in range(6)
    ]
    rows += ["u0,i0,5", "u1,i2,1"]  # two repeated (user, item) pairs
    path.write_text("\n".join(rows) + "\n")
    args = ["evaluate", "--data", str(path), "--split", "random:0.2", "--model", "global-mean"]
    out = subprocess.run(
        [sys.executable, "-m", "llmcf.cli", *args, "--duplicates", "last", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    warnings = [line for line in out.stderr.splitlines() if line.strip()]
    assert any(
        line.startswith("llmcf evaluate: warning: ") and "2 duplicate" in line for line in warnings
    ), out.stderr
    assert not any(
        ".py:" in line or "warnings.warn" in line or "return " in line for line in warnings
    ), out.stderr
