#!/usr/bin/python3
"""Seeds for fuzz_onnx: small classifiers whose weights are not float32.

Writes, into the folder given (fuzz/make_corpus.sh passes
build-fuzz/corpus/onnx), models built with onnx.helper from fixed random
weights (numpy seed 16 + channels), each Conv -> Relu -> GlobalAveragePool -> Flatten
-> Gemm over a 1 x 1 x 6 x 6 or 1 x 3 x 5 x 5 input:
  half_raw.onnx        float16 initializers in raw_data
  half_int32.onnx      float16 initializers in int32_data (one 16-bit
                       pattern per int32, as ONNX stores typed float16)
  half_special.onnx    float16 with subnormals, -0, +-inf, NaN and the
                       largest finite value in the weights
  half_constant.onnx   the Gemm weights as a float16 Constant node
  half_rgb_opset18.onnx  three channels, opset 18, float16 Conv bias
  bfloat16_raw.onnx, double_raw.onnx, mixed_types.onnx (float16, bfloat16,
                       float64 and float32 tensors in one model)
  half_input.onnx      a float16 graph input (refused: evmap computes in
                       float32)
  half_short_raw.onnx  raw_data one byte short of the shape (refused)
The mutator starts from valid encodings of every weight type this way.
Usage: make_weight_seeds.py OUT_DIR
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def weights(c):
    """The same weights for every model with c input channels."""
    rng = np.random.default_rng(16 + c)
    return {
        "W1": rng.normal(0, 0.5, (4, c, 3, 3)).astype(np.float32),
        "B1": rng.normal(0, 0.1, 4).astype(np.float32),
        "W2": rng.normal(0, 0.5, (3, 4)).astype(np.float32),
        "B2": rng.normal(0, 0.1, 3).astype(np.float32),
    }


def as_tensor(name, a, onnx_type, storage="raw"):
    """A TensorProto of onnx_type holding a (float32) converted."""
    if onnx_type == TensorProto.FLOAT:
        return numpy_helper.from_array(a.astype(np.float32), name)
    if onnx_type == TensorProto.DOUBLE:
        return numpy_helper.from_array(a.astype(np.float64), name)
    if onnx_type == TensorProto.FLOAT16:
        bits = a.astype(np.float16).view(np.uint16)
    elif onnx_type == TensorProto.BFLOAT16:  # the top 16 bits, rounded to nearest even
        u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    else:
        raise ValueError(onnx_type)
    t = TensorProto(name=name, data_type=onnx_type, dims=a.shape)
    if storage == "raw":
        t.raw_data = bits.astype("<u2").tobytes()
    else:
        t.int32_data.extend(int(b) for b in bits.ravel())
    return t


def classifier(c, h, types, storage="raw", constant_w2=False, input_type=TensorProto.FLOAT):
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm; types: the
    ONNX type of each weight."""
    w = weights(c)
    inits = [as_tensor(k, v, types[k], storage) for k, v in w.items()
             if not (constant_w2 and k == "W2")]
    nodes = []
    if constant_w2:
        nodes.append(helper.make_node("Constant", [], ["W2"],
                                      value=as_tensor("W2v", w["W2"], types["W2"], storage)))
    nodes += [helper.make_node("Conv", ["X", "W1", "B1"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c"], ["r"]),
              helper.make_node("GlobalAveragePool", ["r"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"], axis=1),
              helper.make_node("Gemm", ["f", "W2", "B2"], ["Y"], transB=1)]
    # A Conv reads float32 weights: the loader converts them when it loads.
    graph = helper.make_graph(
        nodes, "weights", [helper.make_tensor_value_info("X", input_type, ("N", c, h, h))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ("N", 3))], inits)
    return graph


def save(out, name, graph, opset=13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    with open(os.path.join(out, name), "wb") as f:
        f.write(model.SerializeToString())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    F16, BF16, F64, F32 = (TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE,
                           TensorProto.FLOAT)
    all16 = dict.fromkeys(("W1", "B1", "W2", "B2"), F16)
    save(out, "half_raw.onnx", classifier(1, 6, all16))
    save(out, "half_int32.onnx", classifier(1, 6, all16, storage="int32"))
    g = classifier(1, 6, all16)
    special = np.array([6e-8, -6e-8, 1e-5, -0.0, np.inf, -np.inf, np.nan, 65504.0, -65504.0],
                       np.float32)
    w1 = numpy_helper.to_array(g.initializer[0]).astype(np.float32).ravel()
    w1[:special.size] = special
    g.initializer[0].CopyFrom(as_tensor("W1", w1.reshape(4, 1, 3, 3), F16))
    save(out, "half_special.onnx", g)
    save(out, "half_constant.onnx", classifier(1, 6, all16, constant_w2=True))
    save(out, "half_rgb_opset18.onnx", classifier(3, 5, dict(all16, W2=F32)), opset=18)
    save(out, "bfloat16_raw.onnx", classifier(1, 6, dict.fromkeys(all16, BF16)))
    save(out, "double_raw.onnx", classifier(1, 6, dict.fromkeys(all16, F64)))
    save(out, "mixed_types.onnx",
         classifier(3, 5, {"W1": F16, "B1": BF16, "W2": F64, "B2": F32}, constant_w2=True))
    save(out, "half_input.onnx", classifier(1, 6, all16, input_type=F16))
    g = classifier(1, 6, all16)
    g.initializer[1].raw_data = g.initializer[1].raw_data[:-1]
    save(out, "half_short_raw.onnx", g)


if __name__ == "__main__":
    main()
