"""Benchmarks of the heads, the input pipeline, the extractors and the GPU: run as ``python -m benchmarks.<name>``."""
