"""pip's resolver, asked what `pip install '.[extras]'` would install into an empty
environment with constraints.txt, picks exactly one ONNX runtime: onnxruntime for [cpu],
onnxruntime-gpu for [gpu], whatever other extras come with them. Needs PyPI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIMES = {"onnxruntime", "onnxruntime-gpu"}
# extras -> the runtime distributions pip must choose. The index these runs use serves no
# PEP 658 metadata, so pip fetches every wheel it considers, one request after another
# (about 1.5 s each here): a set with torch took 3.7 minutes ([gpu] plus every other
# extra: onnxruntime-gpu alone among 129 packages). The sets below stay light; that no
# other dependency brings a runtime is checked on the installed metadata below.
EXPECTED = {
    "cpu": {"onnxruntime"},
    "gpu": {"onnxruntime-gpu"},
    # No runtime at all: the encoder then refuses to load, naming both extras.
    "kafka,cassandra": set(),
}


def _resolve(extras: str) -> set[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--report",
            "-",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{ROOT}[{extras}]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"[{extras}]: {result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    return {item["metadata"]["name"].lower() for item in report["install"]}


@pytest.fixture(scope="module")
def resolutions() -> dict[str, set[str]]:
    # Side by side: each run spends most of its time waiting on PyPI and building the
    # project's metadata.
    with ThreadPoolExecutor(max_workers=len(EXPECTED)) as pool:
        return dict(zip(EXPECTED, pool.map(_resolve, EXPECTED), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("extras", list(EXPECTED))
def test_each_extra_set_resolves_exactly_its_one_runtime(
    resolutions: dict[str, set[str]], extras: str
):
    chosen = resolutions[extras] & RUNTIMES
    assert chosen == EXPECTED[extras], f"[{extras}] resolves {sorted(chosen)}"
    assert "interest-stream" in resolutions[extras]


def test_no_installed_dependency_but_our_extras_requires_a_runtime():
    """With every extra installed (as `make test` does), only interest-stream's [cpu]/[gpu]
    name onnxruntime or onnxruntime-gpu: so [gpu] with the other extras brings no CPU
    onnxruntime, and [cpu] no onnxruntime-gpu."""
    wanting: dict[str, set[str]] = {}
    for dist in distributions():
        for text in dist.requires or []:
            required = re.match(r"[A-Za-z0-9._-]+", text)
            if required and required.group().lower().replace("_", "-") in RUNTIMES:
                wanting.setdefault(dist.metadata["Name"], set()).add(text)
    assert set(wanting) == {"interest-stream"}, wanting
    assert sorted(wanting["interest-stream"]) == [
        'onnxruntime-gpu>=1.18; extra == "gpu"',
        'onnxruntime>=1.18; extra == "cpu"',
    ]
