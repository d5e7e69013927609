"""Where a GPU is visible, the installed runtime is onnxruntime-gpu with its CUDA provider:
a [cpu] install (or a CPU onnxruntime that overwrote the GPU one) on a GPU machine fails
here instead of encoding on the CPU without a word. Skipped where no GPU is visible."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def _visible_gpus() -> list[str]:
    """GPUs the NVIDIA driver shows to this process, asked without onnxruntime."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
        if listed.returncode == 0:
            return [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    driver = Path("/proc/driver/nvidia/gpus")
    return [p.name for p in driver.iterdir()] if driver.is_dir() else []


def test_a_visible_gpu_gets_the_cuda_provider():
    gpus = _visible_gpus()
    if not gpus:
        pytest.skip("no GPU visible (nvidia-smi -L, /proc/driver/nvidia/gpus)")
    from interest_stream.encoders.onnx_install import onnxruntime_module

    ort = onnxruntime_module()  # exactly one runtime distribution, or one line naming the fix
    try:
        gpu_runtime = version("onnxruntime-gpu")
    except PackageNotFoundError:
        pytest.fail(
            f"{len(gpus)} GPU(s) visible but onnxruntime-gpu is not installed: "
            "pip install 'interest-stream[gpu]' (make test RUNTIME=gpu)"
        )
    providers = ort.get_available_providers()
    assert "CUDAExecutionProvider" in providers, (gpu_runtime, providers)
