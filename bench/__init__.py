"""Benchmarks of runflow-cli against baselines measured in the same run: ``python -m bench``."""
