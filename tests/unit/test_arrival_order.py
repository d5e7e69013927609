"""Profiles are a function of the events alone: the same events in another arrival order
give the same store, calibration included (README "Guarantees", first promise)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.store import open_store
from interest_stream.streams.cli import main
from interest_stream.streams.core.calibration import kept_catalogue
from interest_stream.streams.demo import generate


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _run_into(events_file: Path, db: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["run", str(events_file), "--store", f"sqlite:///{db}", "--encoder", "hashing", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output


def test_a_shuffled_log_gives_the_same_calibration_and_clusters(tmp_path: Path):
    # Enough distinct texts that "the first N texts seen" would be a different sample.
    events = generate(users=30, events_per_user=30, seed=12, interests=(2, 4)).events
    assert len({e["text"] for e in events}) > 500
    shuffled = list(events)
    random.Random(8).shuffle(shuffled)
    _run_into(_write(tmp_path / "a.jsonl", events), tmp_path / "a.db")
    _run_into(_write(tmp_path / "b.jsonl", shuffled), tmp_path / "b.db")
    a, b = (
        open_store(f"sqlite:///{tmp_path / 'a.db'}"),
        open_store(f"sqlite:///{tmp_path / 'b.db'}"),
    )
    try:
        model_id = HashingEncoder().model_id
        ca, cb = kept_catalogue(a, model_id), kept_catalogue(b, model_id)
        assert ca is not None and cb is not None
        assert ca.background == cb.background
        np.testing.assert_array_equal(ca.center, cb.center)
        pa, pb = a.get(a.user_ids()), b.get(b.user_ids())
        assert pa.keys() == pb.keys() and len(pa) == 30
        for user_id in pa:
            x, y = pa[user_id], pb[user_id]
            assert [(c.label, c.members) for c in x.clusters] == [
                (c.label, c.members) for c in y.clusters
            ], user_id
            np.testing.assert_allclose(
                x.state.long.decayed_sum, y.state.long.decayed_sum, atol=1e-6
            )
    finally:
        a.close()
        b.close()
