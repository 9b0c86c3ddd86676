"""The two-stage pipeline: CF candidates -> re-ranker -> fusion -> top-N -> explanations."""

from llmcf.pipeline.core import Pipeline, PipelineResult, tune_weight, user_histories

__all__ = ["Pipeline", "PipelineResult", "tune_weight", "user_histories"]
