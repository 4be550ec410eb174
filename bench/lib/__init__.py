"""Helpers shared by the trading-loop benchmarks (not benchmarks themselves).

`make bench` runs only the top-level ``bench/*.py`` files; everything here is imported by them.
"""
