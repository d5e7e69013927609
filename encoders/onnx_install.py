"""Which onnxruntime distribution provides the `onnxruntime` module, checked before it is imported.

`onnxruntime` (CPU, the `[cpu]` extra) and `onnxruntime-gpu` (CUDA, the `[gpu]` extra) both
install the same `onnxruntime` package directory. With both in one site-packages each
overwrote the other's files, so whether the CUDA provider exists depends on which landed
last; pip cannot express "one or the other". Rather than run with whichever half won, the
encoder refuses with one line that names the fix. A second copy in another path entry (a
`--target` directory on PYTHONPATH) shadows the first whole, so only distributions that
share the imported module's directory count as a collision.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from interest_stream.streams.errors import InterestStreamError

MODULE = "onnxruntime"
INSTALL_HINT = "pip install 'interest-stream[cpu]' (or 'interest-stream[gpu]' for CUDA)"


class OnnxRuntimeInstallError(InterestStreamError, ImportError):
    """No onnxruntime distribution is installed, or two of them share one module directory."""


def _owners(site_dir: Path) -> list[str]:
    """Names of the distributions in `site_dir` whose files include the onnxruntime package."""
    owners: set[str] = set()
    for dist in importlib.metadata.distributions(path=[str(site_dir)]):
        name = dist.metadata["Name"] or ""
        # Cheap filter first: only onnxruntime* names can own the module, and reading every
        # RECORD in site-packages would cost far more. onnxruntime-extensions and friends
        # match the prefix but own other modules, hence the RECORD check.
        if not name.lower().replace("_", "-").startswith(MODULE):
            continue
        if any(Path(file).parts[:1] == (MODULE,) for file in dist.files or ()):
            owners.add(name)
    return sorted(owners)


def install_problem(search_path: Sequence[str] | None = None) -> str | None:
    """Why the onnxruntime install cannot be trusted (one line with the fix), or None.

    `search_path` defaults to sys.path, the path `import onnxruntime` would search."""
    spec = importlib.machinery.PathFinder.find_spec(
        MODULE, list(search_path) if search_path is not None else None
    )
    if spec is None or not spec.submodule_search_locations:
        return f"onnxruntime is not installed: {INSTALL_HINT}"
    site_dir = Path(next(iter(spec.submodule_search_locations))).parent
    owners = _owners(site_dir)
    if len(owners) > 1:
        names = " ".join(owners)
        return (
            f"{' and '.join(owners)} are both installed in {site_dir} and overwrite each"
            f" other's onnxruntime module: pip uninstall -y {names}, then {INSTALL_HINT}"
        )
    return None


@functools.cache
def onnxruntime_module() -> ModuleType:
    """The onnxruntime module, once its install has been checked (raises with the fix)."""
    problem = install_problem()
    if problem is not None:
        raise OnnxRuntimeInstallError(problem)
    return importlib.import_module(MODULE)
