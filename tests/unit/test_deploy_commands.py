"""Every command of ours that the images and manifests under deploy/ run, run here against
the installed package: a renamed command, option or module fails this test instead of
someone's `docker build` or a pod's start-up.

From each Dockerfile: the `RUN` steps that call `interest-stream` or `python -c` code that
names `interest_stream`, and the image's `ENTRYPOINT` + `CMD`. From each Kubernetes
manifest: the `command` + `args` of every container of an `interest-stream` image (whose
entry point is `interest-stream`). Long-running commands (a worker, an export) run with
`--help` appended: click still parses every option given before it, so an unknown one
fails, and the command name must exist.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCRIPT = "interest-stream"
OUR_MODULE = "interest_stream"
# Commands that finish at once and change nothing: run as written.
QUICK_FLAGS = ("--version", "--help", "-h")


def _script() -> str:
    beside = Path(sys.executable).with_name(SCRIPT)
    found = str(beside) if beside.exists() else shutil.which(SCRIPT)
    assert found, f"the {SCRIPT} console script is not installed beside {sys.executable}"
    return found


def _instructions(dockerfile: Path) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.strip().partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


def _exec_form(text: str) -> list[str]:
    """`["a", "b"]` (exec form) or `a b` (shell form) as an argument list."""
    if text.startswith("["):
        value = json.loads(text)
        assert isinstance(value, list)
        return [str(part) for part in value]
    return shlex.split(text)


def _shell_commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a RUN step's shell script (split at &&, ||, ;, | outside
    quotes), without leading variable assignments, `!` or redirections."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token in ("&&", "||", ";", "|", "&"):
            while words and (words[0] == "!" or re.fullmatch(r"[A-Za-z_]\w*=.*", words[0])):
                words = words[1:]
            if words:
                yield words
            words = []
        else:
            words.append(token)


def _without_redirections(words: list[str]) -> list[str]:
    for index, word in enumerate(words):
        if set(word) <= set("<>&") or (word.isdigit() and words[index + 1 : index + 2] == [">"]):
            return words[:index]
    return words


def _ours(words: list[str]) -> bool:
    if words[0] == SCRIPT:
        return True
    return Path(words[0]).name.startswith("python") and OUR_MODULE in " ".join(words[1:])


def dockerfile_commands(dockerfile: Path) -> list[list[str]]:
    commands: list[list[str]] = []
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, rest in _instructions(dockerfile):
        if keyword == "FROM":  # a new stage: ENTRYPOINT/CMD start afresh
            entrypoint, cmd = [], []
        elif keyword == "RUN":
            commands += [_without_redirections(w) for w in _shell_commands(rest) if _ours(w)]
        elif keyword == "ENTRYPOINT":
            entrypoint = _exec_form(rest)
        elif keyword == "CMD":
            cmd = _exec_form(rest)
    if entrypoint[:1] == [SCRIPT] or (not entrypoint and cmd[:1] == [SCRIPT]):
        commands.append([*entrypoint, *cmd])
    return commands


def _containers(document: Any) -> Iterator[dict[str, Any]]:
    """Containers and init containers anywhere in a manifest (Pod, Job, Deployment, ...)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(document, list):
        for item in document:
            yield from _containers(item)


def manifest_commands(manifest: Path) -> list[list[str]]:
    commands = []
    for document in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
        for container in _containers(document):
            command = [str(c) for c in container.get("command", [])]
            args = [str(a) for a in container.get("args", [])]
            image = str(container.get("image", ""))
            if command:
                if command[0] == SCRIPT:
                    commands.append([*command, *args])
            elif image.rsplit("/", 1)[-1].startswith(f"{SCRIPT}:"):
                # Our images' ENTRYPOINT is the console script (checked above per Dockerfile).
                commands.append([SCRIPT, *args])
    return commands


DOCKERFILES = sorted(DEPLOY.rglob("Dockerfile*"))
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.y*ml"))
CASES = [
    pytest.param(words, id=f"{path.relative_to(DEPLOY)}: {' '.join(words)}")
    for path in DOCKERFILES
    for words in dockerfile_commands(path)
] + [
    pytest.param(words, id=f"{path.relative_to(DEPLOY)}: {' '.join(words)}")
    for path in MANIFESTS
    for words in manifest_commands(path)
]


def test_deploy_has_images_and_manifests_that_run_our_commands():
    assert DOCKERFILES and MANIFESTS
    # Both images end on the console script, and both name a command of ours at build time.
    for dockerfile in DOCKERFILES:
        commands = dockerfile_commands(dockerfile)
        assert any(c[0] == SCRIPT for c in commands[:-1]), dockerfile
        assert commands[-1][0] == SCRIPT, f"{dockerfile}: ENTRYPOINT is not {SCRIPT}"
    assert len(CASES) >= 6


def test_images_call_the_console_script_not_module_paths():
    # Module paths moved once (namespaced install) and broke both images unnoticed.
    for dockerfile in DOCKERFILES:
        for _, rest in _instructions(dockerfile):
            assert "python -m" not in rest, f"{dockerfile}: {rest}"
            assert not re.search(r"\b(from|import) (streams|encoders|store|schemas)\b", rest), (
                f"{dockerfile}: {rest}"
            )


@pytest.mark.parametrize("words", CASES)
def test_each_command_in_deploy_runs_against_the_installed_package(words: list[str]):
    if words[0] == SCRIPT:
        argv = [_script(), *words[1:]]
        if not any(flag in argv for flag in QUICK_FLAGS):
            argv.append("--help")
    else:  # python -c "...interest_stream..."
        argv = [sys.executable, *words[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(words)}:\n{result.stdout}{result.stderr}"


def test_the_parser_finds_our_commands_in_run_steps_and_the_entry_point(tmp_path: Path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim AS build\n"
        "# a comment\n"
        "RUN pip install '.[cpu]' \\\n"
        ' && python -c "import sys; import interest_stream.streams.worker; print(1)" \\\n'
        ' && ! python -c "import torch" 2>/dev/null \\\n'
        " && MODEL_DIR=/m interest-stream export-encoder --precision fp32 > /dev/null\n"
        'ENTRYPOINT ["interest-stream"]\n'
        "FROM python:3.11-slim\n"
        'ENTRYPOINT ["interest-stream"]\n'
        'CMD ["worker"]\n',
        encoding="utf-8",
    )
    assert dockerfile_commands(dockerfile) == [
        ["python", "-c", "import sys; import interest_stream.streams.worker; print(1)"],
        ["interest-stream", "export-encoder", "--precision", "fp32"],
        ["interest-stream", "worker"],
    ]
