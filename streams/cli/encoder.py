"""`export-encoder`: the one-time ONNX export of the sentence encoder (needs the `export`
extra: torch and transformers never load in any other command)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import out


@main.command("export-encoder")
@click.option(
    "--precision", type=click.Choice(["fp32", "int8", "fp16"]), default="fp32", show_default=True
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=options.setting_help(
        "Output directory.", "model_dir", shown="~/.cache/interest-stream/models"
    ),
)
@click.option("--force", is_flag=True, help="Export again even if a valid export exists.")
@options.as_json("Print the export report as JSON.")
def export_encoder_command(
    precision: str, model_dir: Path | None, force: bool, as_json: bool
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX once, with a parity check against torch."""
    from interest_stream.encoders.export import export_encoder

    settings = app.load_settings(model_dir=model_dir)
    report = export_encoder(precision=precision, model_dir=settings.model_dir, force=force)
    data = asdict(report)
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        out.print(" ".join(f"{k}={v}" for k, v in data.items()))
