"""Static int8 quantization: the scale arithmetic, a tiny graph end to end, the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from interest_stream.encoders.calibration import calibration_texts
from interest_stream.encoders.parity_sentences import PARITY_SENTENCES
from interest_stream.encoders.quantize import (
    ChannelRange,
    activation_quantization,
    quantize_int8,
    smoothing_scales,
    weight_quantization,
)


def test_activation_range_always_holds_zero() -> None:
    scale, zero = activation_quantization(0.5, 2.55)
    assert (float(scale), int(zero)) == (np.float32(0.01), 0)
    scale, zero = activation_quantization(-1.0, 1.0)
    assert abs(float(scale) - 2 / 255) < 1e-9 and int(zero) == 128
    assert activation_quantization(0.0, 0.0) == (np.float32(1.0), np.uint8(0))


def test_weights_are_symmetric_per_output_column() -> None:
    weight = np.array([[1.0, -0.5], [-2.0, 0.25]])
    quantized, scales = weight_quantization(weight)
    np.testing.assert_allclose(scales, [2 / 127, 0.5 / 127], rtol=1e-6)
    assert quantized.dtype == np.int8
    assert quantized.tolist() == [[64, -127], [-127, 64]]


def test_smoothing_moves_outlier_channels_into_the_weights() -> None:
    activation = ChannelRange(low=np.array([-30.0, -1.0, 0.0]), high=np.array([10.0, 1.0, 0.0]))
    weight = np.ones((3, 4))
    scales = smoothing_scales(activation, weight, alpha=0.5)
    np.testing.assert_allclose(scales, [np.sqrt(30.0), 1.0, 1.0])  # a dead channel keeps 1


def _tiny_model(path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weight


def test_tiny_graph_quantizes_deterministically_and_batch_invariantly(tmp_path: Path) -> None:
    weight = _tiny_model(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(1)
    calibration = [rng.standard_normal((1, 5, 8)).astype(np.float32) for _ in range(20)]
    for name in ("a.onnx", "b.onnx"):
        count = quantize_int8(
            tmp_path / "tiny.onnx", tmp_path / name, ({"x": x} for x in calibration)
        )
        assert count == 1
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()

    ops = [node.op_type for node in onnx.load(str(tmp_path / "a.onnx")).graph.node]
    assert ops == ["Mul", "QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul"]
    session = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    batch = np.concatenate(calibration[:6])  # inside the calibrated ranges
    together = session.run(None, {"x": batch})[0]
    alone = np.concatenate([session.run(None, {"x": batch[i : i + 1]})[0] for i in range(6)])
    assert np.array_equal(together, alone)  # fixed scales: no row depends on another
    np.testing.assert_allclose(together, batch @ weight, atol=0.1)


def test_calibration_corpus_is_fixed_varied_and_apart_from_the_parity_set() -> None:
    texts = calibration_texts()
    assert texts == calibration_texts()
    assert not set(texts) & set(PARITY_SENTENCES)
    words = [len(text.split()) for text in texts]
    assert min(words) <= 1 and max(words) >= 200  # one-word inputs to past truncation
    assert any(ord(char) > 0x3000 for text in texts for char in text)  # CJK, emoji
