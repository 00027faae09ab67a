"""Throughput benchmarks (``taast bench``, ``benchmarks/``): per stage, Ray against a plain loop,
end to end with N actors, and the fused decode-detect-embed pass for one GPU.

Nothing in this package imports Ray at module import: ``benchmarks/gpu_pass.py`` runs on
machines without it.
"""
