"""annvq's VectorDBBench configs: where the server is (`AnnvqConfig`), and the collection's spec
and search knobs (`AnnvqIndexConfig`)."""

from pydantic import BaseModel, SecretStr

from vectordb_bench.backend.clients.api import DBCaseConfig, DBConfig, MetricType

METRICS = {MetricType.L2: "l2", MetricType.IP: "ip", MetricType.COSINE: "cosine"}


class AnnvqConfig(DBConfig):
    url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None

    def to_dict(self) -> dict:
        return {"url": self.url, "api_key": self.api_key.get_secret_value() if self.api_key else None}


class AnnvqIndexConfig(BaseModel, DBCaseConfig):
    """``spec`` as in `annvq.Index` (``IVF1024,SAQ4``); ``nprobe`` and ``rerank`` per query."""

    metric_type: MetricType | None = None
    spec: str = "IVF1024,SAQ4"
    nprobe: int = 16
    rerank: int | None = None

    def parse_metric(self) -> str:
        if self.metric_type not in METRICS:
            msg = f"annvq supports the metrics {sorted(METRICS)}; got {self.metric_type}."
            raise ValueError(msg)
        return METRICS[self.metric_type]

    def index_param(self) -> dict:
        return {"spec": self.spec, "metric": self.parse_metric()}

    def search_param(self) -> dict:
        return {"nprobe": self.nprobe} | ({"rerank": self.rerank} if self.rerank else {})
