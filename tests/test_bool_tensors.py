#!/usr/bin/python3
"""Boolean tensors through the operators that move data without reading it.

Exported graphs build masks (Greater, Not, Equal) and then reshape, slice,
transpose, gather or concatenate them before a Where or a Cast. Every such
operator must copy 1-byte elements as 1-byte elements: a copy loop sized for
float32 or int64 reads past the end of a bool buffer (found by fuzz_onnx in
Transpose; make test's sanitized pass runs this suite under AddressSanitizer).

Each case is X (float32, 2x3x4x5, fixed seed) -> B = Greater(X, 0) -> the
operators under test -> Cast(to float32) -> Y, run by build/tests/run_model
and compared exactly with the same steps in numpy on X > 0. A Pad of a bool
tensor, which evmap does not support, must be refused with one line naming
the node.
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
SHAPE = (2, 3, 4, 5)

passed = failed = 0


def report(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + detail}"[:2000], flush=True)


def i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


# name -> (nodes reading bool 'B' (and 'X') and writing bool or int64 'R',
#          initializers, numpy reference on b = x > 0 and x).
CASES = {
    "Transpose (reversed axes)": (
        [node("Transpose", ["B"], ["R"])], [], lambda b, x: b.transpose()),
    "Transpose perm 0,2,3,1": (
        [node("Transpose", ["B"], ["R"], perm=[0, 2, 3, 1])], [],
        lambda b, x: b.transpose(0, 2, 3, 1)),
    "Transpose perm 3,1,0,2": (
        [node("Transpose", ["B"], ["R"], perm=[3, 1, 0, 2])], [],
        lambda b, x: b.transpose(3, 1, 0, 2)),
    "Reshape to 6x20": (
        [node("Reshape", ["B", "shape"], ["R"])], [i64("shape", [6, 20])],
        lambda b, x: b.reshape(6, 20)),
    "Flatten axis 2": (
        [node("Flatten", ["B"], ["R"], axis=2)], [], lambda b, x: b.reshape(6, 20)),
    "Unsqueeze then Squeeze": (
        [node("Unsqueeze", ["B", "ax"], ["U"]), node("Transpose", ["U"], ["T"]),
         node("Squeeze", ["T", "ax2"], ["R"])],
        [i64("ax", [2]), i64("ax2", [2])],
        lambda b, x: np.squeeze(np.expand_dims(b, 2).transpose(), 2)),
    "Slice with steps": (
        [node("Slice", ["B", "st", "en", "ax", "sp"], ["R"])],
        [i64("st", [1, 4]), i64("en", [4, 0]), i64("ax", [2, 3]), i64("sp", [2, -2])],
        lambda b, x: b[:, :, 1:4:2, 4:0:-2]),
    "Concat of B and Not(B) on axis 1": (
        [node("Not", ["B"], ["N"]), node("Concat", ["B", "N"], ["R"], axis=1)], [],
        lambda b, x: np.concatenate([b, ~b], axis=1)),
    "Split on axis 3, pieces concatenated back to front": (
        [node("Split", ["B", "sizes"], ["P", "Q"], axis=3),
         node("Concat", ["Q", "P"], ["R"], axis=3)],
        [i64("sizes", [2, 3])],
        lambda b, x: np.concatenate([b[..., 2:], b[..., :2]], axis=3)),
    "Expand of one column": (
        [node("Slice", ["B", "st", "en", "ax"], ["C"]), node("Expand", ["C", "shape"], ["R"])],
        [i64("st", [1]), i64("en", [2]), i64("ax", [3]), i64("shape", [2, 3, 4, 5])],
        lambda b, x: np.broadcast_to(b[..., 1:2], SHAPE)),
    "Tile 1,2,1,2": (
        [node("Tile", ["B", "reps"], ["R"])], [i64("reps", [1, 2, 1, 2])],
        lambda b, x: np.tile(b, (1, 2, 1, 2))),
    "Gather on axis 2": (
        [node("Gather", ["B", "idx"], ["R"], axis=2)], [i64("idx", [3, 0, 0, -2])],
        lambda b, x: b[:, :, [3, 0, 0, 2], :]),
    "Where with bool branches": (
        [node("Less", ["X", "half"], ["C"]), node("Not", ["B"], ["N"]),
         node("Where", ["C", "B", "N"], ["R"])],
        [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")],
        lambda b, x: np.where(x < 0.5, b, ~b)),
    "Identity": ([node("Identity", ["B"], ["R"])], [], lambda b, x: b),
    "Cast to int64, then Transpose": (
        [node("Cast", ["B"], ["I"], to=TensorProto.INT64),
         node("Transpose", ["I"], ["R"], perm=[2, 0, 3, 1])], [],
        lambda b, x: b.astype(np.int64).transpose(2, 0, 3, 1)),
}


def build(path, body, inits):
    nodes = [node("Greater", ["X", "zero"], ["B"])] + body + [
        node("Cast", ["R"], ["Y"], to=TensorProto.FLOAT)]
    inits = inits + [numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    graph = helper.make_graph(
        nodes, "bool_data", [helper.make_tensor_value_info("X", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def run(tmp, body, inits, x):
    path, inp, out = (os.path.join(tmp, n) for n in ("m.onnx", "x.f32", "y.f32"))
    build(path, body, inits)
    x.tofile(inp)
    r = subprocess.run([RUN_MODEL, path, inp, *map(str, SHAPE), out], capture_output=True,
                       text=True, timeout=60)
    got = np.fromfile(out, dtype=np.float32) if r.returncode == 0 else None
    return r, got


def main():
    x = np.random.default_rng(7).normal(0, 1, SHAPE).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for what, (body, inits, reference) in CASES.items():
            r, got = run(tmp, body, inits, x)
            if got is None:
                report(False, what, f"exit {r.returncode}: {r.stderr.strip()}")
                continue
            want = reference(x > 0, x).astype(np.float32).ravel()
            ok = got.size == want.size and np.array_equal(got, want)
            report(ok, what, f"{got.size} values, expected {want.size}; "
                   f"{int(np.sum(got[:want.size] != want[:got.size]))} differ")
        r, _ = run(tmp, [node("Pad", ["B", "pads"], ["R"])], [i64("pads", [0, 0, 1, 1] * 2)], x)
        lines = r.stderr.strip().splitlines()
        report(r.returncode not in (0, -6, -11) and len(lines) == 1 and "Pad" in lines[0]
               and "bool" in lines[0], "Pad of a bool tensor is refused with one line",
               f"exit {r.returncode}: {r.stderr.strip()}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
