"""The benchmark suite end to end on random-xs-20-euclidean (9000 x 20): run, resume, plot, report,
through the CLI, plus the pieces they rest on. Recall floors only; no speed is asserted."""

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from bench import results
from bench.config import combinations, load_definitions
from bench.runner import id_matrix, run
from cli.main import cli

DATASET = "random-xs-20-euclidean"
SMOKE_ALGORITHMS = "annvq,faiss-ivf,hnswlib"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def batch_results(workdir):
    """The smoke configurations of bench/configs/random-xs.yml, batch mode, through the CLI."""
    out = CliRunner().invoke(cli, ["bench", "run", "--dataset", DATASET, "--algorithms", SMOKE_ALGORITHMS,
                                   "--runs", "1", "--batch", "--results", str(workdir / "results"),
                                   "--datasets-dir", str(workdir / "datasets"), "--quiet"])
    assert out.exit_code == 0, out.output
    return workdir / "results" / f"{DATASET}-batch-t1-k10.json"


def test_run_writes_json_and_csv_with_every_configuration(batch_results):
    records = json.loads(batch_results.read_text())
    assert {r["family"] for r in records} == {"annvq", "faiss-ivf", "hnswlib"}
    assert len(records) == 9  # 3 builds x 3 query-argument sets in random-xs.yml
    csv_lines = batch_results.with_suffix(".csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:3] == ["dataset", "metric", "count"]
    assert len(csv_lines) == 1 + len(records)
    for r in records:
        assert r["dataset"] == DATASET and r["mode"] == "batch" and r["n_queries"] == 1000
        assert r["qps"] > 0 and r["build_time_s"] >= 0 and r["bytes_per_vector"] > 0
        assert r["p50_ms"] is None  # batch mode has no per-query latencies


def test_recall_reaches_floors_at_the_widest_search(batch_results):
    records = json.loads(batch_results.read_text())
    best = {a: max(g, key=lambda r: r["query_args"][0]) for a, g in results.by_algorithm(records).items()}
    floors = {"annvq IVF64,Flat": 0.99, "faiss-ivf IVF64,Flat": 0.99,
              "hnswlib M=16, efConstruction=100": 0.95}
    for algorithm, floor in floors.items():
        assert best[algorithm]["recall"] >= floor, f"{algorithm}: recall {best[algorithm]['recall']} < {floor}"


def test_ivf_flat_peers_probe_the_same_lists(batch_results):
    """Shared centroids + exact distances: annvq and faiss IVF-Flat find the same neighbours."""
    groups = results.by_algorithm(json.loads(batch_results.read_text()))
    ours = {r["query_args"][0]: r["recall"] for r in groups["annvq IVF64,Flat"]}
    theirs = {r["query_args"][0]: r["recall"] for r in groups["faiss-ivf IVF64,Flat"]}
    assert ours.keys() == theirs.keys()
    for nprobe in ours:
        assert ours[nprobe] == pytest.approx(theirs[nprobe], abs=2e-3), nprobe


def test_rerun_skips_recorded_configurations(batch_results, workdir):
    before = batch_results.read_text()
    path = run(DATASET, algorithms=SMOKE_ALGORITHMS.split(","), runs=1, batch=True,
               results_dir=workdir / "results", datasets_dir=workdir / "datasets", quiet=True)
    assert path == batch_results
    assert path.read_text() == before


def test_single_query_mode_records_latency_percentiles(workdir):
    path = run(DATASET, algorithms=["annvq"], runs=2, n_queries=200, results_dir=workdir / "results",
               datasets_dir=workdir / "datasets", quiet=True)
    assert path.name == f"{DATASET}-single-t1-k10-q200.json"
    records = json.loads(path.read_text())
    assert len(records) == 3
    for r in records:
        assert r["n_queries"] == 200 and r["mode"] == "single"
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert max(r["recall"] for r in records) >= 0.99


def test_plot_and_report(batch_results, workdir):
    png = workdir / "plot.png"
    out = CliRunner().invoke(cli, ["bench", "plot", str(batch_results), "--out", str(png)])
    assert out.exit_code == 0, out.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 1000 < len(data) < 200_000

    out = CliRunner().invoke(cli, ["bench", "report", str(batch_results), "--out", str(workdir / "t.md")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "| algorithm | bytes/vector | build (s) | QPS @ recall>=0.90 |" in out.output
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| algorithm")]
    assert {row.split(" | ")[0][2:] for row in rows} == {
        "annvq IVF64,Flat", "faiss-ivf IVF64,Flat", "hnswlib M=16, efConstruction=100"}
    assert (workdir / "t.md").read_text() == out.output


def test_unbuildable_and_unavailable_algorithms_are_skipped_with_a_warning(workdir, caplog):
    config = workdir / "broken.yml"
    config.write_text("""
float:
  any:
  - {name: annvq, constructor: AnnvqIVF, base_args: ['@metric'],
     run_groups: {bad: {args: [['IVF64,NoSuchCodec4']], query_args: [[1]]},
                  ok: {args: [['IVF16,Flat']], query_args: [[16]]}}}
  - {name: nope, constructor: NoSuchWrapper, run_groups: {g: {args: [[1]]}}}
  - {name: faiss-gpu-ivf, constructor: FaissGPUIVF, base_args: ['@metric'],
     run_groups: {g: {args: [['IVF16,Flat']], query_args: [[1]]}}}
""")
    with caplog.at_level(logging.WARNING, logger="bench.runner"):
        path = run(DATASET, config=config, runs=1, batch=True, results_dir=workdir / "broken",
                   datasets_dir=workdir / "datasets", quiet=True)
    records = json.loads(path.read_text())
    import faiss

    gpu = faiss.get_num_gpus() > 0
    assert [r["algorithm"] for r in records][:1] == ["annvq IVF16,Flat"]
    assert len(records) == (2 if gpu else 1) and records[0]["recall"] >= 0.99
    messages = caplog.text
    assert "NoSuchCodec4" in messages and "NoSuchWrapper" in messages
    assert gpu or "needs a GPU" in messages


def test_config_expansion_follows_ann_benchmarks():
    assert combinations([[1, 2], "a", [True]]) == [(1, "a", True), (2, "a", True)]
    assert combinations({"M": [4, 8], "ef": 10}) == [{"M": 4, "ef": 10}, {"M": 8, "ef": 10}]
    assert combinations([]) == [()]


def test_default_config_substitutes_metric_and_dimension():
    from bench.config import CONFIG_DIR

    defs = load_definitions(CONFIG_DIR / "default.yml", "angular", 96, algorithms=["faiss-ivf"])
    assert defs and all(d.args[0] == "angular" for d in defs)
    assert "RR96,IVF1024,RaBitQ4" in {d.args[1] for d in defs}
    assert all(len(d.query_args) == 7 for d in defs)


def test_annvq_wrapper_trains_the_centroids_a_plain_index_trains():
    """Handing annvq the shared k-means changes nothing but the time spent."""
    import annvq

    from bench.algorithms.annvq_ivf import AnnvqIVF
    from naive import clustered

    X = clustered(3000, 16, seed=5)
    wrapper = AnnvqIVF("euclidean", "IVF32,Flat")
    wrapper.prepare_fit(X)
    wrapper.fit(X)
    plain = annvq.Index(16, "IVF32,Flat").train(X)
    np.testing.assert_array_equal(wrapper.index.centroids_, plain.centroids_)


def test_id_matrix_pads_short_results():
    ids = id_matrix([np.array([3, 1]), np.array([5, 6, 7, 8])], 3)
    np.testing.assert_array_equal(ids, [[3, 1, -1], [5, 6, 7]])


def test_pareto_frontier_and_qps_at_recall():
    points = [{"recall": r, "qps": q} for r, q in [(0.5, 100), (0.6, 50), (0.7, 80), (0.9, 10), (0.9, 20)]]
    front = results.pareto_frontier(points)
    assert [(p["recall"], p["qps"]) for p in front] == [(0.5, 100), (0.7, 80), (0.9, 20)]
    assert results.qps_at_recall(points, 0.65) == 80
    assert results.qps_at_recall(points, 0.95) is None


@pytest.mark.parametrize("command", ["run", "plot", "report", "error", "http"])
def test_every_bench_command_loads(command):
    """The commands import their modules lazily; --help is where a broken import would show."""
    out = CliRunner().invoke(cli, ["bench", command, "--help"])
    assert out.exit_code == 0, out.output
    assert "Usage:" in out.output


def test_error_command_delegates_and_reports_bad_methods():
    out = CliRunner().invoke(cli, ["bench", "error", "--methods", "NoSuchMethod", "--bits", "1"])
    assert out.exit_code == 2
    assert "NoSuchMethod" in out.output


def test_error_bench_scores_an_angular_dataset_on_unit_vectors(tmp_path, monkeypatch):
    """Angular data is normalised, so the measured error is the cosine scan's: small, and falling
    with the bit budget."""
    from bench.error import run_error_bench

    monkeypatch.chdir(tmp_path)  # the dataset is prepared under ./datasets
    rows = run_error_bench("random-xs-20-angular", nlist=8, nprobe=2, bits=(2, 8), methods=("CAQ",),
                           n_queries=50, quiet=True)
    errors = [r["rel_error_pairs"] for r in rows]
    assert [r["bits"] for r in rows] == [2, 8] and errors[1] < errors[0] / 10 and errors[0] < 0.2


def test_relative_errors_leave_out_a_point_paired_with_itself():
    """A query equal to a data row (up to float rounding, as duplicate sentences embed) has no
    relative error: NaN, where dividing by its ~1e-15 distance read as 1e17 %; other pairs are
    |est - d^2| / d^2 against float64 truth."""
    from bench.error import relative_errors

    rng = np.random.default_rng(6)
    X = rng.standard_normal((5, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Q = np.stack([X[2] * np.float32(1 + 1e-7), rng.standard_normal(8).astype(np.float32)])
    ids = np.array([[0, 2, 4], [1, 2, 3]])
    true = ((X[ids].astype(np.float64) - Q[:, None].astype(np.float64)) ** 2).sum(axis=2)
    rel = relative_errors(true * 1.1, X, Q, ids)
    assert np.isnan(rel[0, 1]) and np.isnan(rel).sum() == 1
    np.testing.assert_allclose(rel[~np.isnan(rel)], 0.1)


def test_saq_vs_rabitq_interpolates_qps_at_the_target_recall():
    from bench.saq_vs_rabitq import qps_at

    rows = [{"nprobe": 4, "recall": 0.90, "qps": 8000.0}, {"nprobe": 8, "recall": 0.94, "qps": 6000.0},
            {"nprobe": 16, "recall": 0.98, "qps": 3000.0}]
    at = qps_at(rows, 0.96)  # halfway from nprobe 8 to 16 in recall: the geometric mean of the QPS
    assert at == pytest.approx((6000.0 * 3000.0) ** 0.5)
    assert qps_at(rows, 0.85) == 8000.0  # already reached at the smallest nprobe
    assert qps_at(rows, 0.99) is None  # never reached


def test_saq_vs_rabitq_runs_an_angular_dataset_with_its_own_nlist(tmp_path, monkeypatch, capsys):
    """Every index gets the dataset's metric (angular: unit vectors, spherical k-means) and the
    nlist asked for; the table has a QPS column per target."""
    from bench.saq_vs_rabitq import main

    monkeypatch.chdir(tmp_path)  # the dataset is prepared under ./datasets
    main(["--dataset", "random-xs-20-angular", "--nlist", "16", "--nprobe", "4", "16", "--queries", "100",
          "--rounds", "1", "--only", "annvq CAQ4", "rabitqlib nbits=4", "--target", "0.5", "0.9",
          "--out", "rows.json", "-q"])
    table = capsys.readouterr().out
    assert "shared IVF16 centroids" in table and "QPS at recall 0.5 | QPS at recall 0.9 |" in table
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["index"] for r in rows} == {"annvq CAQ4", "rabitqlib nbits=4"}
    assert all(r["recall"] > 0.8 for r in rows if r["nprobe"] == 16)  # every list read: 4-bit codes alone


def test_build_time_interleaves_timed_builds_after_a_warm_round(tmp_path, monkeypatch, capsys):
    from bench.build_time import main

    monkeypatch.chdir(tmp_path)  # the dataset is prepared under ./datasets
    main(["--dataset", "random-xs-20-euclidean", "--nlist", "16", "--threads", "1", "--rounds", "2",
          "--only", "annvq CAQ4", "rabitqlib nbits=4", "--out", "times.json", "-q"])
    table = capsys.readouterr().out
    assert "IVF16 shared centroids, 1 threads, 2 rounds" in table and "| annvq CAQ4 |" in table
    times = json.loads((tmp_path / "times.json").read_text())
    assert set(times) == {"annvq CAQ4", "rabitqlib nbits=4"}
    assert all(len(ts) == 2 and all(t > 0 for t in ts) for ts in times.values())
    with pytest.raises(SystemExit):
        main(["--only", "annvq SAQ4 m=4"])


def test_annvq_wrapper_passes_codec_params():
    from annvq.errors import InvalidParameterError
    from bench.algorithms.annvq_ivf import AnnvqIVF
    from naive import clustered

    X = clustered(2000, 16, seed=3)
    algo = AnnvqIVF("euclidean", "IVF4,SAQ4")
    algo.fit(X)
    algo.set_query_arguments(4, None, "m=inf")
    assert "m=inf" in algo.query_label()
    assert algo.query(X[0], 1)[0] == 0
    algo.set_query_arguments(4, None, "m=-1")
    with pytest.raises(InvalidParameterError, match="'m'"):
        algo.query(X[0], 1)


def test_filtered_bench_returns_k_matching_points_and_reaches_exact_recall(tmp_path, capsys):
    """bench/filtered.py end to end on random-xs (labels: 10 k-means groups), IVF64: every filter,
    every index; annvq always returns min(k, matching) points, nobody returns a row failing the
    filter, and probing every list is exact for the Flat indexes and annvq's flat strategy."""
    from bench.filtered import CASES, main

    out = tmp_path / "filtered.json"
    rows = main(["--dataset", DATASET, "--nlist", "64", "--queries", "40", "--nprobe", "2", "8", "64",
                 "--rounds", "1", "--only", "annvq", "faiss", "--out", str(out), "-q"])
    assert json.loads(out.read_text()) == rows
    printed = capsys.readouterr().out
    assert "| filter | matching | index | nprobe 2 | nprobe 8 | nprobe 64 |" in printed
    assert "for every query at every nprobe: yes" in printed
    indexes = {"annvq SAQ4", "annvq Flat", "faiss Flat", "faiss RaBitQ4"}
    assert {(r["filter"], r["index"]) for r in rows} == {(f, i) for f in {r["filter"] for r in rows} for i in indexes}
    assert len({r["filter"] for r in rows}) == len(CASES)
    for r in rows:
        assert r["violations"] == 0, r
        if r["index"].startswith("annvq"):
            assert r["min_found"] == min(10, r["matching"]), r
            assert r["strategy"] and set(r["strategy"].replace("|", "+").split("+")) <= {"ivf", "ivf-raw", "flat"}, r
    for (f, i) in {(r["filter"], r["index"]) for r in rows}:
        if i != "faiss RaBitQ4":
            assert max(r["recall"] for r in rows if (r["filter"], r["index"]) == (f, i)) >= 0.99, (f, i)
    rand1 = [r for r in rows if r["filter"] == "rand < 1" and r["index"] == "annvq SAQ4"]
    assert rand1[0]["strategy"] == "flat" and rand1[0]["recall"] == 1.0  # ~9 matching rows: scanned exhaustively


def test_fashion_mnist_labels_follow_the_train_rows():
    from bench.datasets import FASHION_MNIST_DIR, FASHION_MNIST_LABELS, fashion_mnist_labels

    if not (FASHION_MNIST_DIR / FASHION_MNIST_LABELS["train"][0]).exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    train, test = fashion_mnist_labels("train"), fashion_mnist_labels("test")
    assert train.shape == (60000,) and test.shape == (10000,)
    assert np.bincount(train).tolist() == [6000] * 10 and np.bincount(test).tolist() == [1000] * 10
    assert train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the published file's first labels
