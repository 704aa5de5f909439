"""Benchmarks for the GLM-Realtime package; run ``python -m benchmarks <name>``.

Each module in this package with a ``main(argv)`` function is one benchmark.
"""
