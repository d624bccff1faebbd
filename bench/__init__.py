"""Benchmarks (not tests): `python -m bench NAME`. Results go to bench/results/."""
