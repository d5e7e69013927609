"""The project's error hierarchy: one root, so callers can catch everything we raise on purpose.

Input problems with single events are not errors here: they become reject/DLQ records.
These classes are for conditions that stop a command or a component.
"""

from __future__ import annotations


class InterestStreamError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigurationError(InterestStreamError):
    """A setting, URL or flag cannot be used as given."""


class StoreError(InterestStreamError):
    """The profile store cannot be opened, read or written.

    `retriable` says whether the same request may succeed later (the store unreachable,
    overloaded or timing out); a refusal (no permission, an invalid request, a row this
    version cannot read, a vector of another dimension) fails the same way every time, and
    the retry policy (streams/core/retry.py) gives up on it at once.
    """

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class StoreRefusedError(StoreError):
    """The store refused a request, or holds data this process cannot use: permanent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class SourceError(InterestStreamError):
    """An event source (file, stdin) cannot be read."""


class MissingExtraError(InterestStreamError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed: pip install 'interest-stream[{extra}]'")
        self.module = module
        self.extra = extra


class BrokerError(InterestStreamError):
    """Kafka cannot be reached, lacks a topic, or did not take every message sent to it.

    `retriable` as for StoreError. The subclasses name the kind where it is known:
    `BrokerUnreachableError` (retriable), `BrokerRefusedError` and `TopicLayoutError`
    (permanent: retrying the same request cannot help)."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


class BrokerUnreachableError(BrokerError):
    """No broker answered (down, a wrong address, a timeout): it may answer later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class BrokerRefusedError(BrokerError):
    """A broker answered and refused: credentials, TLS, an ACL, a record too large."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class TopicLayoutError(BrokerError):
    """A topic is missing, has no partitions, or the inputs are not co-partitioned: `init`
    (or an operator) has to fix the cluster first."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class UnknownUserError(InterestStreamError):
    """The store holds no profile for the user asked about."""


class ModelMismatchError(InterestStreamError):
    """Vectors of two different encoders met: a stored profile, a text or a candidate was
    built by another model, and mixing vector spaces would corrupt profiles or scores."""
