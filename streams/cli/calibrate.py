"""`calibrate`: fix a store's catalogue calibration (center, background) once, from a set of
texts, before the first event is applied (streams/core/calibration.py says why)."""

from __future__ import annotations

import json

import click

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import out


@main.command()
@click.argument("texts_file", metavar="FILE")
@options.store
@options.precision
@options.as_json("Print the calibration as JSON.")
@options.encoder
def calibrate(
    texts_file: str,
    store_url: str | None,
    precision: str | None,
    as_json: bool,
    encoder_kind: app.EncoderKind,
) -> None:
    """Fix the store's catalogue calibration from the `text` fields of FILE (JSONL: an item
    catalogue or an event log).

    Run it once per store, after `init` and before the first worker: clusters and centred
    scores use it, and a store keeps the first calibration made (a second run reports the
    one that holds). The sample is chosen by a hash of each text, so any order of the same
    texts gives the same calibration. Without one, a store uses the model's default
    background and scores uncentred.
    """
    from interest_stream.streams.core.calibration import calibrate as calibrate_store
    from interest_stream.streams.core.sources import JsonlSource, texts_of

    settings = app.load_settings(store_url=store_url, precision=precision)
    source = JsonlSource(texts_file)
    encoder = app.build_encoder(settings, encoder_kind)
    store = app.open_store(settings)
    try:
        catalogue, made = calibrate_store(
            store, encoder, texts_of(source.records()), source=source.name
        )
    finally:
        store.close()
    result = {
        "store": settings.store_url,
        "model_id": encoder.model_id,
        "status": "calibrated" if made else "kept",
        "background": catalogue.background,
        "texts": catalogue.texts,
        "source": catalogue.source,
        "version": catalogue.version,
    }
    if as_json:
        out.print_json(json.dumps(result))
        return
    verb = "calibrated" if made else "already calibrated (kept)"
    out.print(
        f"{settings.store_url}: {verb}: background cosine {catalogue.background:.4f} over"
        f" {catalogue.texts} texts of {catalogue.source or 'an earlier calibration'}",
        highlight=False,
    )
