"""Benchmark harness for wsgiserver: see bench/README.md."""
