"""Kubernetes platform tests.  No live cluster runs here or in CI: see the module docstrings."""
