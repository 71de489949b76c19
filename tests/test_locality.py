#!/usr/bin/python3
"""Exact locality (DESIGN.md 1.2): maps with and without --no-locality agree.

evmap explain runs twice on the same image, sampler and seed: with exact
locality (the default: each window's receptive-field cone recomputed on the
cached activations of the unperturbed image) and with --no-locality (every
perturbed image through the whole network). The maps must agree within 1e-4
(log2 odds) and to 1% of the largest |value|, and leave the same pixels NaN;
the JSON must say which path ran and report less arithmetic for the local
one. Every case must have real evidence (largest |value| at least
MIN_EVIDENCE, or 5e-5 of a hidden unit's value): on a near-zero map the 1%
bound is float32 noise and could not fail, so such a case fails rather than
passing unseen.

* Fashion-MNIST models (models/*.onnx; fashion_resnet when present): full
  maps at stride 1 and 2, two classes, a hidden-unit target, occlusion (S=1).
* random-weight torchvision models (build/models/, exported by
  scripts/export_torchvision.py when missing) on a random 224x224 image:
  small regions of interest at the image corners and borders (where padding
  and clipped cones matter) with strides 1 to 3, S = 2 marginal samples.
  Their class probabilities are nearly flat (largest |WE| for a class below
  1e-5), so every target is one of the two channels of the last feature map
  with the largest mean on the image (dead channels carry no evidence);
  classes are covered by the Fashion-MNIST cases. Models with BatchNorm are
  the calibrated exports (export_torchvision.py's CALIBRATED).
* the first Fashion-MNIST case again with --threads 1 and 2: two locality
  engines (JSON `engines`) give the same bits as one.
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
MIN_EVIDENCE = 1e-3  # largest |value| a case's maps must reach


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


def compare(name, model, image, args, tmp, min_evidence=MIN_EVIDENCE):
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
    # the maps must also agree to 1% of their largest value, so that a wrong
    # cone cannot hide behind small values; a map without real evidence
    # (below MIN_EVIDENCE: float32 noise of the unperturbed outputs) fails
    ok &= scale >= min_evidence and diff <= TOL and diff <= 1e-2 * scale
    ok &= loc["enabled"] and not naive["locality"]["enabled"]
    ok &= frac <= 1.0 and naive["locality"]["arithmetic_fraction"] == 1
    speed = naive["seconds"] / max(local["seconds"], 1e-9)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max|diff| {diff:.2e} (max|WE| {scale:.3g}, "
          f"at least {min_evidence:.2g}), "
          f"{local['windows']} windows, {loc['local_steps']}/{loc['steps']} steps local, "
          f"arithmetic {frac:.3f}, {speed:.1f}x faster", flush=True)
    return ok


def threads_agree(name, model, image, args, tmp):
    """With two threads a small map runs on two locality engines, each
    taking whole windows; the draws are made in window order first, so the
    map must be the same bits as with one thread (one engine)."""
    out = os.path.join(tmp, "".join(ch if ch.isalnum() else "_" for ch in name))
    one, maps_1 = explain(model, image, out + "-t1", args + ["--threads", "1"])
    two, maps_2 = explain(model, image, out + "-t2", args + ["--threads", "2"])
    engines = (one["locality"]["engines"], two["locality"]["engines"])
    same = len(maps_1) == len(maps_2) > 0 and all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(maps_1, maps_2))
    ok = same and engines == (1, 2)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: --threads 1 and 2 give "
          f"{'the same' if same else 'different'} maps, engines {engines[0]} and {engines[1]}",
          flush=True)
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
CALIBRATED = ("resnet18", "googlenet", "mobilenet_v2", "densenet121")  # export_torchvision.py's


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
        # the calibrated exports where there is one: with random BatchNorm
        # statistics some models' maps hold no evidence to compare
        name = m + "_calibrated" if m in CALIBRATED else m
        path = os.path.join(os.environ.get("MODELS", os.path.join(BUILD, "models")), name + ".onnx")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_torchvision.py"),
                            "--out", os.path.dirname(path), name], check=True)
        layer = last_feature_map(path)
        units = liveliest_units(path, image, layer)
        for i, (what, roi, stride) in enumerate(TORCH_ROIS):
            # two ROIs per model keep the run short; every model sees a corner
            if (i + TORCH_MODELS.index(m)) % 3 == 2:
                continue
            args = ["--sampler", "marginal", "--reference", refs, "--samples", "2",
                    "--no-laplace", "--roi", ",".join(map(str, roi)), "--stride", str(stride),
                    "--threads", "2"]
            # random weights leave the class probabilities nearly flat; the
            # mean of a live channel of the last feature map moves far more
            channel, value = units[i % len(units)]
            args += ["--target", f"{layer}:{channel}"]
            # real evidence: at least 5e-5 of the unit's value, so that the
            # 1 % bound (5e-7 of it) sits above the float32 noise of the two
            # paths (measured up to 8e-8 of it)
            cases.append((f"{m} {what} unit {layer}:{channel}", path, image, args,
                          5e-5 * value))
    return cases


def liveliest_units(path, image, layer, n=2):
    """(channel, mean activation) of the n channels of layer with the
    largest mean on the image, from evmap's forward (grad_model --dump):
    only to choose targets that carry evidence."""
    import onnx
    from PIL import Image
    graph = onnx.shape_inference.infer_shapes(onnx.load(path)).graph
    info = [v for v in graph.value_info if v.name == layer][0]
    channels = info.type.tensor_type.shape.dim[1].dim_value
    x = np.asarray(Image.open(image), dtype=np.float32).transpose(2, 0, 1) / 255.0
    with tempfile.TemporaryDirectory() as tmp:
        inp, g, act = (os.path.join(tmp, f) for f in ("x.f32", "g.f32", "a.f32"))
        x.tofile(inp)
        subprocess.run([os.path.join(BUILD, "tests", "grad_model"), path, inp, "logit", "0", g,
                        "--dump", layer, act], check=True, capture_output=True)
        means = np.fromfile(act, dtype=np.float32).reshape(channels, -1).mean(1)
    order = np.argsort(-means)[:n]
    return [(int(c), float(means[c])) for c in order]


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="evmap-locality-") as tmp:
        cases = fashion_cases(tmp)
        if "--fashion-only" not in sys.argv:
            cases += torch_cases(tmp)
        for name, model, image, args, *min_evidence in cases:
            try:
                ok = compare(name, model, image, args, tmp, *min_evidence)
            except Exception as e:  # report and go on
                print(f"FAIL {name}: {e}")
                ok = False
            passed += ok
            failed += not ok
        # the first Fashion case again, on one thread and on two engines
        name, model, image, args, *_ = cases[0]
        try:
            ok = threads_agree(name + " (threads)", model, image, args, tmp)
        except Exception as e:
            print(f"FAIL {name} (threads): {e}")
            ok = False
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
