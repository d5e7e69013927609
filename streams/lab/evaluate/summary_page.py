"""One page a person can read: `report.html` puts the key figures (what was evaluated, the
best strategy, the lifts with their intervals, the chosen blend weights) above the tables
and the figures, in one self-contained file (the PNGs are embedded) next to metrics.json."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interest_stream.streams.lab.evaluate.evaluation import Evaluation, EvaluationReport
from interest_stream.streams.lab.evaluate.metrics import Estimate
from interest_stream.streams.lab.evaluate.report import report_summary

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.7em 1em; min-width: 14em; }
.card b { font-size: 1.35em; display: block; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.ci { color: #888; font-size: 0.85em; } .best { font-weight: bold; color: #1a7f37; }
.up { color: #1a7f37; } .down { color: #b42318; }
.warn { background: #fff4e5; border-left: 4px solid #f79009; padding: 0.5em 1em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
li { margin: 0.15em 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _estimate(value: Estimate, best: bool = False) -> str:
    mean = f'<span class="best">{value.mean:.3f}</span>' if best else f"{value.mean:.3f}"
    return f'{mean} <span class="ci">{value.low:.3f}–{value.high:.3f}</span>'


def _lift(value: Estimate) -> str:
    css = "up" if value.low > 0 else "down" if value.high < 0 else ""
    return (
        f'<span class="{css}">{value.mean:+.0%}</span>'
        f' <span class="ci">{100 * value.low:+.0f}..{100 * value.high:+.0f}%</span>'
    )


def _period(evaluation: Evaluation) -> str:
    times = [e.ts for events in evaluation.by_user.values() for e in events]
    if not times:
        return ""
    first, last = (datetime.fromtimestamp(t, tz=UTC).date() for t in (min(times), max(times)))
    return f"{first:%d %b %Y} – {last:%d %b %Y}"


def _cards(report: EvaluationReport, main: str, cut: str) -> str:
    users = report.users
    best = max(report.strategies, key=lambda s: s.metrics[cut].mean)
    cards = [
        ("users evaluated", f"{users['evaluated']:,} of {users['total']:,}"),
        ("items ranked", f"{report.items:,}"),
        (f"best {cut}", f"{best.name}: {best.metrics[cut].mean:.3f}"),
    ]
    lift = report.lifts.get(main)
    if lift is not None and cut in lift:
        cards.append((f"{main} ({cut})", f"{lift[cut].mean:+.0%}"))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card">{_e(label)}<b>{_e(value)}</b></div>' for label, value in cards
        )
        + "</div>"
    )


def _strategy_table(report: EvaluationReport) -> str:
    config = report.config
    columns = [f"recall@{k}" for k in config.ks] + [f"ndcg@{config.primary_k}", "mrr"]
    best = {c: max(s.metrics[c].mean for s in report.strategies) for c in columns}
    head = "".join(f"<th>{_e(c)}</th>" for c in ["strategy", *columns, "beta"])
    rows = []
    for result in report.strategies:
        cells = "".join(
            f"<td>{_estimate(result.metrics[c], result.metrics[c].mean == best[c])}</td>"
            for c in columns
        )
        beta = "" if result.beta is None else f"{result.beta:g}"
        rows.append(f"<tr><td>{_e(result.name)}</td>{cells}<td>{beta}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _lift_table(report: EvaluationReport) -> str:
    if not report.lifts:
        return ""
    config = report.config
    columns = [f"recall@{k}" for k in config.ks] + [f"ndcg@{config.primary_k}", "mrr"]
    head = "".join(f"<th>{_e(c)}</th>" for c in ["A vs B", *columns])
    rows = [
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td>{_lift(values[c])}</td>" for c in columns if c in values)
        + "</tr>"
        for name, values in report.lifts.items()
    ]
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def render(
    evaluation: Evaluation, figures: Sequence[Path], extra: Mapping[str, Any] | None = None
) -> str:
    """The page as an HTML string."""
    report = evaluation.report
    extra = extra or {}
    cut = f"recall@{20 if 20 in report.config.ks else report.config.primary_k}"
    main = next(
        (name for name in report.lifts if name.endswith("vs popular")),
        next(iter(report.lifts), ""),
    )
    source = Path(report.log.source).name
    warnings = "".join(f"<li>{_e(line)}</li>" for line in extra.get("warnings", []))
    planted = extra.get("planted_recovery")
    notes = [_e(line) for line in report_summary(report)]
    if planted:
        share = planted["top_cluster_is_planted"]
        notes.append(
            _e(
                f"planted interests: top cluster planted for {share:.0%}"
                f" of {planted['users']} users"
            )
        )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>evaluation of {_e(source)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Does it recommend better? {_e(source)}</h1>",
        f'<p class="sub">{_e(_period(evaluation))} · {_e(report.model_id)} · last'
        f" {report.config.holdout_fraction:.0%} of each user's liked items held out ·"
        " 95% bootstrap intervals over users</p>",
        f'<div class="warn"><b>warnings</b><ul>{warnings}</ul></div>' if warnings else "",
        _cards(report, main, cut),
        "<h2>Strategies (mean over users, interval after)</h2>",
        _strategy_table(report),
        "<h2>Lifts, paired bootstrap (A / B − 1)</h2>",
        _lift_table(report),
        "<h2>Run</h2><ul>" + "".join(f"<li>{line}</li>" for line in notes) + "</ul>",
        "<h2>Figures</h2>",
        *(_image(path) for path in figures if path.suffix == ".png" and path.exists()),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def write_report_page(
    evaluation: Evaluation,
    out_dir: Path,
    figures: Sequence[Path],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `report.html` into `out_dir`; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(render(evaluation, figures, extra), encoding="utf-8")
    return path
