"""Test support shipped with llmcf: slow reference implementations (oracles), tiny fixtures
and contract checks that every model must pass."""
