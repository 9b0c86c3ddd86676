"""Evaluation: metrics (pure functions), splitters and reports."""
