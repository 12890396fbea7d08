"""Benchmarks of jellyzoo (run as scripts, e.g. `python benchmarks/kernels.py`; helpers importable from here)."""
