"""Benchmarks of a quorum cluster; run each module with ``python -m bench.<name>``."""
