"""Build of the C kernels (llmcf.cf._ckernels); the rest of the metadata is in pyproject.toml.

-ffp-contract=off keeps a*b+c as two rounded operations (no fused multiply-add), so the kernels
give bit for bit the results of the Python and Spark formulas; no -ffast-math, no -march=native.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "llmcf.cf._ckernels",
            sources=["src/llmcf/cf/_ckernels.c"],
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-fast-math", "-pthread"],
            extra_link_args=["-pthread"],
        )
    ]
)
