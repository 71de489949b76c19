#!/usr/bin/python3
"""Exact locality (DESIGN.md 1.2): maps with and without --no-locality agree.

evmap explain runs twice on the same image, sampler and seed: with exact
locality (the default: each window's receptive-field cone recomputed on the
cached activations of the unperturbed image) and with --no-locality (every
perturbed image through the whole network). The maps must agree within 1e-4
(log2 odds) and to 1% of the largest |value|, and leave the same pixels NaN; the JSON must say which path ran
and report less arithmetic for the local one.

* Fashion-MNIST models (models/*.onnx; fashion_resnet when present): full
  maps at stride 1 and 2, two classes, a hidden-unit target, occlusion (S=1).
* random-weight torchvision models (build/models/, exported by
  scripts/export_torchvision.py when missing) on a random 224x224 image:
  small regions of interest at the image corners and borders (where padding
  and clipped cones matter) with strides 1 to 3, S = 2 marginal samples.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
EVMAP = os.path.join(BUILD, "evmap")
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
DEMO = os.path.join(ROOT, "data", "demo")
TOL = 1e-4


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def explain(model, image, out, args):
    cmd = [EVMAP, "explain", "--model", model, "--out", out, "--quiet", *args, image]
    subprocess.run(cmd, check=True)
    stem = os.path.splitext(os.path.basename(image))[0]
    with open(os.path.join(out, stem + ".pda.json")) as f:
        summary = json.load(f)
    maps = sorted(n for n in os.listdir(out) if n.endswith(".npy"))
    return summary, [np.load(os.path.join(out, n)) for n in maps]


def compare(name, model, image, args, tmp):
    """Runs both paths; returns True when the maps agree."""
    out = os.path.join(tmp, "".join(ch if ch.isalnum() else "_" for ch in name))
    local, maps_l = explain(model, image, out + "-local", args)
    naive, maps_n = explain(model, image, out + "-naive", args + ["--no-locality"])
    ok = len(maps_l) == len(maps_n) > 0
    diff = scale = 0.0
    for a, b in zip(maps_l, maps_n):
        same_nan = np.array_equal(np.isnan(a), np.isnan(b))
        ok &= same_nan
        if np.isfinite(b).any():
            diff = max(diff, float(np.nanmax(np.abs(a - b))))
            scale = max(scale, float(np.nanmax(np.abs(b))))
    loc = local["locality"]
    frac = loc["arithmetic_fraction"]
    # random-weight models give small weights of evidence: the maps must also
    # agree to 1% of their largest value, so that a wrong cone cannot hide
    # (below 1e-5 that is float32 noise of the unperturbed logits themselves)
    ok &= diff <= TOL and (scale < 1e-5 or diff <= 1e-2 * scale) and loc["enabled"] and not naive["locality"]["enabled"]
    ok &= frac <= 1.0 and naive["locality"]["arithmetic_fraction"] == 1
    speed = naive["seconds"] / max(local["seconds"], 1e-9)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max|diff| {diff:.2e} (max|WE| {scale:.3g}), "
          f"{local['windows']} windows, {loc['local_steps']}/{loc['steps']} steps local, "
          f"arithmetic {frac:.3f}, {speed:.1f}x faster", flush=True)
    return ok


def export_untrained(kind, path):
    """An untrained Fashion-MNIST architecture (scripts/fashion_models.py) with
    randomised BatchNorm statistics, for when the trained file is missing:
    locality depends on the architecture, not on the weights."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import torch
    import fashion_models
    torch.manual_seed(0)
    model = fashion_models.MODELS[kind]()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        model.fc.weight.mul_(30.0)  # sharper probabilities: weights of evidence of ~1
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def fashion_cases(tmp):
    cases = []
    for name in ("fashion_cnn", "fashion_resnet"):
        path = os.path.join(ROOT, "models", name + ".onnx")
        if not os.path.exists(path):
            path = os.path.join(tmp, name + "-untrained.onnx")
            print(f"note: models/{name}.onnx is not there; using an untrained {name}")
            export_untrained(name.split("_")[1], path)
        marg = ["--sampler", "marginal", "--reference", TRAIN, "--samples", "10"]
        cases += [
            (f"{name} full map stride 1", path, "9_ankle_boot", marg + ["--class", "9,7"]),
            (f"{name} full map stride 2", path, "6_shirt", marg + ["--stride", "2"]),
            (f"{name} stride 3 no Laplace", path, "8_bag",
             marg + ["--stride", "3", "--no-laplace"]),
            (f"{name} occlusion S=1", path, "7_sneaker",
             ["--sampler", "constant", "--fill", "zero", "--class", "7"]),
        ]
    cnn = os.path.join(ROOT, "models", "fashion_cnn.onnx")
    if os.path.exists(cnn):
        cases.append(("fashion_cnn hidden unit conv3:5", cnn, "4_coat", ["--sampler", "marginal", "--reference", TRAIN, "--samples", "10",
                                 "--target", "/conv3/Conv_output_0:5", "--roi", "2,2,20,20"]))
    return [(n, m, os.path.join(DEMO, s + ".png"), a) for n, m, s, a in cases]


# ROIs (x, y, w, h) with a stride: corners and borders. k = 10.
TORCH_ROIS = [
    ("top-left corner s2", (0, 0, 14, 14), 2),
    ("bottom-right corner s3", (208, 208, 16, 16), 3),
    ("right border s1", (213, 100, 11, 11), 1),
]
TORCH_MODELS = ["alexnet", "vgg16", "resnet18", "googlenet", "mobilenet_v2", "densenet121"]
# EVMAP_QUICK (the sanitized pass of make test): a residual and a branching model.
QUICK_MODELS = ["resnet18", "googlenet"]


def last_feature_map(path):
    """Name of the value the model's global pooling (or Flatten) reads."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    for node in graph.node:
        if node.op_type in ("GlobalAveragePool", "Flatten"):
            return node.input[0]
    raise RuntimeError(f"{path}: no GlobalAveragePool or Flatten")


def torch_cases(tmp):
    rng = np.random.default_rng(1)
    image = os.path.join(tmp, "random224.png")
    write_png(image, rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    refs = os.path.join(tmp, "refs")
    os.makedirs(refs)
    for i in range(2):
        write_png(os.path.join(refs, f"r{i}.png"), rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    cases = []
    quick = os.environ.get("EVMAP_QUICK") == "1"
    for m in QUICK_MODELS if quick else TORCH_MODELS:
        path = os.path.join(os.environ.get("MODELS", os.path.join(BUILD, "models")), m + ".onnx")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_torchvision.py"),
                            "--out", os.path.dirname(path), m], check=True)
        for i, (what, roi, stride) in enumerate(TORCH_ROIS):
            # two ROIs per model keep the run short; every model sees a corner
            if (i + TORCH_MODELS.index(m)) % 3 == 2:
                continue
            args = ["--sampler", "marginal", "--reference", refs, "--samples", "2",
                    "--no-laplace", "--roi", ",".join(map(str, roi)), "--stride", str(stride),
                    "--threads", "2"]
            # random weights leave the class probabilities nearly flat; the
            # mean of a channel of the last feature map moves far more
            if i == 0:
                args += ["--class", "3,500"]
            else:
                args += ["--target", last_feature_map(path) + ":3"]
            target = "classes 3,500" if i == 0 else "unit " + args[-1]
            cases.append((f"{m} {what} {target}", path, image, args))
    return cases


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="evmap-locality-") as tmp:
        cases = fashion_cases(tmp)
        if "--fashion-only" not in sys.argv:
            cases += torch_cases(tmp)
        for name, model, image, args in cases:
            try:
                ok = compare(name, model, image, args, tmp)
            except Exception as e:  # report and go on
                print(f"FAIL {name}: {e}")
                ok = False
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
