"""The printed form of `bench pipeline`'s figures: one table and the ratios per shape."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: Any, fmt: str = ",.0f") -> str:
    return "-" if not isinstance(value, int | float) else format(value, fmt)


def _mark(met: bool | None) -> str:
    return {True: "[green]met[/green]", False: "[red]not met[/red]", None: "-"}[met]


def print_report(results: dict[str, Any], console: Console) -> None:
    for name, shape in results["shapes"].items():
        table = Table(
            title=f"{name}: {shape['events']:,} events, {shape['users']:,} users,"
            f" {shape['unique_texts']:,} distinct texts; batch {results['batch_size']},"
            f" flush {results['flush_interval_ms']} ms"
        )
        for column in ("measurement", "events/s", "seconds", "notes"):
            table.add_column(
                column, justify="left" if column in ("measurement", "notes") else "right"
            )
        enc = shape["encoder_alone"]
        table.add_row(
            "encoder alone",
            _cell(enc["events_per_s"]),
            _cell(enc["seconds"], ".1f"),
            f"{enc['texts_per_s']:,.0f} texts/s",
        )
        for key, label in (
            ("pipeline_real_encoder", "pipeline, real encoder"),
            ("pipeline_encoding_excluded", "pipeline, encoding excluded"),
        ):
            row = shape[key]
            if "error" in row:
                table.add_row(label, "-", "-", f"[red]{row['error']}[/red]")
                continue
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in row["cpu_s_per_1000_events"].items())
            table.add_row(
                label,
                _cell(row["events_per_s"]),
                _cell(row["seconds"], ".1f"),
                f"{row['writes']:,} profile writes in {row['flushes']} flushes,"
                f" {row['bytes_per_event']:,.0f} B/event, {row['lost_fences']} lost fences;"
                f" CPU s per 1,000 events: {cpu}",
            )
        raw = shape["raw_vector_rows"]
        table.add_row(
            "raw loop: one vector row per event",
            _cell(raw.get("events_per_s")),
            _cell(raw.get("seconds"), ".1f"),
            raw.get("error", f"{raw.get('writes', 0):,} rows"),
        )
        console.print(table)
        ratios = shape["ratios"]
        met = ratios["targets_met"]
        fresh = shape["freshness"]
        console.print(
            "  pipeline / encoder alone: [bold]"
            f"{_cell(ratios['pipeline_vs_encoder_alone'], '.2f')}x[/bold]"
            f" (target >= 0.5: {_mark(met['pipeline_vs_encoder_alone'])})\n"
            f"  encoding excluded / raw loop: [bold]"
            f"{_cell(ratios['encoding_excluded_vs_raw'], '.2f')}x[/bold]"
            f" (target >= 0.5: {_mark(met['encoding_excluded_vs_raw'])})\n"
            f"  bytes written per applied event: [bold]{_cell(ratios['bytes_per_event'])}[/bold]"
            f" ({_mark(met['bytes_per_event'])}); profile writes per event:"
            f" {_cell(ratios['writes_per_event'], '.3f')}\n"
            + (
                f"  freshness at {fresh['offered_events_per_s']:,.0f} events/s offered:"
                f" p50 {fresh['p50_ms']:,.0f} ms, p99 [bold]{fresh['p99_ms']:,.0f} ms[/bold]"
                f" (target < 1000: {_mark(met['freshness_p99_ms'])}), max {fresh['max_ms']:,.0f} ms"
                if "error" not in fresh
                else f"  freshness: [red]{fresh['error']}[/red]"
            ),
            highlight=False,
        )
