#!/usr/bin/python3
"""Resize mode 'cubic' beyond the ONNX conformance cases.

The conformance data cover half_pixel, align_corners and asymmetric with
the default a and exclude_outside with a = -0.5; this adds, on small models
built with onnx.helper:
  - forward (build/tests/run_model) against a numpy reference written from
    the operator's definition (one interpolation matrix per axis, float64):
    every coordinate transformation mode evmap supports (pytorch_half_pixel
    with an output length of 1, tf_half_pixel_for_nn, half_pixel_symmetric
    at opset 19), scales and sizes, exclude_outside with a = -0.75 and
    -0.5, opset 18's axes, opsets 11, 13, 18 and 19;
  - forward against PyTorch's bicubic interpolation (a = -0.75, edge
    clamping: ONNX half_pixel and align_corners with sizes), an independent
    reading of the same kernel;
  - input gradients (build/tests/grad_model) of X -> Resize -> Flatten ->
    MatMul against the transpose of the reference's matrices;
  - refusals: antialias, cubic at opset 10, cubic over the channel axis.
Prints one "ok"/"FAIL" line per case and "N passed, N failed".
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

BUILD = os.environ.get("BUILD", "build")
RUN_MODEL = os.path.join(BUILD, "tests", "run_model")
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")

passed = failed = 0


def report(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + detail}"[:2000], flush=True)


def keys(s, a):
    """Keys' cubic convolution kernel (cubic_coeff_a = a)."""
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s < 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def source(mode, o, n_in, n_out, scale, length):
    """Input coordinate of output coordinate o (the definitions of the
    coordinate_transformation_mode attribute; length: n_in * scale before
    flooring, or the size)."""
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if length > 1 else 0.0
    if mode == "align_corners":
        return o * (n_in - 1) / (length - 1) if length > 1 else 0.0
    if mode == "asymmetric":
        return o / scale
    if mode == "tf_half_pixel_for_nn":
        return (o + 0.5) / scale
    if mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / length)
        return offset + (o + 0.5) / scale - 0.5
    raise ValueError(mode)


def matrix(mode, n_in, n_out, scale, length, a, exclude):
    """The n_out x n_in interpolation matrix along one axis."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        x = source(mode, o, n_in, n_out, scale, length)
        f = math.floor(x)
        t = x - f
        taps = [(f - 1 + k, keys(d, a)) for k, d in enumerate((1 + t, t, 1 - t, 2 - t))]
        if exclude:
            taps = [(i, w) for i, w in taps if 0 <= i < n_in]
            total = sum(w for _, w in taps)
            taps = [(i, w / total) for i, w in taps]
        for i, w in taps:
            m[o, min(max(i, 0), n_in - 1)] += w
    return m


def geometry(shape, scales, sizes, axes):
    """Per resized axis (of the last two): (n_in, n_out, scale, length)."""
    axes = axes if axes is not None else list(range(len(shape)))
    out = {}
    for k, d in enumerate(axes):
        d %= len(shape)
        if sizes is not None:
            n_out = sizes[k]
            out[d] = (shape[d], n_out, n_out / shape[d], float(n_out))
        else:
            s = float(np.float32(scales[k]))
            out[d] = (shape[d], math.floor(shape[d] * s), s, shape[d] * s)
    return out


def matrices(shape, case):
    g = geometry(shape, case.get("scales"), case.get("sizes"), case.get("axes"))
    ms = []
    for d in (2, 3):
        n_in, n_out, scale, length = g.get(d, (shape[d], shape[d], 1.0, float(shape[d])))
        ms.append(matrix(case.get("coord", "half_pixel"), n_in, n_out, scale, length,
                         case.get("a", -0.75), case.get("exclude", 0)))
    return ms


def resize_node(case, inits):
    """The Resize node X -> Y for case, adding its constant inputs."""
    opset = case["opset"]
    attrs = {"mode": "cubic"}
    for key, attr in (("coord", "coordinate_transformation_mode"), ("a", "cubic_coeff_a"),
                      ("exclude", "exclude_outside"), ("axes", "axes"),
                      ("antialias", "antialias")):
        if key in case:
            attrs[attr] = case[key]
    inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "roi"))
    if "scales" in case:
        inits.append(numpy_helper.from_array(np.array(case["scales"], np.float32), "scales"))
        inputs = ["X", "roi", "scales"]
    else:
        inits.append(numpy_helper.from_array(np.array(case["sizes"], np.int64), "sizes"))
        if opset < 13:
            inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "no_scales"))
            inputs = ["X", "roi", "no_scales", "sizes"]
        else:
            inputs = ["X", "", "", "sizes"]
    return helper.make_node("Resize", inputs, ["Y"], **attrs)


def save(graph, path, opset):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def run_forward(tmp, case, x):
    inits = []
    graph = helper.make_graph(
        [resize_node(case, inits)], "resize",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    path, inp, out = (os.path.join(tmp, n) for n in ("f.onnx", "x.f32", "y.f32"))
    save(graph, path, case["opset"])
    x.tofile(inp)
    r = subprocess.run([RUN_MODEL, path, inp, *map(str, x.shape), out], capture_output=True,
                       text=True, timeout=60)
    return (np.fromfile(out, dtype=np.float32) if r.returncode == 0 else None), r.stderr.strip()


def name(case):
    return " ".join(f"{k}={v}" for k, v in case.items())


def close(got, want, tol):
    if got is None or got.size != want.size:
        return False, f"{None if got is None else got.size} values, expected {want.size}"
    err = np.abs(got - want.ravel()).max() / max(np.abs(want).max(), 1e-30)
    return err <= tol, f"max relative difference {err:.3g}"


FORWARD = [
    {"opset": 11, "scales": [1, 1, 2, 2]},
    {"opset": 11, "sizes": [1, 2, 3, 4], "coord": "half_pixel"},
    {"opset": 13, "sizes": [1, 2, 7, 4], "coord": "pytorch_half_pixel"},
    {"opset": 13, "sizes": [1, 2, 9, 1], "coord": "pytorch_half_pixel"},
    {"opset": 13, "sizes": [1, 2, 8, 11], "coord": "align_corners"},
    {"opset": 13, "scales": [1, 1, 1.5, 0.5], "coord": "asymmetric"},
    {"opset": 13, "scales": [1, 1, 2, 1.5], "coord": "tf_half_pixel_for_nn"},
    {"opset": 19, "scales": [1, 1, 1.7, 0.7], "coord": "half_pixel_symmetric"},
    {"opset": 19, "sizes": [1, 2, 8, 3], "coord": "half_pixel_symmetric"},
    {"opset": 13, "scales": [1, 1, 0.8, 0.5], "a": -0.5, "exclude": 1},
    {"opset": 13, "sizes": [1, 2, 9, 13], "exclude": 1, "coord": "align_corners"},
    {"opset": 13, "scales": [1, 1, 3, 2], "a": -0.6, "exclude": 1, "coord": "asymmetric"},
    {"opset": 18, "axes": [2, 3], "scales": [2, 0.5]},
    {"opset": 18, "axes": [-1], "sizes": [9], "coord": "pytorch_half_pixel", "exclude": 1},
]
TORCH = [({"opset": 13, "sizes": [1, 2, 7, 4], "coord": "half_pixel"}, False),
         ({"opset": 13, "sizes": [1, 2, 11, 9], "coord": "half_pixel"}, False),
         ({"opset": 13, "sizes": [1, 2, 8, 11], "coord": "align_corners"}, True)]
GRADIENT = [
    {"opset": 13, "scales": [1, 1, 2, 2]},
    {"opset": 13, "scales": [1, 1, 0.5, 0.75], "a": -0.5, "exclude": 1},
    {"opset": 13, "sizes": [1, 1, 9, 4], "coord": "align_corners"},
    {"opset": 19, "scales": [1, 1, 1.5, 1.3], "coord": "half_pixel_symmetric", "exclude": 1},
]
REFUSED = [
    ({"opset": 18, "scales": [1, 1, 0.5, 0.5], "antialias": 1}, "antialias is not supported"),
    ({"opset": 10, "scales": [1, 1, 2, 2]}, "mode 'cubic' is not supported"),
    ({"opset": 13, "scales": [1, 2, 2, 2]}, "only the last two axes"),
]


def opset10_node():
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return helper.make_node("Resize", ["X", "scales"], ["Y"], mode="cubic"), inits


def main():
    for tool in (RUN_MODEL, GRAD_MODEL):
        if not os.access(tool, os.X_OK):
            print(f"{tool} is missing: build it with make programs")
            print("0 passed, 1 failed")
            return 1
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, (1, 2, 5, 6)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for case in FORWARD:
            mh, mw = matrices(x.shape, case)
            want = np.einsum("oh,nchw,pw->ncop", mh, x.astype(np.float64), mw)
            got, err = run_forward(tmp, case, x)
            ok, detail = close(got, want, 2e-6)
            report(ok, f"forward {name(case)}", detail if got is not None else err)
        for case, align in TORCH:
            want = torch.nn.functional.interpolate(torch.from_numpy(x).double(),
                                                   size=tuple(case["sizes"][2:]), mode="bicubic",
                                                   align_corners=align).numpy()
            got, err = run_forward(tmp, case, x)
            ok, detail = close(got, want, 2e-6)
            report(ok, f"forward against PyTorch bicubic {name(case)}",
                   detail if got is not None else err)
        for case in GRADIENT:
            xg = rng.normal(0, 1, (1, 1, 6, 7)).astype(np.float32)
            mh, mw = matrices(xg.shape, case)
            m = mh.shape[0] * mw.shape[0]
            w = rng.normal(0, 1, (m, 3)).astype(np.float32)
            inits = [numpy_helper.from_array(w, "W")]
            nodes = [resize_node(case, inits), helper.make_node("Flatten", ["Y"], ["F"], axis=1),
                     helper.make_node("MatMul", ["F", "W"], ["Z"])]
            graph = helper.make_graph(
                nodes, "resize_classifier",
                [helper.make_tensor_value_info("X", TensorProto.FLOAT, xg.shape)],
                [helper.make_tensor_value_info("Z", TensorProto.FLOAT, (1, 3))], inits)
            path, inp, out = (os.path.join(tmp, n) for n in ("g.onnx", "x.f32", "g.f32"))
            save(graph, path, case["opset"])
            xg[0].tofile(inp)
            r = subprocess.run([GRAD_MODEL, path, inp, "logit", "1", out], capture_output=True,
                               text=True, timeout=60)
            what = f"gradient {name(case)}"
            if r.returncode != 0:
                report(False, what, r.stderr.strip())
                continue
            gz = w[:, 1].astype(np.float64).reshape(mh.shape[0], mw.shape[0])
            want = mh.T @ gz @ mw
            ok, detail = close(np.fromfile(out, dtype=np.float32), want, 1e-5)
            report(ok, what, detail)
        for case, text in REFUSED:
            if case["opset"] == 10:
                node, inits = opset10_node()
            else:
                inits = []
                node = resize_node(case, inits)
            graph = helper.make_graph(
                [node], "resize", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x.shape)],
                [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
            path, inp, out = (os.path.join(tmp, n) for n in ("r.onnx", "x.f32", "y.f32"))
            save(graph, path, case["opset"])
            x.tofile(inp)
            r = subprocess.run([RUN_MODEL, path, inp, *map(str, x.shape), out],
                               capture_output=True, text=True, timeout=60)
            report(r.returncode != 0 and text in r.stderr, f"refused: {name(case)}",
                   r.stderr.strip() or "accepted")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
