#!/usr/bin/python3
"""The Reduce* operators in both ONNX forms, forward and backward.

Builds one-node (forward) and small classifier (gradient) models with
onnx.helper, in the attribute form (opset 13; ReduceSum already takes its
axes as input 1 there) and the input form of opset 18 (axes as input 1,
noop_with_empty_axes, empty or omitted axes), for several axes and keepdims;
an axes attribute at opset 18 is refused.
  - forward: build/tests/run_model on float32 random data (fixed seed)
    against a numpy reference written from the ONNX operator definitions,
    in float64;
  - gradient: build/tests/grad_model (the public evmap_input_gradient) of
    the logit of a classifier X -> Reduce -> Flatten -> MatMul, against
    central finite differences of the same network in float64 numpy. The
    data keep away from kinks: ReduceMax and ReduceMin get values at least
    0.02 apart, ReduceL1 values at least 0.3 away from 0, ReduceLogSum and
    ReduceProd positive values near 1.
Prints one "ok"/"FAIL" line per case and "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
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


# The operators from their definitions; x is float64, axes a tuple (every
# axis when None).
def _sum(f):
    return lambda x, axes, keep: np.sum(f(x), axis=axes, keepdims=keep)


REFERENCE = {
    "ReduceSum": _sum(lambda x: x),
    "ReduceMean": lambda x, axes, keep: np.mean(x, axis=axes, keepdims=keep),
    "ReduceMax": lambda x, axes, keep: np.max(x, axis=axes, keepdims=keep),
    "ReduceMin": lambda x, axes, keep: np.min(x, axis=axes, keepdims=keep),
    "ReduceProd": lambda x, axes, keep: np.prod(x, axis=axes, keepdims=keep),
    "ReduceL1": _sum(np.abs),
    "ReduceL2": lambda x, axes, keep: np.sqrt(np.sum(x * x, axis=axes, keepdims=keep)),
    "ReduceSumSquare": _sum(lambda x: x * x),
    "ReduceLogSum": lambda x, axes, keep: np.log(np.sum(x, axis=axes, keepdims=keep)),
    "ReduceLogSumExp": lambda x, axes, keep: np.log(np.sum(np.exp(x), axis=axes, keepdims=keep)),
}
# The opset from which the axes are input 1.
AXES_INPUT_OPSET = {op: 18 for op in REFERENCE}
AXES_INPUT_OPSET["ReduceSum"] = 13


def data(op, shape, rng):
    """float32 values away from op's kinks and singular points."""
    n = int(np.prod(shape))
    if op in ("ReduceMax", "ReduceMin"):  # distinct, at least 0.02 apart
        v = (rng.permutation(n) - n / 2) * 0.05 + rng.uniform(-0.01, 0.01, n)
    elif op == "ReduceL1":  # |x| >= 0.3
        v = rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 1.5, n)
    elif op in ("ReduceProd", "ReduceLogSum"):  # positive, products near 1
        v = rng.uniform(0.7, 1.4, n)
    elif op == "ReduceLogSumExp":  # wide enough that softmax is not uniform
        v = rng.normal(0, 2.0, n)
    else:
        v = rng.normal(0, 1.0, n)
    return v.reshape(shape).astype(np.float32)


def reduce_node(op, opset, axes, keepdims, noop, inits):
    """The Reduce node reading 'X' into 'Y' in op's form at opset; axes
    None: none given (an omitted input, or no attribute), [] an empty axes
    input. Adds the axes initializer to inits."""
    attrs = {} if keepdims is None else {"keepdims": keepdims}
    inputs = ["X"]
    if opset >= AXES_INPUT_OPSET[op]:
        if noop is not None:
            attrs["noop_with_empty_axes"] = noop
        if axes is not None:
            inits.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), "axes"))
            inputs.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    return helper.make_node(op, inputs, ["Y"], **attrs)


def expected_forward(op, x, axes, keepdims, noop):
    if axes is not None and len(axes) == 0 and noop:
        return x.astype(np.float64)
    if axes is None and noop:
        return x.astype(np.float64)
    ax = tuple(axes) if axes else None
    return REFERENCE[op](x.astype(np.float64), ax, keepdims is None or keepdims == 1)


def save(model, path, opset):
    model.opset_import[0].version = opset
    model.ir_version = 8
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def forward_case(tmp, op, opset, axes, keepdims, noop, rng):
    shape = (2, 3, 4, 5)
    x = data(op, shape, rng)
    want = expected_forward(op, x, axes, keepdims, noop)
    inits = []
    node = reduce_node(op, opset, axes, keepdims, noop, inits)
    graph = helper.make_graph(
        [node], "reduce", [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    path, inp, out = (os.path.join(tmp, n) for n in ("f.onnx", "x.f32", "y.f32"))
    save(helper.make_model(graph), path, opset)
    x.tofile(inp)
    what = f"forward {op} opset {opset} axes={axes} keepdims={keepdims} noop={noop}"
    r = subprocess.run([RUN_MODEL, path, inp, *map(str, shape), out], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        report(False, what, r.stderr.strip())
        return
    got = np.fromfile(out, dtype=np.float32)
    if got.size != want.size:
        report(False, what, f"{got.size} values, expected {want.size} (shape {want.shape})")
        return
    err = np.abs(got - want.ravel()).max() / max(np.abs(want).max(), 1e-30)
    report(err <= 2e-6, what, f"max relative difference {err:.3g}")


def gradient_case(tmp, op, opset, axes, keepdims, noop, rng):
    shape = (1, 3, 4, 5)
    x = data(op, shape, rng)
    inits = []
    node = reduce_node(op, opset, axes, keepdims, noop, inits)
    y_shape = expected_forward(op, x, axes, keepdims, noop).shape
    m = int(np.prod(y_shape[1:])) if len(y_shape) > 1 else 1
    w = rng.normal(0, 1.0, (m, 3)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "W"))
    nodes = [node, helper.make_node("Flatten", ["Y"], ["F"], axis=1),
             helper.make_node("MatMul", ["F", "W"], ["Z"])]
    graph = helper.make_graph(
        nodes, "reduce_classifier", [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, (1, 3))], inits)
    path, inp, out = (os.path.join(tmp, n) for n in ("g.onnx", "x.f32", "g.f32"))
    save(helper.make_model(graph), path, opset)
    x[0].tofile(inp)
    what = f"gradient {op} opset {opset} axes={axes} keepdims={keepdims} noop={noop}"
    r = subprocess.run([GRAD_MODEL, path, inp, "logit", "0", out], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        report(False, what, r.stderr.strip())
        return
    got = np.fromfile(out, dtype=np.float32).reshape(shape)

    w0 = w[:, 0].astype(np.float64)

    def score(xd):
        return float(expected_forward(op, xd, axes, keepdims, noop).reshape(-1) @ w0)

    xd = x.astype(np.float64)
    want = np.zeros(shape)
    h = 1e-5
    for i in np.ndindex(shape):
        xp, xm = xd.copy(), xd.copy()
        xp[i] += h
        xm[i] -= h
        want[i] = (score(xp) - score(xm)) / (2 * h)
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
    y = expected_forward(op, xd, axes, keepdims, noop).reshape(-1)
    score_err = abs(float(r.stdout) - score(xd)) / max(float(np.abs(y) @ np.abs(w0)), 1e-30)
    report(err <= 1e-4 and score_err <= 1e-5, what,
           f"gradient max relative difference {err:.3g}, score {score_err:.3g}")


def refusal_case(tmp, op):
    """An axes attribute where the axes are input 1 is refused, naming it."""
    shape = (2, 3, 4, 5)
    node = helper.make_node(op, ["X"], ["Y"], axes=[1])
    graph = helper.make_graph(
        [node], "reduce", [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    path, inp, out = (os.path.join(tmp, n) for n in ("r.onnx", "x.f32", "y.f32"))
    save(helper.make_model(graph), path, 18)
    np.zeros(shape, np.float32).tofile(inp)
    r = subprocess.run([RUN_MODEL, path, inp, *map(str, shape), out], capture_output=True,
                       text=True, timeout=60)
    report(r.returncode != 0 and "attribute 'axes' is not valid" in r.stderr,
           f"refused: {op} opset 18 with an axes attribute", r.stderr.strip())


# (axes, keepdims, noop): the attribute form's cases, then those only the
# input form has.
FORWARD_CASES = [(None, None, None), ([1], 1, None), ([2, 3], 0, None), ([-1], 1, None),
                 ([0, 2], 0, None), (None, 0, None)]
FORWARD_INPUT_FORM = [([], 1, 0), ([], 0, None), ([], 1, 1), (None, 1, 1), ([-3, 3], 0, 1),
                      ([1], 1, 0)]
GRADIENT_CASES = [([1], 1, None), ([2, 3], 0, None), ([1, 2, 3], 1, None), ([-1], 0, None)]
GRADIENT_INPUT_FORM = [([], 1, 0), ([], 1, 1), (None, 0, 1), ([-2], 1, 1)]


def main():
    for tool in (RUN_MODEL, GRAD_MODEL):
        if not os.access(tool, os.X_OK):
            print(f"{tool} is missing: build it with make programs")
            print("0 passed, 1 failed")
            return 1
    rng = np.random.default_rng(18)
    with tempfile.TemporaryDirectory() as tmp:
        for op in REFERENCE:
            for opset in (13, 18):
                cases = list(FORWARD_CASES)
                if opset >= AXES_INPUT_OPSET[op]:
                    cases += FORWARD_INPUT_FORM
                for axes, keepdims, noop in cases:
                    forward_case(tmp, op, opset, axes, keepdims, noop, rng)
        for op in REFERENCE:
            for opset in (13, 18):
                cases = list(GRADIENT_CASES)
                if opset >= AXES_INPUT_OPSET[op]:
                    cases += GRADIENT_INPUT_FORM
                for axes, keepdims, noop in cases:
                    gradient_case(tmp, op, opset, axes, keepdims, noop, rng)
        for op in ("ReduceMean", "ReduceLogSumExp"):
            refusal_case(tmp, op)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
