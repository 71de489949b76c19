#!/usr/bin/python3
"""Model files from the wild: weight types, external data, NHWC inputs.

Builds small classifiers with the onnx package and runs `evmap classify
--json` on a demo image:
  - float16, float64 and bfloat16 weights (initializers and a Constant node)
    give the outputs of the same network computed in float32 with the
    converted weights (numpy), as PyTorch computes them;
  - external data (valid: one file with offsets, one file per tensor) loads;
    hostile external data (absolute path, '../', a symbolic link leading
    out of the folder, offset + length past the end, a length that does not
    match the tensor, a location inside the folder's parent) exits 2 with one
    line and reads nothing outside the folder (checked with strace);
  - an NHWC model (Transpose after the input, as tf2onnx writes) is detected,
    matches PyTorch on the NCHW equivalent, says "layout": "nhwc", and
    --layout nchw / nhwc override the detection;
  - a model with two inputs, or a non-image input, is refused naming it.
Prints "N passed, N failed".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
IMAGE = "data/demo/0_tshirt.png"

passed = failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}: {detail}"[:2000])


def run(args):
    return subprocess.run([EVMAP] + args, capture_output=True, text=True, timeout=120)


def classify(model, *extra):
    r = run(["classify", "--json", "--top", "all", "--preprocess", "none", *extra, "--model", model, IMAGE])
    return r, (json.loads(r.stdout) if r.returncode == 0 and r.stdout else None)


def image():
    return np.asarray(Image.open(IMAGE).convert("L"), dtype=np.float32)[None, None] / 255.0


rng = np.random.default_rng(7)
W1 = rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)
B1 = rng.normal(0, 0.1, 4).astype(np.float32)
W2 = rng.normal(0, 0.5, (10, 4)).astype(np.float32)
B2 = rng.normal(0, 0.1, 10).astype(np.float32)


def reference(w1, b1, w2, b2, x=None):
    """The network in PyTorch (float32), softmax probabilities."""
    x = torch.from_numpy(image() if x is None else x)
    y = torch.nn.functional.conv2d(x, torch.from_numpy(w1), torch.from_numpy(b1), padding=1)
    y = torch.relu(y).mean(dim=(2, 3))
    y = y @ torch.from_numpy(w2).T + torch.from_numpy(b2)
    return torch.softmax(y.double(), dim=1)[0].numpy()


def tensor(name, array, onnx_type):
    """A TensorProto of onnx_type holding array (converted), in raw_data."""
    if onnx_type == TensorProto.BFLOAT16:
        bits = (np.asarray(array, np.float32).view(np.uint32) >> 16).astype("<u2")
        t = helper.make_tensor(name, onnx_type, array.shape, bits.tobytes(), raw=True)
        return t, bits.astype(np.uint32).__lshift__(16).view(np.float32).reshape(array.shape)
    dtype = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16,
             TensorProto.DOUBLE: np.float64}[onnx_type]
    a = np.asarray(array, dtype)
    return numpy_helper.from_array(a, name), a.astype(np.float32)


def make_model(inits, nodes_before=(), inputs=None, extra_nodes=(), input_shape=(1, 1, 28, 28),
               first_input="X"):
    nodes = list(nodes_before) + [
        helper.make_node("Conv", [first_input, "W1", "B1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["Y"], transB=1),
    ] + list(extra_nodes)
    if inputs is None:
        inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(input_shape))]
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 10])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def save(model, path, check_model=True):
    if check_model:
        onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def close(probs, want, tol=2e-6):
    return probs is not None and np.allclose(np.array(probs, np.float64), want, atol=tol, rtol=0)


def test_weight_types(tmp):
    for name, ty in [("float16", TensorProto.FLOAT16), ("float64", TensorProto.DOUBLE),
                     ("bfloat16", TensorProto.BFLOAT16)]:
        parts = [tensor(n, a, ty) for n, a in [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]
        # the weights are converted to float32 by a Cast, as exporters write
        # float16 models; W2 stays as a Constant node's value
        protos = [p for p, _ in parts]
        for p in protos:
            p.name += "_q"
        const = helper.make_node("Constant", [], ["W2_q"], value=protos[2])
        casts = [helper.make_node("Cast", [n + "_q"], [n], to=TensorProto.FLOAT)
                 for n in ("W1", "B1", "W2", "B2")]
        model = make_model([protos[0], protos[1], protos[3]], nodes_before=[const] + casts)
        path = os.path.join(tmp, f"{name}.onnx")
        save(model, path)
        r, out = classify(path)
        want = reference(*[a for _, a in parts])
        check(r.returncode == 0 and close(out["probs"], want), f"{name} weights match PyTorch",
              r.stderr + r.stdout[:300])
        check(out is not None and out.get("layout") == "nchw", f"{name}: layout nchw in JSON",
              r.stdout[:300])
        # the same weights as direct initializers (no Cast): loaded as float32
        direct = [tensor(n, a, ty)[0] for n, a in [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]
        path = os.path.join(tmp, f"{name}_direct.onnx")
        save(make_model(direct), path, check_model=False)
        r, out = classify(path)
        check(r.returncode == 0 and close(out["probs"], want), f"{name} initializers, no Cast",
              r.stderr)


def external_model(tmp, layout):
    """Saves the fp32 model with every weight in external data described by
    layout: a function (name, raw bytes) -> list of (key, value) entries."""
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]
    for t in inits:
        raw = t.raw_data
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in layout(t.name, raw):
            e = t.external_data.add()
            e.key, e.value = k, v
    path = os.path.join(tmp, "model.onnx")
    save(make_model(inits), path, check_model=False)
    return path


def one_line_exit2(r, what, needle):
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and needle in r.stderr and not r.stdout,
          what, f"rc {r.returncode}: {r.stderr!r}")


def strace_opens(args):
    """The files a run opens (strace comes with scripts/install-deps)."""
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", EVMAP] + args,
                       capture_output=True, text=True, timeout=120)
    return [l for l in r.stderr.splitlines() if "open" in l]


def test_external(tmp):
    want = reference(W1, B1, W2, B2)
    # one shared file with offsets
    d = os.path.join(tmp, "ext_ok")
    os.makedirs(d)
    blob = bytearray()

    def shared(name, raw):
        nonlocal blob
        blob += b"\0" * (-len(blob) % 16)
        off = len(blob)
        blob += raw
        return [("location", "weights.bin"), ("offset", str(off)), ("length", str(len(raw))),
                ("checksum", "0" * 40)]
    path = external_model(d, shared)
    with open(os.path.join(d, "weights.bin"), "wb") as f:
        f.write(blob)
    r, out = classify(path)
    check(r.returncode == 0 and close(out["probs"], want), "external data, one file with offsets",
          r.stderr)
    # one file per tensor, in a subfolder, no offset or length
    d = os.path.join(tmp, "ext_files")
    os.makedirs(os.path.join(d, "data"))

    def per_file(name, raw):
        with open(os.path.join(d, "data", name + ".bin"), "wb") as f:
            f.write(raw)
        return [("location", "data/" + name + ".bin")]
    path = external_model(d, per_file)
    r, out = classify(path)
    check(r.returncode == 0 and close(out["probs"], want), "external data, one file per tensor",
          r.stderr)
    # onnx's own writer
    d = os.path.join(tmp, "ext_onnx")
    os.makedirs(d)
    m = make_model([numpy_helper.from_array(a, n) for n, a in
                    [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]])
    onnx.save_model(m, os.path.join(d, "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    r, out = classify(os.path.join(d, "m.onnx"))
    check(r.returncode == 0 and close(out["probs"], want), "external data written by onnx.save_model",
          r.stderr)
    # the memory limit counts external data
    # the file's check passes (twice 452 bytes), the external tensors do not
    r, _ = classify(os.path.join(d, "m.onnx"), "--max-memory", "1000")
    one_line_exit2(r, "external data counted in --max-memory", "with tensor 'W1', above the memory")

    # hostile ones: a secret beside the folder must never be opened
    secret = os.path.join(tmp, "secret.bin")
    with open(secret, "wb") as f:
        f.write(b"\x01" * 4096)
    cases = [
        ("absolute path", lambda n, raw: [("location", secret)], "absolute path"),
        ("../ path", lambda n, raw: [("location", "../secret.bin")], "leaves the model's folder"),
        ("./../ path", lambda n, raw: [("location", "sub/../../secret.bin")],
         "leaves the model's folder"),
        ("symbolic link out", lambda n, raw: [("location", "link.bin")], "outside the model's folder"),
        ("symbolic folder out", lambda n, raw: [("location", "dirlink/secret.bin")],
         "outside the model's folder"),
        ("offset past the end", lambda n, raw: [("location", "w.bin"), ("offset", "4000"),
                                                 ("length", str(len(raw)))], "passes its end"),
        ("length past the end", lambda n, raw: [("location", "w.bin"), ("length", "5000")],
         "passes its end"),
        ("length not the tensor's", lambda n, raw: [("location", "w.bin"),
                                                     ("length", str(len(raw) - 4))], "need"),
        ("huge offset", lambda n, raw: [("location", "w.bin"), ("offset", "18446744073709551615")],
         "not a byte count"),
        ("no location", lambda n, raw: [("offset", "0")], "names no location"),
        ("missing file", lambda n, raw: [("location", "nothere.bin")], "cannot open"),
        ("a folder", lambda n, raw: [("location", "sub")], "not a regular file"),
    ]
    for i, (what, layout, needle) in enumerate(cases):
        d = os.path.join(tmp, f"hostile{i}")
        os.makedirs(os.path.join(d, "sub"))
        with open(os.path.join(d, "w.bin"), "wb") as f:
            f.write(b"\0" * 4096)
        os.symlink(secret, os.path.join(d, "link.bin"))
        os.symlink(tmp, os.path.join(d, "dirlink"))
        path = external_model(d, layout)
        r, _ = classify(path)
        one_line_exit2(r, f"hostile external data: {what}", needle)
        opens = strace_opens(["classify", "--preprocess", "none", "--model", path, IMAGE])
        bad = [l for l in opens if "secret.bin" in l and "ENOENT" not in l]
        check(bool(opens) and not bad, f"{what}: secret never opened", "\n".join(bad))
    # an in-folder symbolic link to an in-folder file is fine
    d = os.path.join(tmp, "ext_link_in")
    os.makedirs(d)
    with open(os.path.join(d, "real.bin"), "wb") as f:
        pass
    blob2 = bytearray()

    def linked(name, raw):
        off = len(blob2)
        blob2.extend(raw)
        return [("location", "alias.bin"), ("offset", str(off)), ("length", str(len(raw)))]
    path = external_model(d, linked)
    with open(os.path.join(d, "real.bin"), "wb") as f:
        f.write(blob2)
    os.symlink("real.bin", os.path.join(d, "alias.bin"))
    r, out = classify(path)
    check(r.returncode == 0 and close(out["probs"], want), "in-folder symbolic link is read",
          r.stderr)


def test_nan_weights(tmp):
    """A NaN in the weights reaches the output, as in PyTorch: evmap must not
    turn it into a plausible number (Relu once mapped NaN to 0)."""
    w1 = W1.copy()
    w1[0, 0, 1, 1] = np.nan
    inits = [numpy_helper.from_array(a, n) for n, a in [("W1", w1), ("B1", B1), ("W2", W2),
                                                         ("B2", B2)]]
    path = os.path.join(tmp, "nan.onnx")
    save(make_model(inits), path)
    r, out = classify(path)
    want = reference(w1, B1, W2, B2)
    finite = out is not None and np.all(np.isfinite(np.array(out["probs"], np.float64)))
    check(np.all(np.isnan(want)) and (r.returncode != 0 or not finite),
          "NaN weights: no finite probabilities (PyTorch gives NaN)", r.stdout[:300] + r.stderr)


def test_memory_load(tmp):
    """The C API (through build/tests/load_model, which links the library of
    this build, sanitized or not): evmap_model_load_memory refuses external
    data with a clear message; evmap_model_load_with_options takes a layout."""
    tool = os.path.join(BUILD, "tests", "load_model")
    path = os.path.join(tmp, "ext_ok", "model.onnx")

    def run(*args):
        r = subprocess.run([tool, *args], capture_output=True, text=True)
        return r.stdout.strip() + r.stderr.strip()

    out = run("memory", path)
    check(out != "ok" and "loaded from memory cannot read external data" in out,
          "memory load refuses external data", out)
    out = run("defaults")
    check(out == "layout 0 max_memory 0", "load options defaults", out)
    out = run("file", path, "0")
    check(out == "ok", "evmap_model_load_with_options reads external data", out)
    out = run("file", path, "7")
    check(out != "ok" and "unknown input layout" in out, "bad layout refused", out)


def test_nhwc(tmp):
    want = reference(W1, B1, W2, B2)
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]
    tr = helper.make_node("Transpose", ["X"], ["Xt"], perm=[0, 3, 1, 2])
    model = make_model(inits, nodes_before=[tr], input_shape=(1, 28, 28, 1), first_input="Xt")
    path = os.path.join(tmp, "nhwc.onnx")
    save(model, path)
    r, out = classify(path)
    check(r.returncode == 0 and close(out["probs"], want) and out["layout"] == "nhwc",
          "NHWC model detected, matches PyTorch on NCHW", r.stderr + r.stdout[:300])
    r2, out2 = classify(path, "--layout", "nhwc")
    check(r2.returncode == 0 and out2["probs"] == out["probs"], "--layout nhwc", r2.stderr)
    r3, _ = classify(path, "--layout", "nchw")
    one_line_exit2(r3, "--layout nchw on an NHWC model", "28 channels")
    r4, _ = classify(path, "--layout", "sideways")
    one_line_exit2(r4, "--layout bad value", "--layout must be")
    # a square NCHW-looking NHWC model: (1, 3, 3, 3) is ambiguous, auto takes NCHW
    # 28x28 gray NCHW stays NCHW under auto
    nchw = os.path.join(tmp, "nchw.onnx")
    save(make_model([numpy_helper.from_array(a, n) for n, a in
                     [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]), nchw)
    r5, out5 = classify(nchw, "--layout", "auto")
    check(r5.returncode == 0 and out5["layout"] == "nchw" and close(out5["probs"], want),
          "NCHW stays NCHW", r5.stderr)
    # explain on the NHWC model: gradients flow through the inserted Transpose,
    # the map equals the NCHW model's
    maps = []
    for m in (nchw, path):
        o = os.path.join(tmp, "out_" + os.path.basename(m))
        r = run(["explain", "--method", "saliency", "--preprocess", "none", "--out", o, "--quiet",
                 "--model", m, IMAGE])
        js = [f for f in os.listdir(o) if f.endswith(".json")] if r.returncode == 0 else []
        npy = [f for f in os.listdir(o) if f.endswith(".npy")] if r.returncode == 0 else []
        if js and npy:
            meta = json.load(open(os.path.join(o, js[0])))
            maps.append((meta.get("layout"), np.load(os.path.join(o, npy[0]))))
        else:
            check(False, f"explain {os.path.basename(m)}", r.stderr)
    if len(maps) == 2:
        check(maps[0][0] == "nchw" and maps[1][0] == "nhwc", "explain JSON layout",
              f"{maps[0][0]} {maps[1][0]}")
        check(np.allclose(maps[0][1], maps[1][1], atol=1e-6), "NHWC gradient map equals NCHW's")


def test_inputs(tmp):
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]]
    two = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 28, 28]),
           helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 10])]
    add = helper.make_node("Add", ["Y0", "extra"], ["Y"])
    model = make_model(inits, inputs=two)
    model.graph.node[-1].output[0] = "Y0"
    model.graph.node.append(add)
    path = os.path.join(tmp, "two.onnx")
    save(model, path)
    r, _ = classify(path)
    one_line_exit2(r, "two inputs refused, named", "'X', 'extra'")
    # initializers listed as inputs (older IR) are not inputs
    old = make_model(inits)
    old.graph.input.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
                            for n, a in [("W1", W1), ("B1", B1), ("W2", W2), ("B2", B2)]])
    path = os.path.join(tmp, "old_ir.onnx")
    save(old, path, check_model=False)
    r, out = classify(path)
    check(r.returncode == 0, "initializers listed as inputs", r.stderr)
    # rank 3 input
    bad = make_model(inits, input_shape=(1, 28, 28))
    path = os.path.join(tmp, "rank3.onnx")
    save(bad, path, check_model=False)
    r, _ = classify(path)
    one_line_exit2(r, "rank-3 input refused", "it is float32 of rank 3")
    # a float16 input
    half = make_model(inits)
    half.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    path = os.path.join(tmp, "half_input.onnx")
    save(half, path, check_model=False)
    r, _ = classify(path)
    one_line_exit2(r, "float16 input refused, named", "graph input 'X' has data type float16")


def main():
    if not os.path.exists(EVMAP):
        print(f"{EVMAP} is missing: build first")
        return 1
    tmp = tempfile.mkdtemp(prefix="evmap-files-")
    try:
        test_weight_types(tmp)
        test_external(tmp)
        test_memory_load(tmp)
        test_nhwc(tmp)
        test_inputs(tmp)
        test_nan_weights(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
