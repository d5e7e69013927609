"""The public surface documents its parameters and returns (Google style), beyond what
ruff's pydocstyle rules check: D417 finds an incomplete Args section, not a missing one."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

PUBLIC = [
    "interest_stream.streams.client",
    "interest_stream.streams.settings",
    "interest_stream.streams.connection",
    "interest_stream.store.base",
    "interest_stream.encoders",
    "interest_stream.encoders.base",
    "interest_stream.encoders.cache",
    "interest_stream.encoders.hashing",
]
# Short docstrings that name what they return are enough for these.
ONE_LINERS = {"as_dict", "close", "nearest_users", "explain"}


def _callables(module_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module_name:
            continue
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_"):
                    continue
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member
                elif isinstance(member, classmethod):
                    yield f"{name}.{attr}", member.__func__


@pytest.mark.parametrize("module_name", PUBLIC)
def test_parameters_and_returns_are_documented(module_name: str) -> None:
    missing = []
    for name, function in _callables(module_name):
        if name.rsplit(".", 1)[-1] in ONE_LINERS:
            continue
        doc = inspect.getdoc(function) or ""
        signature = inspect.signature(function)
        params = [p for p in signature.parameters if p not in ("self", "cls")]
        if params and "Args:" not in doc:
            missing.append(f"{name}: no Args section")
        for param in params:
            if f"\n    {param}:" not in doc and f"\n    **{param}:" not in doc:
                missing.append(f"{name}: parameter {param}")
        returns = signature.return_annotation
        if returns not in ("None", None, inspect.Signature.empty) and "Returns:" not in doc:
            missing.append(f"{name}: no Returns section")
    assert missing == []
