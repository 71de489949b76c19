#!/usr/bin/python3
"""The efficient method (DESIGN.md 1.3) against exact PDA and gradients.

- `--split output` is exact PDA (max |difference| <= 1e-4 of max |WE|),
  with the conditional sampler;
- expanded around each window's mean with one draw per window (the constant
  sampler), any split gives exact PDA too (the mean of one sample is the
  sample);
- the gradient limit: `--split input --expand image`, k = 1, the constant
  zero sampler, one draw, no Laplace correction gives gradient x input of
  the class log-odds divided by ln 2 (within 1e-4 relative); with a constant
  fill v it gives sum_c dlo/dx_c (x_c - v) / ln 2 for every v, so with
  v = x - eps (per pixel) the map divided by eps is the gradient / ln 2;
- refinement: when every window is refined (Q just below 1) the map, made
  with a coarse pass first, equals Q = 1's (the coarse pass draws from its
  own random stream); at Q = 0.5 the JSON records it and half the windows;
- bad options exit 2 with one line.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.environ.get("EVMAP", os.path.join(BUILD, "evmap"))
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")
MODEL = "models/fashion_cnn.onnx"
RESNET = "models/fashion_resnet.onnx"
IMAGE = "data/demo/9_ankle_boot.png"
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def explain(tmp, name, method, *args, model=MODEL):
    out = os.path.join(tmp, name)
    subprocess.run([EVMAP, "explain", "--model", model, "--out", out, "--method", method,
                    "--class", "9", "--quiet", *args, IMAGE], check=True)
    with open(os.path.join(out, f"9_ankle_boot.{method}.json")) as f:
        meta = json.load(f)
    return np.load(os.path.join(out, f"9_ankle_boot.{method}.c9.npy")).astype(np.float64), meta


def rel(a, b):
    return float(np.nanmax(np.abs(a - b)) / max(np.nanmax(np.abs(b)), 1e-30))


def image_input():
    import PIL.Image
    return np.asarray(PIL.Image.open(IMAGE), dtype=np.float32)[None] / 255.0


def input_gradient(tmp):
    x = image_input()
    inp, out = os.path.join(tmp, "x.f32"), os.path.join(tmp, "g.f32")
    x.tofile(inp)
    subprocess.run([GRAD_MODEL, MODEL, inp, "logodds", "9", out], check=True,
                   capture_output=True)
    return x[0].astype(np.float64), np.fromfile(out, dtype=np.float32).reshape(28, 28)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        k4, k8 = os.path.join(tmp, "k4.evs"), os.path.join(tmp, "k8.evs")
        for path, k in ((k4, 4), (k8, 8)):
            subprocess.run([EVMAP, "fit-sampler", "--model", MODEL, "--window", str(k),
                            "--patches", "4000", "--quiet", "-o", path, TRAIN], check=True)
        pda, _ = explain(tmp, "pda", "pda", "--sampler-file", k4)
        eff, meta = explain(tmp, "out", "efficient", "--sampler-file", k4, "--split", "output")
        e = rel(eff, pda)
        report(e <= 1e-4 and meta["parameters"]["split"] == "output",
               f"--split output = exact PDA: {e:.1e}")

        for model, layer in ((MODEL, "/Relu_1_output_0"), (MODEL, "/MaxPool_output_0"),
                             (RESNET, "/layer1/Relu_output_0")):
            args = ("--sampler", "constant", "--fill", "0.3")
            want, pda_meta = explain(tmp, "occ", "pda", *args, model=model)
            got, meta = explain(tmp, "one", "efficient", *args, "--split", layer, model=model)
            e = rel(got, want)
            report(e <= 1e-4 and meta["parameters"]["split"] == layer,
                   f"{os.path.basename(model)}: one draw, expanded around the window at "
                   f"{layer} = exact PDA: {e:.1e}")
            local = pda_meta["locality"]["local_steps"]
            report(local > 0, f"{os.path.basename(model)}: PDA with one draw uses exact "
                   f"locality ({local} local steps)")

        x, g = input_gradient(tmp)
        limit = ("--split", "input", "--expand", "image", "--window", "1", "--sampler",
                 "constant", "--no-laplace")
        got, _ = explain(tmp, "zero", "efficient", *limit, "--fill", "zero")
        gxi, _ = explain(tmp, "gxi", "gradxinput", "--score", "logodds")
        e = rel(got, gxi / math.log(2))
        report(e <= 1e-4, f"--split input --expand image, k=1, zero fill, S=1 = gradient x "
               f"input / ln 2: {e:.1e}")
        for v in (0.5, -1.0):
            got, _ = explain(tmp, "fill", "efficient", *limit, "--fill", str(v))
            want = g * (x - v) / math.log(2)
            e = rel(got, want)
            report(e <= 1e-4, f"the same with fill {v} = dlo/dx (x - {v}) / ln 2: {e:.1e}")

        full, _ = explain(tmp, "q1", "efficient", "--sampler-file", k4, "--split", "input")
        allq, meta = explain(tmp, "qall", "efficient", "--sampler-file", k4,
                             "--coarse-sampler-file", k8, "--split", "input", "--refine",
                             "0.9999999")
        e = rel(allq, full)
        report(e <= 1e-6 and meta["parameters"]["coarse_windows"] > 0,
               f"every window refined after a coarse pass = Q 1: {e:.1e} "
               f"({meta['parameters']['coarse_windows']} coarse windows)")
        half, meta = explain(tmp, "qhalf", "efficient", "--sampler-file", k4,
                             "--coarse-sampler-file", k8, "--split", "input", "--refine", "0.5")
        fine = meta["windows"] - meta["parameters"]["coarse_windows"]
        report(meta["parameters"]["refine"] == 0.5 and fine == math.ceil(0.5 * 625)
               and np.isfinite(half).all(),
               f"--refine 0.5: {fine} of 625 windows refined, map finite everywhere")

        bad = [
            (["--split", "no_such_layer", "--sampler", "constant"], "no_such_layer"),
            (["--refine", "0", "--sampler", "constant"], "--refine"),
            (["--refine", "0.5", "--sampler-file", k4], "coarse"),
            (["--steps", "3", "--sampler", "constant"], "--steps"),
        ]
        for args, needle in bad:
            out = os.path.join(tmp, "bad")
            r = subprocess.run([EVMAP, "explain", "--model", MODEL, "--out", out, "--quiet",
                                "--method", "efficient", *args, IMAGE],
                               capture_output=True, text=True)
            lines = r.stderr.strip().splitlines()
            ok = r.returncode == 2 and len(lines) == 1 and needle in lines[0]
            report(ok, f"efficient {' '.join(args)}: exit {r.returncode}: "
                   f"{lines[0] if lines else '(nothing)'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
