"""The lab's `bench` group, which the CLI finds through the `interest_stream.commands` entry
points: encoder, profile, clusters and sentiment here; pipeline and soak, which need the
servers, in lab/bench_servers.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out
from interest_stream.streams.lab.bench_core import bench_core_command
from interest_stream.streams.lab.bench_servers import (
    bench_ann_command,
    bench_pipeline_command,
    bench_soak_command,
)
from interest_stream.streams.lab.bench_workers import bench_workers_command


@click.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("encoder")
@click.option(
    "--texts",
    type=int,
    default=600,
    show_default=True,
    help="Texts in the mixed and short corpora; the long one gets a quarter.",
)
@click.option("--batch-size", type=int, default=64, show_default=True, help="CPU batch size.")
@click.option(
    "--repeats",
    type=int,
    default=5,
    show_default=True,
    help="Timed passes per engine, the fastest kept: more of them ride out busy neighbours.",
)
@click.option("--corpora", default="mixed,short,long", show_default=True, help="Comma-separated.")
@click.option(
    "--precisions",
    default="fp32,int8,fp16",
    show_default=True,
    help="Comma-separated; fp16 (and the GPU rows) run only where a GPU is usable.",
)
@options.as_json("Print the rows and the summary as JSON.")
def bench_encoder_command(
    texts: int, batch_size: int, repeats: int, corpora: str, precisions: str, as_json: bool
) -> None:
    """Our ONNX encoder against sentence-transformers on the same device, and against a
    bare session.run loop over the same pre-padded batches (host-side share)."""
    from interest_stream.streams.lab.bench_encoder import bench_encoder, print_table, summary

    settings = app.load_settings()

    def progress(message: str) -> None:
        if not as_json:
            console.print(f"[dim]{escape(message)}[/dim]")

    rows = bench_encoder(
        texts=texts,
        batch_size=batch_size,
        repeats=repeats,
        corpora=[c.strip() for c in corpora.split(",") if c.strip()],
        precisions=[p.strip() for p in precisions.split(",") if p.strip()],
        model_dir=settings.model_dir,
        progress=progress,
    )
    if as_json:
        out.print_json(json.dumps({"rows": rows, "summary": summary(rows)}, default=str))
    else:
        print_table(rows, out)


@bench.command("profile")
@click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(["onnx", "hashing"]),
    default="onnx",
    show_default=True,
    help="Vectors of the texts (sizes hardly depend on them; hashing is faster).",
)
@options.precision
@options.as_json("Print every figure as JSON.")
def bench_profile_command(
    encoder_kind: app.EncoderKind, precision: str | None, as_json: bool
) -> None:
    """Stored bytes per user from the real codec as events pile up: one domain, and a
    catalogue log over 18 genre domains. Exits 1 if a bound is exceeded."""

    from rich.table import Table

    from interest_stream.streams.lab.profile_size import bench_profile

    settings = app.load_settings(precision=precision)
    results = bench_profile(app.build_encoder(settings, encoder_kind))
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for key, title in (("one_domain", "one domain"), ("eighteen_domains", "18 genre domains")):
            table = Table(title=f"stored profile, {title} ({results['model_id']})")
            for column in (
                "events",
                "bytes",
                "horizons",
                "domains",
                "summary",
                "recent ids",
                "header",
                "domains kept",
                "summary entries",
                "clusters",
            ):
                table.add_column(column, justify="right")
            for row in results[key]:
                table.add_row(
                    *(
                        f"{row[k]:,}"
                        for k in (
                            "events",
                            "bytes",
                            "horizons",
                            "domains",
                            "summary",
                            "recent_ids",
                            "header",
                            "domain_count",
                            "summary_entries",
                            "clusters",
                        )
                    )
                )
            out.print(table)
        for name, target in results["targets"].items():
            verdict = "[green]met[/green]" if target["met"] else "[red]not met[/red]"
            out.print(
                f"{name}: {target['bytes']:,} bytes (bound {target['limit']:,}): {verdict}",
                highlight=False,
            )
    if not all(t["met"] for t in results["targets"].values()):
        sys.exit(1)


@bench.command("clusters")
@click.option("--users", type=int, default=200, show_default=True, help="Users per text kind.")
@click.option(
    "--store",
    "store_url",
    help="Instead: the distribution of cluster counts by events per user in an existing"
    " store (e.g. one `run` built from a real log).",
)
@options.precision
@options.as_json("Print every figure as JSON.")
def bench_clusters_command(
    users: int, store_url: str | None, precision: str | None, as_json: bool
) -> None:
    """Do the clusters fit the users? Planted interests (1-6 per user, plain and templated
    texts) against the liked clusters the embedded pipeline finds. Exits 1 below target."""

    from interest_stream.streams.lab.cluster_count import (
        TARGET_WITHIN_ONE,
        bench_clusters,
        stored_distribution,
    )

    if store_url is not None:
        store = app.open_store(app.load_settings(store_url=store_url))
        try:
            found = stored_distribution(store)
        finally:
            store.close()
        if as_json:
            out.print_json(json.dumps(found))
            return
        out.print(f"{found['users']:,} users; liked clusters (count x users) by events:")
        for bucket, counts in found["clusters_by_events"].items():
            row = ", ".join(f"{k}x{n}" for k, n in counts.items())
            out.print(f"  {bucket:>8} events: {row}", highlight=False)
        return
    settings = app.load_settings(precision=precision)
    results = bench_clusters(app.build_encoder(settings, "onnx"), users=users)
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for kind in ("plain", "templated"):
            r = results[kind]
            out.print(
                f"{kind}: {r['users']} users, background cosine {r['background']:.3f}:"
                f" cluster count within ±1 of the planted count for {r['within_one']:.0%}"
                f" (target {TARGET_WITHIN_ONE:.0%}), exact {r['exact']:.0%}; one planted"
                f" interest gives one cluster for {r['one_interest_one_cluster']:.0%}",
                highlight=False,
            )
            rows = "; ".join(
                f"{planted}: " + ", ".join(f"{found}x{n}" for found, n in counts.items())
                for planted, counts in r["found_by_planted"].items()
            )
            out.print(f"  planted -> found clusters (count x users): {rows}", highlight=False)
    if not results["target_met"]:
        sys.exit(1)


@bench.command("sentiment")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding sentiment-labelled-sentences/ [default: $INTEREST_STREAM_LAB_DATA,"
    " else ../shared/data beside the repository].",
)
@click.option(
    "--precisions",
    default="fp32,int8",
    show_default=True,
    help="Encoder precisions to measure; the head is fitted on the first.",
)
@click.option(
    "--write-head",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also fit the head on every site and neutral text and write it here (the shipped"
    " one is streams/interest/sentiment_head.json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_sentiment_command(
    data_dir: Path | None, precisions: str, write_head: Path | None, as_json: bool
) -> None:
    """Sentiment of unrated reviews on real labelled sentences: balanced accuracy per
    held-out site, neutral texts, negatives in an 80/20 stream, the head's cost.

    Fits the linear head on two sites and measures it on the third, for each site, next
    to the zero-shot anchors; reads the UCI Sentiment Labelled Sentences (Kotzias et al.,
    KDD 2015) from --data.
    """
    from interest_stream.encoders import load_encoder
    from interest_stream.streams.lab import sentiment as lab

    sites = lab.read_sites(data_dir or lab.default_data_dir())
    settings = app.load_settings()
    encoders = [
        load_encoder(precision=p.strip(), model_dir=settings.model_dir, cache_size=0)
        for p in precisions.split(",")
        if p.strip()
    ]
    prefix = encoders[0].model_id.split(":", 1)[0]
    if not as_json:
        console.print("[dim]encoding 3,000 sentences per precision and fitting 48 heads…[/dim]")
    figures = lab.measure(sites, encoders, prefix)
    texts = [t for s in sites for t in s.texts]
    figures["overhead"] = {e.model_id: lab.scoring_overhead(e, texts[:500]) for e in encoders}
    if write_head is not None:
        head, about = lab.fit_shipped_head(sites, encoders[0], prefix)
        write_head.write_text(lab.head_json(head, about), encoding="utf-8")
        figures["wrote_head"] = str(write_head)
    if as_json:
        out.print_json(json.dumps(figures))
    else:
        lab.print_figures(figures, out)


bench.add_command(bench_core_command)
bench.add_command(bench_pipeline_command)
bench.add_command(bench_soak_command)
bench.add_command(bench_ann_command)
bench.add_command(bench_workers_command)
