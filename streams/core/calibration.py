"""The catalogue's background cosine, which clusters are measured against, estimated once
per store from the texts themselves and kept there for every process.

The background is how similar two unrelated texts of the catalogue are: about 0.1 for
varied plain titles with this encoder, 0.25-0.45 for templated texts ("Title (1995).
Genres: ..."), since every pair shares the template (model/clusters.py says why clusters
need it). It is the mean cosine between the first `sample` distinct texts a store's
writers see, kept in the store so that every worker and later run uses the same value;
until enough texts have been seen the model's default stands in (and is not kept).
A value set in the settings wins and is never estimated.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from interest_stream.store.base import ProfileStore
from interest_stream.streams.model.clusters import background_cosine
from interest_stream.streams.model.horizons import InterestParams

log = logging.getLogger(__name__)

SAMPLE = 256
"""Distinct texts the estimate is taken over (its standard error is then about 0.005)."""


def setting_key(model_id: str) -> str:
    """Per vector space: all precisions of one model share a background."""
    return f"cluster_background:{model_id.split(':', 1)[0]}"


class BackgroundCalibration:
    """Resolves `params.cluster_background` for a store: kept value, or an estimate."""

    def __init__(
        self, store: ProfileStore, model_id: str, params: InterestParams, *, enabled: bool
    ) -> None:
        self.params = params
        self._store = store
        self._key = setting_key(model_id)
        self._sample: dict[str, npt.NDArray[np.float32]] = {}
        self.resolved = not enabled
        if enabled:
            kept = store.setting(self._key)
            if kept is not None:
                self._use(float(kept), "kept in the store")

    def observe(self, texts: dict[str, int], vectors: npt.NDArray[np.float32]) -> None:
        """Offer a batch's distinct texts (text -> row of `vectors`) until enough are seen."""
        if self.resolved:
            return
        for text, row in texts.items():
            if len(self._sample) >= SAMPLE:
                break
            self._sample.setdefault(text, vectors[row])
        if len(self._sample) >= SAMPLE:
            estimate = round(background_cosine(np.stack(list(self._sample.values()))), 4)
            kept = float(self._store.keep_setting(self._key, str(estimate)))
            self._sample.clear()
            self._use(kept, f"estimated from {SAMPLE} texts as {estimate}")

    def _use(self, value: float, how: str) -> None:
        self.params = replace(self.params, cluster_background=value)
        self.resolved = True
        log.info("cluster background cosine %.4f (%s)", value, how)
