"""The encoder refuses, with the fix in one line, an environment with no onnxruntime
distribution or with two that share one `onnxruntime` module directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from interest_stream.encoders.onnx_install import install_problem


def _distribution(site: Path, name: str, *, owns_module: bool = True) -> None:
    """A minimal installed distribution: METADATA and a RECORD listing its files."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    module = "onnxruntime" if owns_module else name.replace("-", "_")
    (site / module).mkdir(exist_ok=True)
    (site / module / "__init__.py").touch()
    (info / "RECORD").write_text(f"{module}/__init__.py,,\n{info.name}/METADATA,,\n")


def test_one_runtime_is_fine(tmp_path: Path):
    _distribution(tmp_path, "onnxruntime")
    assert install_problem([str(tmp_path)]) is None


def test_a_gpu_runtime_beside_an_unrelated_onnxruntime_package_is_fine(tmp_path: Path):
    _distribution(tmp_path, "onnxruntime-gpu")
    _distribution(tmp_path, "onnxruntime-extensions", owns_module=False)
    assert install_problem([str(tmp_path)]) is None


def test_both_runtimes_in_one_directory_are_refused_with_the_fix(tmp_path: Path):
    _distribution(tmp_path, "onnxruntime")
    _distribution(tmp_path, "onnxruntime-gpu")
    problem = install_problem([str(tmp_path)])
    assert problem is not None and "\n" not in problem
    assert "onnxruntime and onnxruntime-gpu are both installed" in problem
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in problem
    assert "interest-stream[gpu]" in problem


def test_a_runtime_shadowing_another_from_an_earlier_path_entry_is_fine(tmp_path: Path):
    # e.g. onnxruntime-gpu unpacked with --target onto PYTHONPATH over a CPU site-packages:
    # the first directory's module is imported whole, the other is never read.
    _distribution(tmp_path / "target", "onnxruntime-gpu")
    _distribution(tmp_path / "site", "onnxruntime")
    assert install_problem([str(tmp_path / "target"), str(tmp_path / "site")]) is None


def test_no_runtime_names_both_extras(tmp_path: Path):
    problem = install_problem([str(tmp_path)])
    assert problem == (
        "onnxruntime is not installed: pip install 'interest-stream[cpu]'"
        " (or 'interest-stream[gpu]' for CUDA)"
    )


def test_the_cli_refuses_a_collision_in_one_line(tmp_path: Path):
    """End to end: a second distribution claims the installed onnxruntime module's directory.

    The real site-packages is not touched: a directory first on PYTHONPATH holds links to
    the installed module and its record, plus the record of a second owner."""
    import onnxruntime

    assert install_problem() is None, install_problem()
    site = Path(onnxruntime.__file__).parent.parent
    shadow = tmp_path / "site"
    shadow.mkdir()
    for entry in [site / "onnxruntime", *site.glob("onnxruntime*.dist-info")]:
        (shadow / entry.name).symlink_to(entry)
    installed = {p.name.split("-")[0] for p in shadow.glob("*.dist-info")}
    second = "onnxruntime" if "onnxruntime_gpu" in installed else "onnxruntime-gpu"
    info = shadow / f"{second.replace('-', '_')}-9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {second}\nVersion: 9\n")
    (info / "RECORD").write_text("onnxruntime/__init__.py,,\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "interest_stream.streams.cli",
            "run",
            "--store",
            f"sqlite:///{tmp_path}/p.db",
            "--demo-users",
            "2",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(shadow)},
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "are both installed in" in lines[0], lines
