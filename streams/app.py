"""The composition root: settings -> encoder -> store -> batch core, built the same way for
every command (CLI, worker, embedded run, client). Nothing below this module decides which
encoder or store a process uses; nothing above it builds one by hand.
"""

from __future__ import annotations

from typing import Literal

from interest_stream.encoders.base import Encoder
from interest_stream.store import open_store as open_store_url
from interest_stream.store.base import ItemCatalog, ProfileStore
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.core.pauses import PausePoints
from interest_stream.streams.core.routing import Routing
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import DAY, HOUR
from interest_stream.streams.settings import Settings, load_settings

__all__ = ["EncoderKind", "build_core", "build_encoder", "load_settings", "open_store"]

EncoderKind = Literal["onnx", "hashing"]
ENCODER_KINDS: tuple[EncoderKind, ...] = ("onnx", "hashing")


def build_encoder(
    settings: Settings, kind: EncoderKind = "onnx", *, reserve_cache: bool = False
) -> Encoder:
    """The exported ONNX sentence encoder (precision and cache from settings), or the
    model-free hashing encoder for plumbing checks; a long-running process (the worker)
    reserves its whole cache at start (encoders/cache.py)."""
    if kind == "hashing":
        from interest_stream.encoders.hashing import HashingEncoder

        return HashingEncoder()
    from interest_stream.encoders import load_encoder

    return load_encoder(
        precision=settings.precision,
        model_dir=settings.model_dir,
        cache_size=settings.encoder_cache_size,
        reserve_cache=reserve_cache,
    )


def open_store(settings: Settings, *, create_schema: bool = False) -> ProfileStore:
    """The store `settings.store_url` names, with the Cassandra options of the settings."""
    key = settings.erasure_key.get_secret_value() if settings.erasure_key else None
    return open_store_url(
        settings.store_url,
        cassandra=settings.cassandra_options(),
        create_schema=create_schema,
        erasure_key=key,
    )


def build_core(
    settings: Settings, encoder: Encoder, store: ProfileStore, *, partitions: int | None = None
) -> BatchCore:
    """The batch core as every command runs it: the settings' interest model, validation
    rules, profile cache, and the store's item catalogue when it keeps one; with the input
    topics' `partitions` (a worker), events on another partition than their user's are
    forwarded there (streams/core/routing.py)."""
    return BatchCore(
        encoder=encoder,
        store=store,
        params=settings.interest_params(),
        rules=settings.validation_rules(),
        include_vectors=settings.include_vectors,
        items=store if isinstance(store, ItemCatalog) else None,
        profile_cache_size=settings.profile_cache_size,
        calibrate_background=settings.cluster_background is None,
        routing=None if partitions is None else Routing(partitions),
        # A worker re-announces stored profiles whose events come again (a crash between
        # its write and its publish); a file replay in the embedded mode writes nothing.
        reannounce=partitions is not None,
        pauses=pause_points(settings),
    )


def pause_points(settings: Settings) -> PausePoints:
    """The pause points of a process, with the fault injection the settings ask for."""
    return PausePoints(crash_at=settings.fault_crash_at, hold_dir=settings.fault_hold_dir)


def half_life(value: str | None) -> float | None:
    """A half-life flag ('6h', '30d', plain seconds) in seconds; None passes through."""
    return None if value is None else parse_duration(value)


def parse_duration(text: str) -> float:
    """Read a duration.

    Args:
        text: `90s`, `15m`, `6h`, `30d`, `2w` or plain seconds.

    Returns:
        Seconds.

    Raises:
        ConfigurationError: `text` is no duration.
    """
    units = {"s": 1.0, "m": 60.0, "h": HOUR, "d": DAY, "w": 7 * DAY}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError as exc:
        raise ConfigurationError(f"bad duration {text!r}: use e.g. 90s, 15m, 6h, 30d") from exc
