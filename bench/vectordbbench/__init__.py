"""VectorDBBench (zilliztech/VectorDBBench) over annvq's REST API: the client package `annvq/`
that drops into ``vectordb_bench/backend/clients/annvq`` (`register` installs it), `export`
(an ann-benchmarks data set in VectorDBBench's custom-dataset Parquet layout), `drive` (the cases,
run in VectorDBBench's own Python) and `run` (all of it against ``annvq serve``)."""
