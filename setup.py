"""Build the one optional C accelerator (mlchaos.proxy._splice); everything else is in pyproject.toml.

``optional=True``: without a compiler the install still succeeds and the proxy uses its
pure-Python path (same results, slower JSON corruption; see docs/proxy.md).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mlchaos.proxy._splice", ["src/mlchaos/proxy/_splice.c"], optional=True)])
