"""`python -m interest_stream.streams.lab.worker_main`: the product's worker with vectors
saved beforehand instead of the sentence encoder, so the pipeline benchmark can time
everything but encoding. Same settings, same batch core, same Faust app; only the encoder
differs. Takes the worker's own flags plus `--vectors PATH`."""

from __future__ import annotations

from pathlib import Path

import click

from interest_stream.streams import app
from interest_stream.streams.lab.precomputed import PrecomputedEncoder


@click.command()
@click.option("--vectors", "vectors_path", required=True, type=click.Path(path_type=Path))
@click.option("--brokers", required=True)
@click.option("--store", "store_url", required=True)
@click.option("--group", "consumer_group", required=True)
@click.option("--topic-prefix", required=True)
@click.option("--batch-size", type=int)
@click.option("--batch-wait-ms", type=int)
@click.option("--loglevel", default="info")
def main(
    vectors_path: Path,
    brokers: str,
    store_url: str,
    consumer_group: str,
    topic_prefix: str,
    batch_size: int | None,
    batch_wait_ms: int | None,
    loglevel: str,
) -> None:
    """Run the streaming worker with precomputed vectors."""
    import logging

    from interest_stream.streams.worker import run_worker

    logging.basicConfig(level=logging.WARNING)
    settings = app.load_settings(
        brokers=brokers,
        store_url=store_url,
        consumer_group=consumer_group,
        topic_prefix=topic_prefix,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
    )
    from interest_stream.streams.kafka.clients import check_worker_topics

    partitions = check_worker_topics(settings)
    core = app.build_core(
        settings,
        PrecomputedEncoder(vectors_path),
        app.open_store(settings),
        partitions=partitions,
    )
    run_worker(settings, core, loglevel)


if __name__ == "__main__":
    main()
