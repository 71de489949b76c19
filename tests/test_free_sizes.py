#!/usr/bin/python3
"""Models with free image sizes (issue 24), against PyTorch.

The models (exported once into $MODELS, random weights):
  free_resnet18.onnx, free_mobilenet_v2.onnx  torchvision, BatchNorm
      statistics calibrated as scripts/export_torchvision.py does, exported
      with dynamic_axes {0: n, 2: h, 3: w} (the usual export of a fully
      convolutional classifier);
  free_textline.onnx  1 x 32 x W gray "text line" classifier: height fixed at
      32, width free; its second convolution has no padding, so widths
      below 6 leave nothing to convolve;
  free_fixedhead.onnx  a convolution, Flatten and a Linear layer exported with
      free height and width: it runs only at the 32 x 32 it was built for.

1. `evmap classify --json` on one folder of three images of different sizes
   (non-square, odd) for each torchvision model: every image's probabilities
   against PyTorch's softmax of the same pixels, |log p - log p_torch| <=
   2 * 1e-4 * max |logit| (tests/test_wild_models.py), and the JSON's
   input_size is the image's size;
2. a folder of text lines of mixed widths with --batch 2 (each batch one
   width): every line's probabilities against PyTorch's, in input order; a
   taller image is resized to height 32 keeping its aspect ratio; evaluate
   runs the folder at the first image's size;
3. refusals: a line too narrow for the model fails with one line naming the
   node and the size, the other images are still classified and the summary
   names it, exit 2; a single image: exactly one line, exit 2; the fixed-head
   model at 40 x 40 names its Gemm node, and runs at 32 x 32;
4. `evmap explain` at a non-square size: saliency equals max over channels
   of |d log-odds / d input| by float64 autograd taking evmap's side at every
   kink within rounding (tests/kink_reference.py); the efficient method on a
   small region (its sampler fitted on references of two other sizes) runs,
   its map has the image's size, and exact locality gives the map of the
   whole network (--no-locality) there.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import export_torchvision  # noqa: E402
import kink_reference  # noqa: E402  (tests/, the script's folder, is on the path)

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
QUICK = os.environ.get("EVMAP_QUICK") == "1"
TOL = 1e-4  # of max |logit|

passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


class TextLine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3)  # no padding
        self.fc = torch.nn.Linear(16, 5)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x)).mean((2, 3))
        return self.fc(x)


class FixedHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 * 16 * 16, 6)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def export(model, path, channels, height, width, axes):
    if os.path.exists(path):
        return
    warnings.filterwarnings("ignore")
    tmp = path + ".tmp"
    torch.onnx.export(model, torch.zeros(1, channels, height, width), tmp, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": axes, "logits": {0: "n"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    os.replace(tmp, path)


def small_model(cls, seed):
    torch.manual_seed(seed)
    return cls().eval()


def models():
    os.makedirs(MODELS, exist_ok=True)
    out = {}
    for name in ("resnet18", "mobilenet_v2"):
        path = os.path.join(MODELS, f"free_{name}.onnx")
        out[name] = (path, export_torchvision.build_calibrated(name))
        export(out[name][1], path, 3, 224, 224, {0: "n", 2: "h", 3: "w"})
    path = os.path.join(MODELS, "free_textline.onnx")
    out["textline"] = (path, small_model(TextLine, 5))
    export(out["textline"][1], path, 1, 32, 64, {0: "n", 3: "w"})
    path = os.path.join(MODELS, "free_fixedhead.onnx")
    out["fixedhead"] = (path, small_model(FixedHead, 6))
    export(out["fixedhead"][1], path, 3, 32, 32, {0: "n", 2: "h", 3: "w"})
    return out


def write_png(folder, name, height, width, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels == 3 else (height, width)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(os.path.join(folder, name + ".png"))
    x = pixels.astype(np.float32) / 255.0
    return x.transpose(2, 0, 1) if channels == 3 else x[None]


def classify(model_path, *args):
    r = subprocess.run([EVMAP, "classify", "--model", model_path, "--json", *args],
                       capture_output=True, text=True)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r, lines


def torch_logits(model, x):
    with torch.no_grad():
        return model(torch.tensor(x[None]))[0].double()


def prob_error(got_probs, logits):
    """max |log p - log p_torch| over max |logit| (the bound of test_wild_models)."""
    want = torch.log_softmax(logits, 0).numpy()
    got = np.log(np.maximum(np.asarray(got_probs, dtype=np.float64), 1e-300))
    return float(np.abs(got - want).max() / max(float(logits.abs().max()), 1e-30))


def torchvision_sizes(all_models):
    sizes = [(131, 97), (128, 160), (64, 64)] if not QUICK else [(65, 49), (40, 40)]
    for name in ("resnet18", "mobilenet_v2"):
        path, model = all_models[name]
        with tempfile.TemporaryDirectory() as tmp:
            xs = [write_png(tmp, f"img{i}", h, w, 3, 100 + i) for i, (h, w) in enumerate(sizes)]
            r, lines = classify(path, "--batch", "4", tmp)
            report(r.returncode == 0 and len(lines) == len(sizes),
                   f"{name}: classify a folder of {len(sizes)} sizes (exit {r.returncode}"
                   f"{', ' + r.stderr.strip()[:200] if r.returncode else ''})")
            for (h, w), x, line in zip(sizes, xs, lines):
                e = prob_error(line["probs"], torch_logits(model, x))
                report(e <= 2 * TOL and line["input_size"] == [w, h],
                       f"{name} at {w}x{h}: |log p - log p_torch| / max|logit| = {e:.2e}, "
                       f"input_size {line['input_size']}")


def text_lines(all_models):
    path, model = all_models["textline"]
    widths = [40, 64, 40, 100, 64, 40, 41]
    with tempfile.TemporaryDirectory() as tmp:
        xs = [write_png(tmp, f"line{i}", 32, w, 1, 200 + i) for i, w in enumerate(widths)]
        write_png(tmp, "line9_tall", 48, 60, 1, 299)  # resized to 32 x 40
        r, lines = classify(path, "--batch", "2", tmp)
        report(r.returncode == 0 and [line["index"] for line in lines] == list(range(8)),
               f"textline: {len(widths) + 1} lines of mixed widths, --batch 2, in input order "
               f"(exit {r.returncode}{', ' + r.stderr.strip()[:200] if r.returncode else ''})")
        worst = max((prob_error(line["probs"], torch_logits(model, x))
                     for x, line in zip(xs, lines)), default=1.0)
        report(len(lines) == 8 and worst <= 2 * TOL and
               all(line["input_size"] == [w, 32] for w, line in zip(widths, lines)),
               f"textline: every width against PyTorch, worst {worst:.2e}")
        report(len(lines) == 8 and lines[7]["input_size"] == [40, 32],
               f"textline: a 60x48 image runs at height 32 keeping its aspect ratio "
               f"({lines[7]['input_size'] if len(lines) == 8 else '?'})")

        # evaluate: every image at the first one's size
        r = subprocess.run([EVMAP, "evaluate", "--model", path, "--methods", "saliency,random",
                            "--metrics", "deletion,insertion", "--steps", "4", "--data", tmp,
                            "--out", os.path.join(tmp, "eval")], capture_output=True, text=True)
        meta = json.load(open(os.path.join(tmp, "eval", "evaluate.json"))) \
            if r.returncode == 0 else {}
        report(r.returncode == 0 and "8 image(s) at 40 x 32" in r.stdout and
               meta.get("input_size") == [40, 32],
               f"textline: evaluate runs the mixed widths at the first one's 40x32 "
               f"(exit {r.returncode}{', ' + r.stderr.strip()[-200:] if r.returncode else ''})")

        # a line too narrow: refused alone, the others classified
        write_png(tmp, "line5_narrow", 32, 4, 1, 300)
        r, lines = classify(path, "--batch", "2", tmp)
        err = r.stderr.strip().splitlines()
        named = [e for e in err if "line5_narrow" in e and "4 x 32" in e and "conv2" in e.lower()]
        report(r.returncode == 2 and len(lines) == 8 and named and
               "1 of 9 images" in err[-1] and "line5_narrow" in err[-1],
               f"textline: a 4-wide line is refused naming the node and size, the other 8 "
               f"classified, exit {r.returncode}: {err}")
        r, lines = classify(path, os.path.join(tmp, "line5_narrow.png"))
        err = r.stderr.strip().splitlines()
        report(r.returncode == 2 and not lines and len(err) == 1 and "4 x 32" in err[0],
               f"textline: one narrow image gives one line, exit {r.returncode}: {err}")


def fixed_head(all_models):
    path, model = all_models["fixedhead"]
    with tempfile.TemporaryDirectory() as tmp:
        x = write_png(tmp, "ok", 32, 32, 3, 400)
        r, lines = classify(path, os.path.join(tmp, "ok.png"))
        e = prob_error(lines[0]["probs"], torch_logits(model, x)) if lines else 1.0
        report(r.returncode == 0 and e <= 2 * TOL,
               f"fixedhead at its own 32x32 against PyTorch: {e:.2e}")
        write_png(tmp, "big", 40, 40, 3, 401)
        r, lines = classify(path, os.path.join(tmp, "big.png"))
        err = r.stderr.strip().splitlines()
        report(r.returncode == 2 and len(err) == 1 and "40 x 40" in err[0] and
               "gemm" in err[0].lower(),
               f"fixedhead at 40x40 is refused naming the Gemm node, exit {r.returncode}: {err}")


def explain_checks(all_models):
    path, model = all_models["resnet18" if not QUICK else "mobilenet_v2"]
    h, w = (75, 53)
    with tempfile.TemporaryDirectory() as tmp:
        x = write_png(tmp, "odd", h, w, 3, 500)
        image = os.path.join(tmp, "odd.png")
        cls = 3
        r = subprocess.run([EVMAP, "explain", "--model", path, "--out", tmp, "--method",
                            "saliency", "--class", str(cls), "--quiet", image],
                           capture_output=True, text=True)
        got = np.load(os.path.join(tmp, f"odd.saliency.c{cls}.npy")) if r.returncode == 0 else None
        # float64 autograd taking evmap's side at every Relu/Clip/MaxPool input
        # within rounding of its kink (tests/kink_reference.py; grad_model at
        # the same size dumps evmap's float32 forward)
        nodes = kink_reference.kinked_nodes(path, kink_reference.evmap_kinked_ops(GRAD_MODEL))
        x.astype(np.float32).tofile(os.path.join(tmp, "odd.f32"))
        dumps = []
        for i, (_, name) in enumerate(nodes):
            dumps += ["--dump", name, os.path.join(tmp, f"d{i}.f32")]
        subprocess.run([GRAD_MODEL, "--size", str(w), str(h), path, os.path.join(tmp, "odd.f32"),
                        "logodds", str(cls), os.path.join(tmp, "g.f32"), *dumps], check=True,
                       capture_output=True)
        decisions = kink_reference.decisions_from_dumps(
            nodes, [np.fromfile(os.path.join(tmp, f"d{i}.f32"), dtype=np.float32)
                    for i in range(len(nodes))])
        m64 = model.double()
        xt = torch.tensor(x[None], dtype=torch.float64, requires_grad=True)
        with kink_reference.FollowEvmapKinks(decisions):
            z = m64(xt)[0]
            f = z[cls] - torch.logsumexp(torch.cat([z[:cls], z[cls + 1:]]), 0)
            f.backward()
        want = xt.grad[0].abs().max(0)[0].numpy()
        model.float()
        e = (float(np.abs(got - want).max() / np.abs(want).max())
             if got is not None and got.shape == want.shape else 1.0)
        report(e <= 1e-3, f"explain saliency at {w}x{h} = max_c |float64 autograd at evmap's "
               f"kinks|: {e:.2e} "
               f"({r.stderr.strip()[:200]})")
        refs = os.path.join(tmp, "refs")  # references of two other sizes, resized to 53x75
        os.makedirs(refs)
        write_png(refs, "a", 40, 60, 3, 501)
        write_png(refs, "b", 90, 90, 3, 502)
        r = subprocess.run([EVMAP, "explain", "--model", path, "--out", tmp, "--method",
                            "efficient", "--class", str(cls), "--window", "4", "--samples", "2",
                            "--reference", refs, "--roi", "0,0,8,8", "--split", "input", "--quiet",
                            image],
                           capture_output=True, text=True)
        ok = r.returncode == 0
        m = np.load(os.path.join(tmp, f"odd.efficient.c{cls}.npy")) if ok else None
        meta = json.load(open(os.path.join(tmp, "odd.efficient.json"))) if ok else {}
        report(ok and m.shape == (h, w) and np.isfinite(m[:8, :8]).all() and
               meta.get("input_size") == [w, h],
               f"explain efficient at {w}x{h} on an 8x8 region: map {None if m is None else m.shape}"
               f", input_size {meta.get('input_size')} ({r.stderr.strip()[:200]})")
        # exact locality at this size: the same map as the full network
        naive = os.path.join(tmp, "naive")
        r = subprocess.run([EVMAP, "explain", "--model", path, "--out", naive, "--method",
                            "efficient", "--class", str(cls), "--window", "4", "--samples", "2",
                            "--reference", refs, "--roi", "0,0,8,8", "--split", "input", "--quiet",
                            "--no-locality", image], capture_output=True, text=True)
        m2 = np.load(os.path.join(naive, f"odd.efficient.c{cls}.npy")) if r.returncode == 0 \
            else None
        d = (float(np.abs(m[:8, :8] - m2[:8, :8]).max()) if ok and m2 is not None else 1.0)
        scale = float(np.abs(m2[:8, :8]).max()) if m2 is not None else 0.0
        report(d <= 1e-4 + 0.01 * scale,
               f"exact locality at {w}x{h}: max |map - --no-locality map| {d:.2e} "
               f"(largest |value| {scale:.2e})")


def main():
    all_models = models()
    torchvision_sizes(all_models)
    text_lines(all_models)
    fixed_head(all_models)
    explain_checks(all_models)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
