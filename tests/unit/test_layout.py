"""The repository's shape: every package is installed under `interest_stream.*`, nothing
generic lands at the top of site-packages, no product module grows past ~500 lines, and the
import rule holds (lint-imports, in `make lint`)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("streams", "encoders", "store", "schemas")
PRODUCT_LINES = 500


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed_under_its_installed_name():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {
        "interest_stream." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"


def test_no_product_module_is_over_five_hundred_lines():
    long = {
        str(path.relative_to(ROOT)): count
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.py")
        if "lab" not in path.relative_to(ROOT).parts
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > PRODUCT_LINES
    }
    assert not long, long


@pytest.mark.slow
def test_the_wheel_puts_one_namespace_into_site_packages(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("interest_stream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"interest_stream"}
    assert "interest_stream/schemas/profiles.cql" in names
    assert "interest_stream/schemas/clicks.schema.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "interest-stream = interest_stream.streams.cli:main" in text
    assert "bench = interest_stream.streams.lab.bench_commands:bench" in text


@pytest.mark.slow
def test_the_console_script_works_from_a_non_editable_install(tmp_path: Path):
    """The wheel installed into a fresh virtual environment (its dependencies borrowed from
    this one as a plain path, so this checkout's editable install is not seen)."""
    import site
    import venv

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("interest_stream-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    lib = next((env_dir / "lib").glob("python*/site-packages"))
    (lib / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(lib),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    python = env_dir / "bin" / "python"
    # The console script pip wrote, run by the fresh environment's interpreter.
    script = str(lib / "bin" / "interest-stream")
    where = subprocess.run(
        [str(python), "-c", "import interest_stream.streams.cli as c; print(c.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(lib) in where, where  # the installed copy, not this checkout
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id": "e1", "user_id": "u1", "ts": 1700000000000, "type": "click",'
        ' "text": "A lone pilot racing through a wormhole"}\n',
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            str(python),
            "-c",
            "from interest_stream.streams.cli import main; main()",
            "run",
            str(events),
            "--store",
            f"sqlite:///{tmp_path}/p.db",
            "--encoder",
            "hashing",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert '"applied": 1' in run.stdout
    help_text = subprocess.run(
        [str(python), script, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "bench" in help_text and "forget" in help_text
