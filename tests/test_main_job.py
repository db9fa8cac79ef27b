"""End to end through real processes: `annvq build` -> `annvq serve` -> HTTP queries -> `annvq verify`,
checked against exact ground truth; and the README's main job (`annvq demo`) on a small dataset."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from naive import clustered, exact_knn, recall
from service.process import serve_in_subprocess, wait_ready

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def annvq(*args) -> subprocess.CompletedProcess:
    """The CLI in a child process, as a user runs it."""
    cmd = [sys.executable, "-c", "from cli.main import cli; cli(prog_name='annvq')", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_build_serve_query_verify(tmp_path):
    X, Q = clustered(4000, 32, seed=1), clustered(100, 32, seed=2)
    np.save(tmp_path / "base.npy", X)
    data = tmp_path / "db"
    built = annvq("build", tmp_path / "base.npy", "--out", data / "items", "--spec", "IVF16,SAQ4",
                  "--store-vectors", "--quiet")
    assert built.returncode == 0, built.stderr
    assert "4,000 vectors" in built.stdout

    truth = exact_knn(X, Q, 10)
    with serve_in_subprocess(data, log_path=tmp_path / "serve.log") as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_ready(client)

            def search(params):
                r = client.post("/v1/collections/items/query/batch",
                                json={"vectors": Q.tolist(), "k": 10, "params": params, "with_payload": False})
                assert r.status_code == 200, r.text
                return np.array([hits["ids"] for hits in r.json()["results"]])

            coarse, full, reranked = search({"nprobe": 2}), search({"nprobe": 16}), search({"nprobe": 16, "rerank": 4})
            bad = client.post("/v1/collections/items/query/batch", json={"vectors": [[1.0, 2.0]], "k": 10})
            assert bad.status_code == 400 and "dimension" in bad.text
    assert recall(full, truth) >= 0.85, "SAQ4 over all 16 lists should find 85% of the true top-10"
    assert recall(reranked, truth) >= 0.99, "re-ranking 40 candidates exactly should recover the top-10"
    assert recall(coarse, truth) <= recall(full, truth)

    verified = annvq("verify", data / "items")
    assert verified.returncode == 0 and "ok" in verified.stdout, verified.stderr
    assert not list(data.glob("items/*.tmp-*"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """random-xs-20-euclidean prepared once for the demo tests."""
    return tmp_path_factory.mktemp("datasets")


def demo_args(work, data, *extra):
    return ["demo", "--dataset", "random-xs-20-euclidean", "--spec", "IVF16,Flat", "--workdir", str(work),
            "--data-dir", str(data), *extra]


def test_demo_is_idempotent_and_reports_recall(tmp_path, data_dir):
    args = demo_args(tmp_path / "work", data_dir, "--nprobe", "1", "--nprobe", "16")
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    rows = dict(re.findall(r"^\s+(\d+)\s+([01]\.\d{4})\s", first.stdout, re.M))
    assert set(rows) == {"1", "16"}, first.stdout
    assert float(rows["16"]) == 1.0, "IVF-Flat probing every list is exact"
    assert float(rows["1"]) < 1.0
    assert "QPS" in first.stdout and "server stopped" in first.stderr

    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "reusing" in second.stderr and "training" not in second.stderr
    assert dict(re.findall(r"^\s+(\d+)\s+([01]\.\d{4})\s", second.stdout, re.M)) == rows


def test_demo_stops_the_server_on_error(tmp_path, data_dir, monkeypatch):
    """A failure while querying must not leave `annvq serve` running."""
    from cli import demo_cmd

    urls = []

    def failing_query(client, *args):
        urls.append(str(client.base_url))
        assert client.get("/healthz").status_code == 200
        raise RuntimeError("query failed")

    monkeypatch.setattr(demo_cmd, "query_http", failing_query)
    result = CliRunner().invoke(cli, demo_args(tmp_path / "work", data_dir, "-q"))
    assert result.exit_code == 1 and "query failed" in str(result.exception)
    assert len(urls) == 1
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{urls[0]}/healthz", timeout=5)
