"""The Python API for rankers: read profiles as numpy arrays and score candidates with them.

`ProfileClient.from_url("cassandra://h1,h2:9042/interest_stream")` (or a `sqlite:///` URL)
reads through the `ProfileStore` protocol, so the Cassandra store's prepared, token-aware
reads serve it. `get`/`get_many` give `ProfileVectors` (long, short, centroids, weights,
labels); `contextual` the attention-weighted profile for a context; `score`/`rank` the
weighted cosine of the model's scoring (the same function behind `interest-stream profile
score|rank`), with the weights of the configured scoring profile (setting SCORING_PROFILE,
written by `interest-stream evaluate --fit`) or the shipped defaults; `similar` the
nearest users (the store's ANN index where it has one, exact brute force otherwise).
Texts are encoded with the exported sentence encoder, loaded on first use (a client that
only reads vectors never pays for it); vectors built by another model are refused rather
than compared. A client holds a store connection: close it, or use it as a context manager.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.store.base import ProfileStore
from interest_stream.streams.core.calibration import kept_catalogue
from interest_stream.streams.errors import (
    ConfigurationError,
    InterestStreamError,
    ModelMismatchError,
    SourceError,
    UnknownUserError,
)
from interest_stream.streams.interest.scoring import (
    FloatArray,
    ProfileVectors,
    Scores,
    ScoreWeights,
    contextual_vector,
    nearest,
    ranking,
    same_vector_space,
    score_candidates,
)
from interest_stream.streams.settings import Settings, load_settings

SCAN_CHUNK = 500


@runtime_checkable
class SupportsNearestUsers(Protocol):
    """A store with an index for nearest users (Cassandra's SAI ANN)."""

    def nearest_users(
        self, vector: npt.NDArray[np.floating], *, horizon: Any = "long", limit: int = 10
    ) -> list[tuple[str, float]]:
        """Find the users whose stored `horizon` profile is nearest `vector`, approximately.

        Returns:
            At most `limit` (user id, cosine) pairs, nearest first.
        """
        ...


@dataclass(frozen=True)
class SimilarUser:
    """A user near another one, with the cosine of their profiles and top interests."""

    user_id: str
    similarity: float
    labels: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form `profile similar --json` prints: id, similarity, top interests."""
        return {
            "user_id": self.user_id,
            "similarity": round(self.similarity, 6),
            "top_interests": list(self.labels[:3]),
        }


@dataclass(frozen=True)
class RankedCandidate:
    """One candidate with its score and the parts of it (None where the profile lacks one)."""

    id: str
    text: str | None
    score: float | None
    long: float | None
    short: float | None
    context: float | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form `profile rank --json` prints: id, score and its parts, text."""
        return {
            "id": self.id,
            "score": self.score,
            "long": self.long,
            "short": self.short,
            "context": self.context,
            "text": self.text,
        }


def read_candidates(stream: IO[str], source: str) -> list[dict[str, Any]]:
    """Read candidates from JSON lines {"id": ..., "text": ...} (or "vector" for "text").

    A malformed line stops the read with `source:line: reason`: ranking only the lines
    that happened to parse would silently give the caller a different candidate set.

    Args:
        stream: The JSON lines; each may also carry "popularity" (interactions, >= 0).
        source: The name error messages give the stream (a file name, or "-").

    Returns:
        The candidates, ids as strings, in input order.

    Raises:
        SourceError: On a malformed line, or when there is no candidate.
    """
    candidates: list[dict[str, Any]] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{source}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict):
            raise SourceError(f"{source}:{number}: expected an object with id and text")
        if "id" not in item or not isinstance(item["id"], str | int):
            raise SourceError(f"{source}:{number}: field 'id': required (string or number)")
        text, vector = item.get("text"), item.get("vector")
        if not (isinstance(text, str) and text.strip()) and not isinstance(vector, list):
            raise SourceError(f"{source}:{number}: field 'text': required, a non-empty string")
        candidate: dict[str, Any] = {
            "id": str(item["id"]),
            "text": text if isinstance(text, str) else None,
        }
        if isinstance(vector, list):
            candidate["vector"] = vector
        popularity = item.get("popularity")
        if popularity is not None:
            if not isinstance(popularity, int | float) or popularity < 0:
                raise SourceError(
                    f"{source}:{number}: field 'popularity': a number >= 0 (interactions)"
                )
            candidate["popularity"] = float(popularity)
        candidates.append(candidate)
    if not candidates:
        raise SourceError(f"{source}: no candidates")
    return candidates


class ProfileClient:
    """Profiles and scores for rankers; see the module docstring.

    Args:
        store: Where the profiles are read from; the client closes it.
        settings: Encoder settings (precision, model directory, cache size) and the
            scoring profile (SCORING_PROFILE); None reads the encoder's from the
            environment when it is first needed.
        encoder: The text encoder; None loads the exported one on first use.
        weights: The scoring weights; None for the scoring profile's when `settings`
            names one, else the shipped defaults.
    """

    def __init__(
        self,
        store: ProfileStore,
        *,
        settings: Settings | None = None,
        encoder: Encoder | None = None,
        weights: ScoreWeights | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        # Explicit weights win, then the configured scoring profile, then the defaults.
        self.weights = weights or (settings.score_weights() if settings else ScoreWeights())
        self._encoder = encoder
        self._centers: dict[str, npt.NDArray[np.float32] | None] = {}

    @classmethod
    def from_url(
        cls,
        store_url: str,
        settings: Settings | None = None,
        *,
        encoder: Encoder | None = None,
        weights: ScoreWeights | None = None,
    ) -> ProfileClient:
        """Open the store a URL names.

        Args:
            store_url: `cassandra://h1,h2:9042/keyspace` or `sqlite:///path.db`.
            settings: Credentials, TLS and encoder settings; None reads the environment.
            encoder: The text encoder; None loads the exported one on first use.
            weights: The scoring weights; None for the defaults.

        Returns:
            A client holding the store's connection.
        """
        from interest_stream.store import open_store

        settings = settings or load_settings()
        store = open_store(store_url, cassandra=settings.cassandra_options())
        return cls(store, settings=settings, encoder=encoder, weights=weights)

    # -- reading ---------------------------------------------------------------------------

    def get(self, user_id: str, *, at: float | None = None) -> ProfileVectors:
        """Read one user's profile, both horizons decayed to the time of the read.

        Args:
            user_id: The user.
            at: Time of the read, epoch seconds; None for now.

        Returns:
            The profile's vectors, weights and labels.

        Raises:
            UnknownUserError: The user has no profile.
        """
        found = self.get_many([user_id], at=at).get(user_id)
        if found is None:
            raise UnknownUserError(f"no profile for user {user_id!r}")
        return found

    def get_many(
        self, user_ids: Sequence[str], *, at: float | None = None
    ) -> dict[str, ProfileVectors]:
        """Read many profiles at once.

        Args:
            user_ids: The users.
            at: Time of the read, epoch seconds; None for now.

        Returns:
            The profiles of the users that have one; absent users are left out.
        """
        when = time.time() if at is None else at
        profiles = self.store.get(list(user_ids))
        return {
            user_id: ProfileVectors.from_profile(p, at=max(when, p.state.long.t_ref or when))
            for user_id, p in profiles.items()
        }

    def center(self, model_id: str) -> npt.NDArray[np.float32] | None:
        """The catalogue's mean text vector, which scores are centred on.

        Args:
            model_id: The encoder whose vector space is meant (any precision of it).

        Returns:
            The vector the store's writers estimated; None before there is one.
        """
        family = model_id.split(":", 1)[0]
        if family not in self._centers:
            kept = kept_catalogue(self.store, model_id)
            self._centers[family] = None if kept is None else kept.center
        return self._centers[family]

    # -- encoding and scoring --------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The text encoder, loaded on first use (settings: precision, model directory)."""
        if self._encoder is None:
            from interest_stream.encoders import load_encoder

            settings = self.settings or load_settings()
            self._encoder = load_encoder(
                precision=settings.precision,
                model_dir=settings.model_dir,
                cache_size=settings.encoder_cache_size,
            )
        return self._encoder

    def encode(self, texts: Sequence[str], *, like: ProfileVectors | None = None) -> FloatArray:
        """Encode texts with the client's encoder.

        Args:
            texts: The texts.
            like: A profile the vectors will be compared with, or None.

        Returns:
            One unit vector per text, float32, shape (len(texts), dim).

        Raises:
            ModelMismatchError: `like` was built by another encoder.
        """
        encoder = self.encoder
        if like is not None and not same_vector_space(encoder.model_id, like.model_id):
            raise ModelMismatchError(
                f"profile of {like.user_id!r} was built with {like.model_id}, texts would be"
                f" encoded with {encoder.model_id}: their vectors cannot be compared"
            )
        vectors: FloatArray = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
        return vectors

    def contextual(
        self,
        user_id: str,
        context: str | npt.ArrayLike,
        *,
        temperature: float | None = None,
        at: float | None = None,
    ) -> FloatArray:
        """The user's profile seen from a context: Σ softmax(q·c_k/τ)·c_k over clusters c_k.

        Args:
            user_id: The user.
            context: A text (encoded) or a vector q.
            temperature: τ; None for the client's weights' temperature.
            at: Time of the read, epoch seconds; None for now.

        Returns:
            A unit vector.

        Raises:
            InterestStreamError: The user has no interest clusters yet.
        """
        profile = self.get(user_id, at=at)
        query = self.encode([context], like=profile)[0] if isinstance(context, str) else context
        tau = self.weights.temperature if temperature is None else temperature
        vector = contextual_vector(profile, query, tau)
        if vector is None:
            raise InterestStreamError(f"user {user_id!r} has no interests yet")
        return vector

    def explain(
        self,
        user_id: str,
        texts: Sequence[str],
        *,
        weights: ScoreWeights | None = None,
        at: float | None = None,
    ) -> Scores:
        """Score texts for a user, with the parts of each score; arguments as `score`.

        Returns:
            Totals and their long, short and context parts, in input order.
        """
        profile = self.get(user_id, at=at)
        vectors = self.encode(texts, like=profile)
        return score_candidates(
            profile, vectors, weights or self.weights, center=self.center(profile.model_id)
        )

    def score(
        self,
        user_id: str,
        texts: Sequence[str],
        *,
        weights: ScoreWeights | None = None,
        at: float | None = None,
    ) -> npt.NDArray[np.float64]:
        """Score texts for a user.

        Args:
            user_id: The user.
            texts: The texts to score.
            weights: Scoring weights; None for the client's.
            at: Time of the read, epoch seconds; None for now.

        Returns:
            One score per text (higher: closer to the user's interests), in input order.
        """
        return self.explain(user_id, texts, weights=weights, at=at).total

    def rank(
        self,
        user_id: str,
        candidates: Iterable[Mapping[str, Any]],
        *,
        weights: ScoreWeights | None = None,
        top: int | None = None,
        at: float | None = None,
    ) -> list[RankedCandidate]:
        """Rank candidates for a user, best first, ties in input order.

        With popularity, the score is log(1 + popularity) + beta x the profile's score.

        Args:
            user_id: The user.
            candidates: {"id", "text"} or {"id", "vector"}, each with an optional
                "popularity" (interaction count).
            weights: Scoring weights; None for the client's.
            top: Keep only the best this many; None for all.
            at: Time of the read, epoch seconds; None for now.

        Returns:
            The candidates with their scores and the parts of them.

        Raises:
            ConfigurationError: A candidate's vector has the wrong shape.
        """
        items = list(candidates)
        if not items:
            return []
        profile = self.get(user_id, at=at)
        vectors = np.zeros((len(items), profile.dim), dtype=np.float32)
        to_encode = [i for i, item in enumerate(items) if item.get("vector") is None]
        given = [i for i, item in enumerate(items) if item.get("vector") is not None]
        for i in given:
            vector = np.asarray(items[i]["vector"], dtype=np.float32)
            if vector.shape != (profile.dim,):
                raise ConfigurationError(
                    f"candidate {items[i].get('id')!r}: vector of shape {vector.shape},"
                    f" expected ({profile.dim},)"
                )
            vectors[i] = vector
        if to_encode:
            texts = [str(items[i]["text"]) for i in to_encode]
            vectors[to_encode] = self.encode(texts, like=profile)
        popular = any(item.get("popularity") is not None for item in items)
        scores = score_candidates(
            profile,
            vectors,
            weights or self.weights,
            center=self.center(profile.model_id),
            popularity=[float(item.get("popularity") or 0.0) for item in items]
            if popular
            else None,
        )
        order = ranking(scores)[: top if top is not None else len(items)]
        ranked = []
        for i in order:
            numbers = scores.row(i)
            ranked.append(
                RankedCandidate(
                    id=str(items[i]["id"]),
                    text=items[i].get("text"),
                    score=numbers["score"],
                    long=numbers["long"],
                    short=numbers["short"],
                    context=numbers["context"],
                )
            )
        return ranked

    # -- neighbours ------------------------------------------------------------------------

    def similar(self, user_id: str, k: int = 10, horizon: str = "long") -> list[SimilarUser]:
        """Find the users nearest the user (the store's ANN index, else an exact scan).

        Args:
            user_id: The user.
            k: How many neighbours.
            horizon: Which profile to compare, `long` or `short`.

        Returns:
            Up to k users, best first, with their cosine and top interests.

        Raises:
            ConfigurationError: k is below 1.
            InterestStreamError: The user has no profile for `horizon` yet.
        """
        if k < 1:
            raise ConfigurationError(f"k must be at least 1, got {k}")
        profile = self.get(user_id)
        vector = profile.horizon(horizon)
        if vector is None:
            raise InterestStreamError(f"user {user_id!r} has no {horizon}-term profile yet")
        if isinstance(self.store, SupportsNearestUsers):
            # ANN: ask for one more, since the user is normally their own nearest neighbour.
            hits = self.store.nearest_users(vector, horizon=horizon, limit=k + 1)
            hits = [(other, cosine) for other, cosine in hits if other != user_id][:k]
        else:
            hits = nearest(vector, self._scan(horizon), limit=k, exclude=user_id)
        found = self.get_many([other for other, _ in hits])
        return [
            SimilarUser(other, cosine, found[other].labels if other in found else ())
            for other, cosine in hits
        ]

    def _scan(self, horizon: str) -> Iterable[tuple[str, FloatArray | None]]:
        user_ids = self.store.user_ids()
        for start in range(0, len(user_ids), SCAN_CHUNK):
            for user_id, vectors in self.get_many(user_ids[start : start + SCAN_CHUNK]).items():
                yield user_id, vectors.horizon(horizon)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store connection."""
        self.store.close()

    def __enter__(self) -> ProfileClient:
        """Use the client in a with block, which closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client at the end of the with block."""
        self.close()
