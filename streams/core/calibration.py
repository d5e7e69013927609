"""What the catalogue's texts look like as a whole, fixed once per store (a deployment) and
kept there for every process: their mean vector (the center) and the cosine of two
unrelated texts (the background).

Both exist because real catalogue texts share a lot ("Title (1995). Genres: ..."): every
pair of such texts is similar through the template alone. Clusters are measured against
the background (interest/clusters.py says why), and rankers score in the space centred on
the catalogue's mean (interest/scoring.py): without centring, cosines to a profile barely tell
two titles apart (measured on a public rating log: +11% over popularity at Recall@20
uncentred, +31% centred).

Profiles must be a function of the events alone, so the estimate is never taken from
whatever texts happen to arrive first. It is made by an explicit step (`calibrate`: the
`interest-stream calibrate` command, or the embedded `run` over its
whole input file before the first event) from a set of texts (an item catalogue or an event
log), over a sample chosen by a hash of each text, so any order of the same texts gives the
same values; the store keeps the first calibration made (versioned), and every writer
reads it at start-up. A store without one uses the model's default background and scores
uncentred, for every event alike. A cluster background set in the settings wins over the
calibration for clustering.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.store.base import ProfileStore
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.clusters import background_cosine
from interest_stream.streams.interest.horizons import InterestParams

log = logging.getLogger(__name__)

SAMPLE = 1024
"""Distinct texts an estimate is taken over at most (the background's standard error is
then about 0.003)."""

MIN_TEXTS = 32
"""Fewer distinct texts than this cannot tell a background from noise."""

VERSION = 2
"""Of the kept estimate's format and sampling rule (1: the first 256 texts seen)."""


def setting_key(model_id: str) -> str:
    """Per vector space: all precisions of one model share one catalogue estimate."""
    return f"catalogue:{model_id.split(':', 1)[0]}"


@dataclass(frozen=True)
class Catalogue:
    """The mean vector of the catalogue's texts and the cosine of two unrelated ones."""

    center: npt.NDArray[np.float32]
    background: float
    texts: int
    source: str = ""
    version: int = VERSION

    @classmethod
    def estimate(cls, vectors: npt.NDArray[np.floating], source: str = "") -> Catalogue:
        rows = np.asarray(vectors, dtype=np.float64)
        return cls(
            rows.mean(axis=0).astype(np.float32),
            round(background_cosine(rows), 4),
            len(rows),
            source,
        )

    def to_json(self) -> str:
        center = base64.b64encode(self.center.astype("<f4").tobytes()).decode("ascii")
        return json.dumps(
            {
                "version": self.version,
                "background": self.background,
                "texts": self.texts,
                "source": self.source,
                "center": center,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Catalogue:
        data = json.loads(text)
        center = np.frombuffer(base64.b64decode(data["center"]), dtype="<f4").astype(np.float32)
        return cls(
            center,
            float(data["background"]),
            int(data["texts"]),
            str(data.get("source", "")),
            int(data.get("version", 1)),
        )


def sample_texts(texts: Iterable[str], size: int = SAMPLE) -> list[str]:
    """Up to `size` distinct texts chosen by a hash of their content: the same sample for
    the same set of texts, in whatever order (and with whatever repeats) they come."""
    distinct = {text for text in texts if text and text.strip()}
    return sorted(distinct, key=lambda t: (hashlib.blake2b(t.encode()).digest(), t))[:size]


def calibrate(
    store: ProfileStore, encoder: Encoder, texts: Iterable[str], *, source: str
) -> tuple[Catalogue, bool]:
    """Estimate the catalogue from `texts` and keep it in the store unless one is kept
    already; returns the calibration that holds and whether it is the one made now."""
    chosen = sample_texts(texts)
    if len(chosen) < MIN_TEXTS:
        raise ConfigurationError(
            f"{source}: {len(chosen)} distinct texts, a calibration needs at least {MIN_TEXTS}"
        )
    estimate = Catalogue.estimate(encoder.encode(chosen), source)
    kept = store.keep_setting(setting_key(encoder.model_id), estimate.to_json())
    return Catalogue.from_json(kept), kept == estimate.to_json()


def kept_catalogue(store: ProfileStore, model_id: str) -> Catalogue | None:
    """The estimate kept in the store, if its writers have made one."""
    kept = store.setting(setting_key(model_id))
    return None if kept is None else Catalogue.from_json(kept)


class CatalogueCalibration:
    """The catalogue calibration a writer uses, read once from its store at start-up, and,
    unless the settings fixed it, the clusters' background it implies."""

    def __init__(
        self,
        store: ProfileStore,
        model_id: str,
        params: InterestParams,
        *,
        calibrate_background: bool,
    ) -> None:
        self.params = params
        self.catalogue = kept_catalogue(store, model_id)
        if self.catalogue is None:
            log.info(
                "catalogue: no calibration in the store; default background %.2f, scores"
                " uncentred (`interest-stream calibrate` fixes one)",
                params.cluster_background,
            )
            return
        if calibrate_background:
            self.params = replace(self.params, cluster_background=self.catalogue.background)
        log.info(
            "catalogue: background cosine %.4f, center norm %.3f (%s, %d texts)",
            self.catalogue.background,
            float(np.linalg.norm(self.catalogue.center)),
            self.catalogue.source or "kept in the store",
            self.catalogue.texts,
        )
