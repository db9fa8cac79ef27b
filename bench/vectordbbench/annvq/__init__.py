"""annvq's VectorDBBench client: copied as vectordb_bench/backend/clients/annvq by
bench/vectordbbench/register.py (which also adds ``DB.Annvq`` and the ``annvq`` CLI command)."""
