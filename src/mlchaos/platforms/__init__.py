"""Platforms mlchaos drives beyond one machine (Kubernetes and Chaos Mesh)."""
