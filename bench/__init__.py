"""ann-benchmarks-style benchmarks for annvq: datasets, recall metric, comparison scripts.

Not collected by pytest; run scripts as modules, e.g. ``python -m bench.ivfflat_vs_faiss``.
"""
