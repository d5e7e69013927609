"""`interest-stream bench pipeline`: end-to-end figures measured side by side in one run.

Against a running Kafka and Cassandra (the local ones by default), for each workload shape
(shapes.py: `default` and `wide`), each measurement on fresh, uniquely named topics and
keyspace (dropped afterwards):

1. the encoder alone on the workload's distinct texts (cold cache);
2. a real worker draining the published workload with the real encoder;
3. the same with encoding excluded (vectors saved beforehand);
4. the raw ceiling: aiokafka consume + cassandra-driver writes of one 384-float vector row
   per event, nothing else;
5. freshness: events offered at a fixed rate, p50/p99 from send to the profile update;
6. from the worker's metrics: bytes written per applied event, profile writes, flushes,
   lost fences; from /proc: CPU seconds per 1,000 events by process.

Throughputs are reported as ratios because absolute numbers on a shared machine move from
run to run; all runs of a shape use the same events and settings. A measurement that fails
(a server timeout) is reported in one line and the others go on.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from interest_stream.encoders.base import Encoder
from interest_stream.store.cassandra import describe_error, driver_errors
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.pipeline.freshness import freshness
from interest_stream.streams.lab.pipeline.runs import drain, encoder_alone, raw_vector_rows
from interest_stream.streams.lab.pipeline.shapes import SHAPES, Shape
from interest_stream.streams.settings import Settings

log = logging.getLogger(__name__)

TARGETS: dict[str, tuple[str, dict[str, float]]] = {
    "pipeline_vs_encoder_alone": (">=", {"default": 0.5, "wide": 0.5}),
    "encoding_excluded_vs_raw": (">=", {"default": 0.5, "wide": 0.5}),
    "freshness_p99_ms": ("<", {"default": 1000.0, "wide": 1000.0}),
    "bytes_per_event": ("<=", {"default": 2048.0, "wide": 8192.0}),
}


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def measured(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A measurement's figures, or its failure in one line (the others still run)."""
    try:
        return run()
    except InterestStreamError as exc:
        message = str(exc).splitlines()[0]
    except driver_errors() as exc:
        message = describe_error(exc)
    except OSError as exc:
        message = f"{type(exc).__name__}: {exc}"
    _progress(f"{name} failed: {message}")
    return {"error": message}


def bench_shape(
    settings: Settings,
    encoder: Encoder,
    shape: Shape,
    *,
    freshness_rate: float,
    freshness_seconds: float,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every measurement of one shape, and its ratios against the targets."""
    from interest_stream.streams.interest.sentiment import NEGATIVE_ANCHORS, POSITIVE_ANCHORS
    from interest_stream.streams.lab.precomputed import save_vectors

    events = shape.events()
    texts = sorted({e["text"] for e in events})
    results: dict[str, Any] = {
        "events": len(events),
        "users": len({e["user_id"] for e in events}),
        "unique_texts": len(texts),
    }
    _progress(f"{shape.name}: encoder alone on {len(texts):,} distinct texts")
    results["encoder_alone"], vectors = encoder_alone(
        encoder, texts, len(events), settings.batch_size
    )
    _progress(f"{shape.name}: pipeline with the real encoder")
    results["pipeline_real_encoder"] = measured(
        "pipeline", lambda: drain(settings, events, "onnx", f"{shape.name}real", workdir, env)
    )
    vectors_path = workdir / f"vectors-{shape.name}.npz"
    # The sentiment anchors are encoded by the worker too (for unrated reviews).
    save_vectors(vectors_path, [*texts, *POSITIVE_ANCHORS, *NEGATIVE_ANCHORS], encoder)
    _progress(f"{shape.name}: pipeline with encoding excluded (vectors saved beforehand)")
    results["pipeline_encoding_excluded"] = measured(
        "pipeline without encoding",
        lambda: drain(
            settings, events, f"precomputed:{vectors_path}", f"{shape.name}noenc", workdir, env
        ),
    )
    _progress(f"{shape.name}: raw ceiling (aiokafka + one vector row per event)")
    by_text = dict(zip(texts, vectors, strict=True))
    results["raw_vector_rows"] = measured(
        "raw loop", lambda: raw_vector_rows(settings, events, by_text, f"{shape.name}raw")
    )
    _progress(
        f"{shape.name}: freshness at {freshness_rate:.0f} events/s for {freshness_seconds:.0f} s"
    )
    offered = _fresh_events(shape, events, freshness_rate, freshness_seconds)
    results["freshness"] = measured(
        "freshness",
        lambda: freshness(
            settings, offered, freshness_rate, freshness_seconds, workdir, shape.name, env
        ),
    )
    results["ratios"] = _ratios(shape.name, results)
    return results


def _fresh_events(
    shape: Shape, events: Sequence[dict[str, Any]], rate: float, seconds: float
) -> list[dict[str, Any]]:
    """Events to offer: the shape's own, in their order, as many as the rate needs."""
    needed = int(rate * seconds) + 1
    if len(events) >= needed:
        return list(events[:needed])
    bigger = Shape(
        shape.name,
        shape.users * (needed // max(len(events), 1) + 1),
        shape.events_per_user,
        shape.items_per_topic,
        shape.second_event,
    )
    return bigger.events(seed=21)[:needed]


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return round(a / b, 3)


def _ratios(shape: str, results: Mapping[str, Any]) -> dict[str, Any]:
    real = results["pipeline_real_encoder"]
    noenc = results["pipeline_encoding_excluded"]
    fresh = results["freshness"]
    figures = {
        "pipeline_vs_encoder_alone": _ratio(
            real.get("events_per_s"), results["encoder_alone"]["events_per_s"]
        ),
        "encoding_excluded_vs_raw": _ratio(
            noenc.get("events_per_s"), results["raw_vector_rows"].get("events_per_s")
        ),
        "freshness_p99_ms": fresh.get("p99_ms"),
        "bytes_per_event": real.get("bytes_per_event"),
        "writes_per_event": real.get("writes_per_event"),
    }
    met: dict[str, bool | None] = {}
    for name, (op, bound) in TARGETS.items():
        value = figures.get(name)
        met[name] = None if value is None else _compare(value, op, bound[shape])
    return {**figures, "targets_met": met}


def _compare(value: float, op: str, limit: float) -> bool:
    return {">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]


def bench_pipeline(
    settings: Settings,
    encoder: Encoder,
    *,
    shapes: Sequence[str] = ("default", "wide"),
    scale: float = 1.0,
    freshness_rate: float = 500.0,
    freshness_seconds: float = 20.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run every measurement for each shape and return the figures and ratios. The worker
    processes get `env` and the credentials of `settings` (given there, not only in this
    process's environment)."""
    workdir = Path(tempfile.mkdtemp(prefix="interest-stream-bench-"))
    results: dict[str, Any] = {
        "batch_size": settings.batch_size,
        "flush_interval_ms": settings.flush_interval_ms,
        "encoder": encoder.model_id,
        "workdir": str(workdir),
        "shapes": {},
    }
    for name in shapes:
        if name not in SHAPES:
            raise InterestStreamError(f"unknown shape {name!r}: choose from {', '.join(SHAPES)}")
        shape = SHAPES[name] if scale == 1.0 else SHAPES[name].scaled(scale)
        results["shapes"][name] = bench_shape(
            settings,
            encoder,
            shape,
            freshness_rate=freshness_rate,
            freshness_seconds=freshness_seconds,
            workdir=workdir,
            env=env,
        )
    return results
