#!/usr/bin/python3
"""Bad input: every case gives exit code 2 and one clear line on stderr.

Builds small valid and broken ONNX models with the onnx helper API and broken
image files in a temporary folder, runs `evmap classify` on each and checks
the exit code, that stderr is one line mentioning what it should, and that
nothing crashed (a signal gives a negative return code).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")


def tiny_model(op="Relu", with_weights=True, input_shape=(1, 1, 8, 8), opset=13, attrs=None):
    """A 1x8x8 -> 3-class classifier: op (with attributes attrs), Flatten, Gemm."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape[1:]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    k = int(np.prod(input_shape[1:]))
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((3, k)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(3, np.float32), "B")]
    nodes = [helper.make_node(op, ["x"], ["a"], name="first", **(attrs or {})),
             helper.make_node("Flatten", ["a"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "W", "B"], ["y"], name="classifier", transB=1)]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits if with_weights else inits[1:])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def write_png_gray(path, w, h):
    import struct
    import zlib
    raw = b"".join(b"\x00" + bytes((x * 7 + y) % 256 for x in range(w)) for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    tmp = tempfile.mkdtemp()
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    onnx.save(tiny_model(), p("good.onnx"))
    onnx.save(tiny_model(op="Hardmax"), p("unsupported.onnx"))
    onnx.save(tiny_model(with_weights=False), p("missing_init.onnx"))
    onnx.save(tiny_model(input_shape=(1, 1, 8)), p("rank3.onnx"))
    onnx.save(tiny_model(attrs={"frobnicate": 1}), p("unknown_attr.onnx"))
    # An attribute of another operator (Add-1..6 had broadcast) is refused.
    onnx.save(tiny_model(op="LeakyRelu", attrs={"alpha": 0.1, "broadcast": 1}),
              p("stray_attr.onnx"))
    # A node naming an output its operator does not have (found by fuzzing:
    # it was an internal error, exit 1).
    extra = tiny_model()
    extra.graph.node[0].output.append("extra")
    onnx.save(extra, p("extra_output.onnx"))
    # A required input left unnamed (found by fuzzing: a null dereference).
    unnamed = tiny_model()
    unnamed.graph.node[1].input[0] = ""
    onnx.save(unnamed, p("unnamed_input.onnx"))
    # Relu-1's in-place hint cannot change a value: accepted.
    onnx.save(tiny_model(attrs={"consumed_inputs": [0]}, opset=5), p("legacy_hint.onnx"))
    good = open(p("good.onnx"), "rb").read()
    open(p("truncated.onnx"), "wb").write(good[: len(good) // 2])
    open(p("garbage.onnx"), "wb").write(b"this is not a protobuf \xff\xff\xff\xff" * 10)
    write_png_gray(p("img8.png"), 8, 8)
    write_png_gray(p("img9.png"), 9, 9)
    png = open(p("img8.png"), "rb").read()
    open(p("truncated.png"), "wb").write(png[: len(png) - 20])
    open(p("notimage.png"), "wb").write(b"hello, world\n" * 10)
    open(p("truncated.jpg"), "wb").write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    write_png_gray(p("big.png"), 2000, 1500)  # decoding takes 2000 * 1500 * 20 bytes = 57 MiB
    fashion = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models",
                           "fashion_cnn.onnx")
    demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "demo",
                        "0_tshirt.png")
    t10k = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"  # 7.5 MiB inflated

    cases = [
        # (description, args, words expected in the message)
        ("valid run", ["--model", p("good.onnx"), p("img8.png")], None),
        ("nonexistent model", ["--model", p("nope.onnx"), p("img8.png")], ["nope.onnx"]),
        ("truncated model", ["--model", p("truncated.onnx"), p("img8.png")], ["truncated.onnx"]),
        ("garbage model", ["--model", p("garbage.onnx"), p("img8.png")], ["ONNX"]),
        ("unsupported operator", ["--model", p("unsupported.onnx"), p("img8.png")],
         ["first", "Hardmax", "Conv"]),
        ("missing initializer", ["--model", p("missing_init.onnx"), p("img8.png")],
         ["classifier", "W"]),
        ("unknown attribute", ["--model", p("unknown_attr.onnx"), p("img8.png")],
         ["first", "frobnicate", "Relu"]),
        ("attribute of another op", ["--model", p("stray_attr.onnx"), p("img8.png")],
         ["first", "broadcast", "LeakyRelu"]),
        ("output the operator lacks", ["--model", p("extra_output.onnx"), p("img8.png")],
         ["first", "extra", "Relu"]),
        ("required input without a name", ["--model", p("unnamed_input.onnx"), p("img8.png")],
         ["flatten", "input 1", "required"]),
        ("legacy consumed_inputs", ["--model", p("legacy_hint.onnx"), p("img8.png")], None),
        ("wrong input rank", ["--model", p("rank3.onnx"), p("img8.png")], ["rank"]),
        ("wrong image size", ["--model", p("good.onnx"), p("img9.png")], ["9", "8"]),
        ("truncated PNG", ["--model", p("good.onnx"), p("truncated.png")], ["truncated.png"]),
        ("not an image", ["--model", p("good.onnx"), p("notimage.png")], ["notimage.png"]),
        ("truncated JPEG", ["--model", p("good.onnx"), p("truncated.jpg")], ["truncated.jpg"]),
        ("nonexistent image", ["--model", p("good.onnx"), p("missing.png")], ["missing.png"]),
        ("missing --model", [p("img8.png")], ["--model"]),
        ("unknown option", ["--model", p("good.onnx"), "--frobnicate", p("img8.png")],
         ["--frobnicate"]),
        ("bad --top", ["--model", p("good.onnx"), "--top", "zero", p("img8.png")], ["--top"]),
        # --max-memory: refused before the allocation, with sizes and the option named.
        ("bad --max-memory", ["--model", p("good.onnx"), "--max-memory", "12Q", p("img8.png")],
         ["--max-memory", "12Q"]),
        ("model over --max-memory", ["--model", fashion, "--max-memory", "3M", demo],
         ["fashion_cnn.onnx", "3.0 MiB", "--max-memory"]),
        ("image over --max-memory", ["--model", p("good.onnx"), "--max-memory", "40M",
                                     p("big.png")], ["big.png", "2000 x 1500", "--max-memory"]),
        ("IDX data over --max-memory", ["--model", fashion, "--max-memory", "6M", t10k],
         ["t10k", "7.5 MiB", "--max-memory"]),
        ("batch over --max-memory", ["--model", fashion, "--max-memory", "5M", "--batch", "64",
                                     *[demo] * 64], ["64,1,28,28", "--batch", "--max-memory"]),
        ("same job in batches of 1", ["--model", fashion, "--max-memory", "5M", "--batch", "1",
                                      *[demo] * 64], None),
        *[(f"--max-memory {v}", ["--model", p("good.onnx"), "--max-memory", v, p("img8.png")],
           None) for v in ("1.5G", "512MiB", "64MB", "100000000", "none")],
        *[(f"bad --max-memory {v}", ["--model", p("good.onnx"), "--max-memory", v,
                                      p("img8.png")], ["--max-memory"])
          for v in ("-1G", "8X", "1e40", "G", "")],
        ("big image without limit", ["--model", p("good.onnx"), "--max-memory", "0",
                                     "--size", "8x8", "--preprocess", "none", p("big.png")], None),
    ]
    passed = failed = 0
    for desc, args, words in cases:
        r = subprocess.run([EVMAP, "classify", *args], capture_output=True, text=True)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        problems = []
        if words is None:
            if r.returncode != 0:
                problems.append(f"exit {r.returncode}: {r.stderr.strip()}")
        else:
            if r.returncode != 2:
                problems.append(f"exit code {r.returncode}, expected 2")
            if len(lines) != 1:
                problems.append(f"{len(lines)} lines on stderr: {r.stderr!r}")
            missing = [w for w in words if w not in r.stderr]
            if missing:
                problems.append(f"message lacks {missing}: {r.stderr.strip()!r}")
        if problems:
            failed += 1
            print(f"FAIL {desc}: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"ok   {desc}: {lines[0] if lines else 'exit 0'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
