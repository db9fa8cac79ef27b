"""``vectordbbench annvq``: VectorDBBench's CLI command for annvq (its common options plus the
server's URL, the collection's spec and the search knobs)."""

from typing import Annotated, Unpack

import click
from pydantic import SecretStr

from vectordb_bench.backend.clients import DB
from vectordb_bench.cli.cli import CommonTypedDict, cli, click_parameter_decorators_from_typed_dict, run


class AnnvqTypedDict(CommonTypedDict):
    url: Annotated[str, click.option("--url", type=str, default="http://127.0.0.1:8000", show_default=True,
                                     help="Base URL of annvq serve")]
    api_key: Annotated[str | None, click.option("--api-key", type=str, default=None, help="annvq serve's API key")]
    spec: Annotated[str, click.option("--spec", type=str, default="IVF1024,SAQ4", show_default=True,
                                      help="Index spec of the collection, e.g. IVF1024,SAQ4 or IVF1024,PQ98x8")]
    nprobe: Annotated[int, click.option("--nprobe", type=int, default=16, show_default=True,
                                        help="Inverted lists read per query")]
    rerank: Annotated[int | None, click.option("--rerank", type=int, default=None,
                                               help="Re-score k x RERANK candidates exactly (specs with ,Rerank)")]


@cli.command()
@click_parameter_decorators_from_typed_dict(AnnvqTypedDict)
def Annvq(**parameters: Unpack[AnnvqTypedDict]):  # noqa: N802 (VectorDBBench names commands by class)
    from .config import AnnvqConfig, AnnvqIndexConfig

    run(
        db=DB.Annvq,
        db_config=AnnvqConfig(db_label=parameters["db_label"], url=parameters["url"],
                              api_key=SecretStr(parameters["api_key"]) if parameters["api_key"] else None),
        db_case_config=AnnvqIndexConfig(spec=parameters["spec"], nprobe=parameters["nprobe"],
                                        rerank=parameters["rerank"]),
        **parameters,
    )
