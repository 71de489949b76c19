#!/usr/bin/python3
"""Documented command-line options against independent references.

Every expected value below is computed from the documented definition in
numpy / PyTorch / PIL (README.md, docs/*.md, `evmap COMMAND --help`, the
colour-map definition in src/render/colormap.c), never by evmap, except where the
documented behaviour is itself a comparison of two evmap runs (a saved
sampler, reused, gives the same map). Tolerances are chosen so that float
rounding on another CPU passes and a wrong definition fails; each check
prints what it measured.

explain
  - --method occlusion (constant zero fill, S = 1, log2 odds with the
    Laplace correction), --fill mean, --laplace-n 50;
  - --method pda with a stride that does not divide the free space: NaN
    exactly on the uncovered border;
  - --method ig --baseline blur: completeness against f(x) - f(blurred x),
    the blur written here (Gaussian, sigma = longer side / 10, edges
    replicated);
  - --score logit (gradient x input of the logit vs autograd);
  - gradcam on a chosen --layer vs a PyTorch Grad-CAM on that layer;
  - --top N (the N most likely classes, in order, with their maps);
  - the JSON's probabilities vs PyTorch's softmax;
  - --side-by-side (picture geometry, the original's pixels) and --vmax (the
    overlay's colours from the documented colour map at that scale);
  - the fitted conditional sampler is saved, loads, and gives the same map.
classify
  - --top N and --labels vs PyTorch's ranking and the labels file;
  - --preprocess imagenet, --size, --mean, --std: what evmap feeds the model
    (read back through a tiny ONNX model whose outputs are its input) vs
    PIL's antialiased bilinear resize, torchvision's centre crop, mean/std.
evaluate
  - the default blur fill, and occlusion's per-method options
    (--occlusion-fill, --window, --stride): curves vs numpy/PyTorch;
  - Ctrl-C after the first progress line: exit 130, "complete": false,
    the finished images written.
make demo
  - scripts/demo (what `make demo` runs) at EVMAP_DEMO_QUICK=1 writes every
    model's maps.
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_models  # noqa: E402

BUILD = os.path.abspath(os.environ.get("BUILD", "build"))
EVMAP = os.path.join(BUILD, "evmap")
QUICK = os.environ.get("EVMAP_QUICK") == "1"
CNN = os.path.join(ROOT, "models", "fashion_cnn.onnx")
LABELS = os.path.join(ROOT, "models", "fashion_mnist.labels")
DEMO = os.path.join(ROOT, "data", "demo")
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
LAPLACE_N = 100000
K_CLASSES = 10

passed = failed = 0


def report(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def run(args, **kw):
    """Runs evmap; a crash or an unexpected exit code raises (= a failure)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run([EVMAP, *args], timeout=900, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"evmap {' '.join(args[:1])} exited {r.returncode}: "
                           f"{(r.stderr or '').strip()[-400:]}")
    return r


def explain(out, image, *args):
    run(["explain", "--model", CNN, "--out", out, "--quiet", *args, image])
    stem = os.path.splitext(os.path.basename(image))[0]
    method = args[args.index("--method") + 1] if "--method" in args else "pda"
    with open(os.path.join(out, f"{stem}.{method}.json")) as f:
        meta = json.load(f)
    maps = {c["class"]: np.load(os.path.join(out, c["npy"])).astype(np.float64)
            for c in meta.get("classes", [])}
    return maps, meta


def demo_image(name):
    """An 8-bit gray demo PNG as the model input (1 x 28 x 28, pixel / 255)."""
    return np.asarray(Image.open(os.path.join(DEMO, name + ".png")), np.float64)[None] / 255.0


class Reference:
    """The Fashion CNN in PyTorch (weights from the ONNX file): gradients in
    float64; probabilities from float32 logits (fast for the many perturbed
    images), softmax in float64."""

    def __init__(self):
        self.model = fashion_models.torch_model_from_onnx(CNN).double().eval()
        self.model32 = fashion_models.torch_model_from_onnx(CNN).eval()

    def probs(self, batch):
        batch = torch.as_tensor(np.asarray(batch, np.float32))
        with torch.no_grad():
            z = torch.cat([self.model32(b) for b in batch.split(512)])
        return torch.softmax(z.double(), 1).numpy()

    def score(self, x, cls, kind="logodds"):
        """f(x) with autograd: natural log-odds or the logit of cls."""
        z = self.model(x)[0]
        if kind == "logit":
            return z[cls]
        return z[cls] - torch.logsumexp(torch.cat([z[:cls], z[cls + 1:]]), 0)

    def grad(self, x, cls, kind="logodds"):
        xt = torch.tensor(x[None], dtype=torch.float64, requires_grad=True)
        f = self.score(xt, cls, kind)
        f.backward()
        return xt.grad[0].numpy(), float(f)


def log2_odds(p, laplace_n):
    """PDA's score: Laplace correction p <- (pN + 1)/(N + K), then log2 odds."""
    p = np.asarray(p, np.float64)
    if laplace_n:
        p = (p * laplace_n + 1) / (laplace_n + K_CLASSES)
    return np.log2(p) - np.log2(1 - p)


def reference_pda(ref, x, replacements, k, stride, cls, laplace_n):
    """Weight of evidence per pixel: mean over the covering windows of
    log2 odds(c|x) - log2 odds(c|x\\w), p(c|x\\w) the mean over the S
    replacement images of the window; NaN where no window covers."""
    _, h, w = x.shape
    base = log2_odds(ref.probs(x[None])[0, cls], laplace_n)
    sums, counts = np.zeros((h, w)), np.zeros((h, w))
    where = [(i, j) for i in range(0, h - k + 1, stride) for j in range(0, w - k + 1, stride)]
    batch = np.repeat(x[None], len(where) * len(replacements), 0).reshape(
        len(where), len(replacements), *x.shape)
    for n, (i, j) in enumerate(where):
        batch[n, :, :, i:i + k, j:j + k] = replacements[:, :, i:i + k, j:j + k]
    p = ref.probs(batch.reshape(-1, *x.shape))[:, cls].reshape(len(where), len(replacements))
    for (i, j), pw in zip(where, p.mean(1)):
        sums[i:i + k, j:j + k] += base - log2_odds(pw, laplace_n)
        counts[i:i + k, j:j + k] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def max_diff(a, b):
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a[both] - b[both]).max())


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def gaussian_blur(img, truncate=8.0):
    """The documented blur: a normalised Gaussian, sigma = longer side / 10,
    separable, edges replicated; truncate=8 is the untruncated Gaussian for
    every practical purpose."""
    _, h, w = img.shape
    sigma = max(h, w) / 10.0
    r = int(math.ceil(truncate * sigma))
    i = np.arange(-r, r + 1)
    kern = np.exp(-0.5 * i * i / sigma ** 2)
    kern /= kern.sum()
    out = []
    for plane in img:
        p = np.pad(plane, r, mode="edge")
        rows = np.stack([np.convolve(row, kern, mode="valid") for row in p])
        out.append(np.stack([np.convolve(col, kern, mode="valid") for col in rows.T]).T)
    return np.stack(out)


# ----------------------------------------------------------------- explain

def occlusion_checks(ref, tmp):
    x = demo_image("7_sneaker")
    cls = 7
    k = 4  # the documented default window for 28 x 28
    zero = np.zeros((1, *x.shape))
    mean = np.full((1, *x.shape), x.mean())

    maps, meta = explain(os.path.join(tmp, "occ"), os.path.join(DEMO, "7_sneaker.png"),
                         "--method", "occlusion", "--class", str(cls))
    want = reference_pda(ref, x, zero, k, 1, cls, LAPLACE_N)
    d = max_diff(maps[cls], want)
    par = meta["parameters"]
    report(d <= 1e-3 and par["samples"] == 1 and par["sampler"] == "constant",
           f"explain --method occlusion = zero-fill PDA with S = 1 in log2 odds (numpy/PyTorch): "
           f"max|diff| {d:.2e} (max|WE| {np.abs(want).max():.3g}); JSON samples "
           f"{par['samples']}, sampler {par['sampler']}")

    maps_m, _ = explain(os.path.join(tmp, "occ_mean"), os.path.join(DEMO, "7_sneaker.png"),
                        "--method", "occlusion", "--fill", "mean", "--class", str(cls))
    want_m = reference_pda(ref, x, mean, k, 1, cls, LAPLACE_N)
    d = max_diff(maps_m[cls], want_m)
    other = max_diff(maps_m[cls], want)
    report(d <= 1e-3 and other > 0.05,
           f"explain --method occlusion --fill mean (fill = the image's mean {x.mean():.4f}): "
           f"max|diff| {d:.2e} (to the zero-fill reference: {other:.3g})")

    maps_l, meta_l = explain(os.path.join(tmp, "occ_lap"), os.path.join(DEMO, "7_sneaker.png"),
                             "--method", "occlusion", "--laplace-n", "50", "--class", str(cls))
    want_l = reference_pda(ref, x, zero, k, 1, cls, 50)
    d = max_diff(maps_l[cls], want_l)
    other = max_diff(maps_l[cls], want)
    report(d <= 1e-3 and other > 0.05 and meta_l["parameters"]["laplace_n"] == 50,
           f"explain --laplace-n 50: PDA's correction (pN + 1)/(N + K) with N = 50: max|diff| "
           f"{d:.2e} (to the N = 100000 reference: {other:.3g})")


def pda_border_check(ref, tmp):
    """Window 6, stride 4 on 28 x 28: windows start at 0, 4, ..., 20 and
    cover 0..25; rows and columns 26 and 27 are covered by no window."""
    x = demo_image("3_dress")
    train = fashion_models.read_idx(TRAIN)[:2].astype(np.float64)[:, None] / 255.0
    cls = 3
    maps, _ = explain(os.path.join(tmp, "pda_border"), os.path.join(DEMO, "3_dress.png"),
                      "--method", "pda", "--sampler", "marginal", "--reference", TRAIN,
                      "--samples", "2", "--window", "6", "--stride", "4", "--class", str(cls))
    got = maps[cls]
    want = reference_pda(ref, x, train, 6, 4, cls, LAPLACE_N)
    border = np.zeros((28, 28), bool)
    border[26:, :] = border[:, 26:] = True
    nan_ok = np.array_equal(np.isnan(got), border) and np.array_equal(np.isnan(want), border)
    d = max_diff(got, want)
    report(nan_ok and d <= 1e-3,
           f"explain --method pda --window 6 --stride 4 (marginal, S = 2): NaN exactly on the "
           f"uncovered border rows/columns 26-27 ({int(np.isnan(got).sum())} pixels): "
           f"{'yes' if nan_ok else 'no'}; covered pixels max|diff| {d:.2e}")


def ig_blur_check(ref, tmp):
    x = demo_image("9_ankle_boot")
    cls = 9
    steps = 200
    maps, meta = explain(os.path.join(tmp, "ig_blur"), os.path.join(DEMO, "9_ankle_boot.png"),
                         "--method", "ig", "--baseline", "blur", "--steps", str(steps),
                         "--class", str(cls))
    got = maps[cls].sum()

    def f(img):
        with torch.no_grad():
            return float(ref.score(torch.tensor(img[None]), cls))
    fx = f(x)
    f0 = f(gaussian_blur(x))
    # The definition leaves the Gaussian's truncation open; any cut at 3
    # sigma or beyond changes the baseline's score by at most this much.
    trunc = abs(f(gaussian_blur(x, 3.0)) - f0)
    gap = abs(got - (fx - f0)) / abs(fx - f0)
    zero_gap = abs(got - (fx - f(np.zeros_like(x)))) / abs(fx - f0)
    mean_gap = abs(got - (fx - f(np.full_like(x, x.mean())))) / abs(fx - f0)
    tol = 0.01 + trunc / abs(fx - f0)
    report(gap <= tol and meta["parameters"]["baseline"] == "blur" and zero_gap > 3 * tol
           and mean_gap > 3 * tol,
           f"explain --method ig --baseline blur: map sum {got:.5g} vs f(x) - f(blur(x)) "
           f"{fx - f0:.5g} ({100 * gap:.3f} %, bound {100 * tol:.2f} %: 1 % quadrature + "
           f"{100 * trunc / abs(fx - f0):.3f} % truncation); against the zero / mean baselines "
           f"it would be off by {100 * zero_gap:.1f} % / {100 * mean_gap:.1f} %")


def score_logit_check(ref, tmp):
    x = demo_image("4_coat")
    cls = 4
    maps, meta = explain(os.path.join(tmp, "logit"), os.path.join(DEMO, "4_coat.png"),
                         "--method", "gradxinput", "--score", "logit", "--class", str(cls))
    g, _ = ref.grad(x, cls, "logit")
    want = (x * g).sum(0)
    g_lo, _ = ref.grad(x, cls, "logodds")
    e = rel_err(maps[cls], want)
    other = rel_err(maps[cls], (x * g_lo).sum(0))
    report(e <= 1e-3 and other > 1e-2 and meta["parameters"]["score"] == "logit",
           f"explain --score logit: gradient x input of the logit vs float64 autograd: "
           f"max|diff|/max|map| {e:.2e} (vs the log-odds gradient: {other:.2e})")


def gradcam_layer_check(ref, tmp):
    """Grad-CAM on conv3's output (before its ReLU), not the default layer."""
    x = demo_image("2_pullover")
    cls = 2
    layer = "/conv3/Conv_output_0"
    maps, meta = explain(os.path.join(tmp, "gradcam"), os.path.join(DEMO, "2_pullover.png"),
                         "--method", "gradcam", "--layer", layer, "--class", str(cls))
    saved = {}

    def hook(module, inputs, output):
        output.retain_grad()
        saved["a"] = output
    h = ref.model.conv3.register_forward_hook(hook)
    try:
        xt = torch.tensor(x[None], dtype=torch.float64)
        ref.score(xt, cls).backward()
    finally:
        h.remove()
    a = saved["a"]
    alpha = a.grad[0].mean((1, 2))
    cam = torch.relu((alpha[:, None, None] * a[0]).sum(0)).detach()
    want = F.interpolate(cam[None, None], size=(28, 28), mode="bilinear",
                         align_corners=False)[0, 0].numpy()
    e = rel_err(maps[cls], want)
    # the default layer (last conv's ReLU) for scale
    maps_d, _ = explain(os.path.join(tmp, "gradcam_default"),
                        os.path.join(DEMO, "2_pullover.png"), "--method", "gradcam",
                        "--class", str(cls))
    other = rel_err(maps_d[cls], want)
    report(e <= 1e-3 and meta["parameters"]["layer"] == layer and other > 1e-2,
           f"explain --method gradcam --layer {layer}: vs PyTorch Grad-CAM on conv3's output, "
           f"bilinear upsampling: {e:.2e} (default layer vs this reference: {other:.2e})")


def top_and_probs_check(ref, tmp):
    x = demo_image("6_shirt")
    p = ref.probs(x[None])[0]
    n = 3
    maps, meta = explain(os.path.join(tmp, "top"), os.path.join(DEMO, "6_shirt.png"),
                         "--method", "saliency", "--top", str(n), "--labels", LABELS)
    classes = [c["class"] for c in meta["classes"]]
    ok = len(classes) == n and consistent_ranking(classes, p)
    labels = open(LABELS).read().splitlines()
    ok &= all(c["label"] == labels[c["class"]] for c in meta["classes"])
    worst = 0.0
    for c in classes:  # each class's own map
        g, _ = ref.grad(x, c)
        worst = max(worst, rel_err(maps[c], np.abs(g).max(0)))
    report(ok and worst <= 1e-3,
           f"explain --top {n}: classes {classes} = the {n} most likely by PyTorch's softmax "
           f"{[round(float(p[c]), 5) for c in classes]}, labels from --labels; each class's "
           f"saliency map vs autograd: {worst:.2e}")
    probs = np.array(meta["probs"], np.float64)
    d = float(np.abs(probs - p).max())
    json_p = [c["prob"] for c in meta["classes"]]
    d2 = max(abs(q - p[c]) for q, c in zip(json_p, classes))
    report(d <= 1e-5 and d2 <= 1e-5,
           f"explain JSON probabilities vs PyTorch softmax (float64): max|diff| {d:.1e} "
           f"(\"probs\"), {d2:.1e} (per class)")


def consistent_ranking(order, p, tol=1e-6):
    """order lists classes by descending probability: every pair in it, and
    every class left out, agrees with p except within rounding (tol)."""
    for a, b in zip(order, order[1:]):
        if p[b] > p[a] + tol:
            return False
    rest = [c for c in range(len(p)) if c not in order]
    return all(p[c] <= p[order[-1]] + tol for c in rest)


# Colour map (src/render/colormap.c): the picture at value v and scale vmax shows
# t = v / vmax; alpha = 0.9 |t| (|t| capped at 1) blends a ramp colour into
# the gray background 0.25 + 0.55 * luminance; the ramp runs linearly
# through four ColorBrewer RdBu colours (red half); t < 0 swaps red and blue.
RAMP = np.array([[0xf4, 0xa5, 0x82], [0xd6, 0x60, 0x4d], [0xb2, 0x18, 0x2b], [0x67, 0x00, 0x1f]],
                np.float64) / 255.0


def overlay_colors(lum, values, vmax):
    t = values / vmax
    a = np.where(np.isnan(t), 0.0, np.clip(np.abs(t), 0, 1))
    pos = a * 3
    i = np.minimum(np.floor(pos).astype(int), 2)
    f = (pos - i)[..., None]
    color = RAMP[i] + f * (RAMP[i + 1] - RAMP[i])
    neg = t < 0
    color[neg] = color[neg][:, ::-1]
    gray = (0.25 + 0.55 * np.clip(lum, 0, 1))[..., None]
    out = gray + (0.9 * a)[..., None] * (color - gray)
    return np.rint(np.clip(out, 0, 1) * 255)


def picture_checks(tmp):
    """--side-by-side and --vmax on a gradient x input map."""
    stem, cls = "9_ankle_boot", 9
    image = os.path.join(DEMO, stem + ".png")
    x = demo_image(stem)[0]
    out_a, out_b, out_c = (os.path.join(tmp, d) for d in ("pic_plain", "pic_sbs", "pic_auto"))
    maps, _ = explain(out_c, image, "--method", "gradxinput", "--class", str(cls))
    m = maps[cls]
    vmax = float(f"{0.4 * float(np.abs(m).max()):.6g}")
    _, meta_a = explain(out_a, image, "--method", "gradxinput", "--class", str(cls),
                        "--vmax", f"{vmax:.6g}")
    _, meta_b = explain(out_b, image, "--method", "gradxinput", "--class", str(cls),
                        "--side-by-side", "--vmax", f"{vmax:.6g}")
    def picture(out):
        return np.asarray(Image.open(os.path.join(out, f"{stem}.gradxinput.c{cls}.png"))
                          .convert("RGB"), np.float64)

    plain, sbs, auto_pic = picture(out_a), picture(out_b), picture(out_c)
    # Documented: small maps upscaled by an integer factor until the shorter
    # side reaches 256 -> 10 for 28 x 28; the original left, a 6 px white gap.
    s = math.ceil(256 / 28)
    pw = 28 * s
    gap = 6
    original = np.repeat(np.repeat(np.asarray(Image.open(image), np.float64), s, 0), s, 1)
    geom_ok = (sbs.shape[1] - plain.shape[1] == pw + gap and sbs.shape[0] == plain.shape[0]
               and plain.shape[0] >= pw)
    left_ok = geom_ok and np.array_equal(sbs[:pw, :pw], np.repeat(original[..., None], 3, 2))
    gap_ok = geom_ok and bool((sbs[:, pw:pw + gap] == 255).all())
    report(geom_ok and left_ok and gap_ok,
           f"explain --side-by-side: picture {sbs.shape[1]}x{sbs.shape[0]} vs "
           f"{plain.shape[1]}x{plain.shape[0]} without (+{pw}+{gap} px); left panel = the image "
           f"upscaled x{s}: {'yes' if left_ok else 'no'}; white gap: {'yes' if gap_ok else 'no'}")

    def panel(pic, x0):
        return pic[:pw:s, x0:x0 + pw:s]  # one pixel per map cell
    want = overlay_colors(x, m, vmax)
    d = float(np.abs(panel(sbs, pw + gap) - want).max()) if geom_ok else float("nan")
    auto = overlay_colors(x, m, float(np.abs(m).max()))
    d_plain = float(np.abs(panel(auto_pic, 0) - auto).max())
    other = float(np.abs(panel(sbs, pw + gap) - auto).max()) if geom_ok else 0
    # At or past +vmax a cell is 90 % the ramp's darkest red over its gray,
    # at or past -vmax the same with red and blue swapped.
    sat = np.abs(m) >= vmax
    gray = (0.25 + 0.55 * x[sat])[:, None]
    full = 0.9 * np.where((m[sat] > 0)[:, None], RAMP[3], RAMP[3][::-1]) + 0.1 * gray
    sat_ok = geom_ok and bool(sat.any()) and bool(
        (np.abs(panel(sbs, pw + gap)[sat] - np.rint(full * 255)) <= 1).all())
    same = float(np.abs(panel(plain, 0) - want).max())
    report(geom_ok and d <= 1 and same <= 1 and d_plain <= 1 and sat_ok and other > 20
           and abs(meta_b["classes"][0]["vmax"] - vmax) <= 1e-6 * vmax
           and abs(meta_a["classes"][0]["vmax"] - vmax) <= 1e-6 * vmax,
           f"explain --vmax {vmax:.4g} (0.4 x max|map|): overlay colours vs the colour map at "
           f"that scale: max |diff| {d:.0f}/255 ({int(sat.sum())} cells at or past +-vmax, "
           f"full red/blue: {'yes' if sat_ok else 'no'}; without --side-by-side {same:.0f}/255); "
           f"default scale (max|map|) {d_plain:.0f}/255; the default scale's colours would be "
           f"off by {other:.0f}/255")


def sampler_file_check(tmp):
    """explain fits the conditional sampler, saves it in --out; reusing the
    file gives the same map."""
    image = os.path.join(DEMO, "0_tshirt.png")
    out1, out2 = os.path.join(tmp, "fit1"), os.path.join(tmp, "fit2")
    common = ["--class", "0", "--roi", "8,8,10,10", "--samples", "4"]
    maps1, meta1 = explain(out1, image, "--reference", TRAIN, "--patches", "2000", *common)
    path = os.path.join(out1, "sampler-k4-p2.evs")
    exists = os.path.isfile(path) and os.path.getsize(path) > 0
    maps2, meta2 = explain(out2, image, "--sampler-file", path, *common)
    a, b = maps1[0], maps2[0]
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    d = max_diff(a, b) if same_nan else float("inf")
    report(exists and same_nan and d <= 1e-6 and meta2["parameters"]["sampler_source"] == path
           and np.isfinite(a).sum() == 100,
           f"explain --reference saves {os.path.basename(path)} "
           f"({os.path.getsize(path) if exists else 0} bytes); --sampler-file with it gives "
           f"the same map: max|diff| {d:.1e} over {int(np.isfinite(a).sum())} pixels")


# ---------------------------------------------------------------- classify

def classify_top_check(ref):
    names = sorted(os.listdir(DEMO))
    x = np.stack([demo_image(os.path.splitext(n)[0]) for n in names])
    p = ref.probs(x)
    labels = open(LABELS).read().splitlines()
    n = 3
    r = run(["classify", "--model", CNN, "--labels", LABELS, "--top", str(n), DEMO])
    lines = r.stdout.strip().splitlines()
    ok = len(lines) == len(names)
    worst = 0.0
    pat = re.compile(r"^(\d+) \((.*)\) ([0-9.]+)$")
    for line, name, pi in zip(lines, names, p):
        fields = line.split("\t")
        ok &= fields[0] == os.path.splitext(name)[0] and len(fields) == n + 1
        order = []
        for fld in fields[1:]:
            mt = pat.match(fld)
            if not mt:
                ok = False
                continue
            c = int(mt.group(1))
            order.append(c)
            ok &= mt.group(2) == labels[c]
            worst = max(worst, abs(float(mt.group(3)) - pi[c]))
        ok &= len(order) == n and consistent_ranking(order, pi)
    report(ok and worst <= 5.1e-5,
           f"classify --top {n} --labels: {len(lines)} images, each line the {n} most likely "
           f"classes in PyTorch's order (ties within rounding free), names from the labels "
           f"file; printed probabilities within {worst:.1e} of PyTorch's")
    r = run(["classify", "--model", CNN, "--labels", LABELS, "--top", "all", "--json", DEMO])
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    ok = len(rows) == len(names)
    worst = 0.0
    for row, pi in zip(rows, p):
        order = [t["class"] for t in row["top"]]
        ok &= len(order) == 10 and consistent_ranking(order, pi)
        ok &= all(t["label"] == labels[t["class"]] for t in row["top"])
        worst = max(worst, float(np.abs(np.array(row["probs"]) - pi).max()))
    report(ok and worst <= 1e-5,
           f"classify --top all --json: all 10 classes in PyTorch's order with their labels; "
           f"probabilities max|diff| {worst:.1e}")


def echo_model(path, c, h, w):
    """An ONNX model whose logits are its input, flattened, plus a constant 0:
    evmap's softmax over them gives p_i / p_last = exp(x_i), so
    x_i = log p_i - log p_last recovers what evmap fed the model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c * h * w + 1])
    zero = numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero")
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1),
             helper.make_node("Concat", ["f", "zero"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "echo", [x], [y], [zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def fed_input(model, shape, image, *args):
    r = run(["classify", "--model", model, "--json", *args, image])
    p = np.array(json.loads(r.stdout)["probs"], np.float64)
    return (np.log(p[:-1]) - np.log(p[-1])).reshape(shape)


def pil_resize(img, w, h, method=Image.BILINEAR):
    """Each channel resized in float (mode F): PIL's bilinear filter, a
    triangle widened by the scale factor when downscaling (antialiased),
    weights normalised per output pixel: the documented resize."""
    return np.stack([np.asarray(Image.fromarray(ch.astype(np.float32), "F").resize((w, h),
                                                                                    method),
                                np.float64) for ch in img])


def resize_tolerance(in_shape, min_std):
    """The resize (as documented in src/io/preprocess.c, PyTorch's antialiased
    kernel) places its taps with float32 coordinates: a source position
    scale * (i + 0.5) is off by up to about 2 float32 roundings of the largest
    coordinate, 2 * 2**-24 * side; a tap weight (slope <= 1 per pixel, or less
    when widened) then moves by as much, and pixels are in [0, 1], so the
    resized value moves by at most the sum over the two taps of each axis,
    4 * 2**-24 * side, before normalisation divides it by std; plus 1e-5 for
    the sums themselves."""
    return 4 * 2.0 ** -24 * max(in_shape) / min_std + 1e-5


def imagenet_reference(img, method=Image.BILINEAR, mean=(0.485, 0.456, 0.406),
                       std=(0.229, 0.224, 0.225)):
    """torchvision's Resize(256) (short side 256, long int(256 long / short)),
    CenterCrop(224) (offset int(round(d / 2))), ImageNet mean/std unless
    given."""
    _, h, w = img.shape
    if w <= h:
        rw, rh = 256, int(256 * h / w)
    else:
        rw, rh = int(256 * w / h), 256
    r = pil_resize(img, rw, rh, method)
    y0, x0 = int(round((rh - 224) / 2.0)), int(round((rw - 224) / 2.0))
    r = r[:, y0:y0 + 224, x0:x0 + 224]
    return (r - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]


def preprocess_checks(tmp):
    rng = np.random.default_rng(7)
    m224 = os.path.join(tmp, "echo224.onnx")
    echo_model(m224, 3, 224, 224)
    # Random pixels: every filter tap matters, so a wrong filter shows.
    cases = [("portrait RGB 217x300 (upscaled; crop offset round(64.5) = 64)", (300, 217, 3)),
             ("landscape gray 522x389 (downscaled; crop offset round(59.5) = 60)", (389, 522))]
    for what, shape in cases:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        path = os.path.join(tmp, f"pre_{shape[1]}x{shape[0]}.png")
        Image.fromarray(pixels).save(path)
        img = pixels.astype(np.float64) / 255.0
        img = img.transpose(2, 0, 1) if img.ndim == 3 else np.repeat(img[None], 3, 0)
        got = fed_input(m224, (3, 224, 224), path, "--preprocess", "imagenet")
        want = imagenet_reference(img)
        d = float(np.abs(got - want).max())
        tol = resize_tolerance(shape[:2], 0.224)  # the smallest ImageNet std
        # What the tolerance rules out: uint8 rounding of the resized image,
        # another filter.
        uint8 = 0.5 / 255 / 0.229
        bicubic = float(np.abs(imagenet_reference(img, Image.BICUBIC) - want).max())
        report(d <= tol,
               f"classify --preprocess imagenet, {what}: fed input vs PIL bilinear resize + "
               f"centre crop + mean/std: max|diff| {d:.1e} (bound {tol:.1e}; one half uint8 "
               f"level is {uint8:.1e}, bicubic instead of bilinear {bicubic:.2f})")
        # The preset's resize and crop stay when only the mean (or std) changes.
        got = fed_input(m224, (3, 224, 224), path, "--preprocess", "imagenet", "--mean", "0.5")
        want = imagenet_reference(img, mean=(0.5, 0.5, 0.5))
        d = float(np.abs(got - want).max())
        report(d <= tol, f"classify --preprocess imagenet --mean 0.5, {what}: ImageNet resize, "
               f"crop and std with mean 0.5: max|diff| {d:.1e} (bound {tol:.1e})")

    # --size with --mean/--std (one value each), an RGB image into a gray
    # model: resize to exactly W x H, luminance, normalise.
    m_gray = os.path.join(tmp, "echo_gray.onnx")
    echo_model(m_gray, 1, 30, 40)
    pixels = rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)
    path = os.path.join(tmp, "size_97x61.png")
    Image.fromarray(pixels).save(path)
    img = pixels.astype(np.float64).transpose(2, 0, 1) / 255.0
    got = fed_input(m_gray, (1, 30, 40), path, "--size", "40x30", "--mean", "0.2",
                    "--std", "0.5")
    r = pil_resize(img, 40, 30)
    want = ((0.299 * r[0] + 0.587 * r[1] + 0.114 * r[2] - 0.2) / 0.5)[None]
    d = float(np.abs(got - want).max())
    tol = resize_tolerance((61, 97), 0.5)
    report(d <= tol,
           f"classify --size 40x30 --mean 0.2 --std 0.5, RGB 97x61 into a gray model: resize "
           f"to exactly 40x30, luminance 0.299 R + 0.587 G + 0.114 B, (v - 0.2) / 0.5: "
           f"max|diff| {d:.1e} (bound {tol:.1e})")

    # --mean/--std per channel, no resize (the image has the model's size).
    m_rgb = os.path.join(tmp, "echo_rgb.onnx")
    echo_model(m_rgb, 3, 20, 24)
    pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    path = os.path.join(tmp, "mean_24x20.png")
    Image.fromarray(pixels).save(path)
    img = pixels.astype(np.float64).transpose(2, 0, 1) / 255.0
    mean, std = np.array([0.1, 0.6, -0.3]), np.array([0.5, 0.25, 2.0])
    got = fed_input(m_rgb, (3, 20, 24), path, "--mean", "0.1,0.6,-0.3", "--std", "0.5,0.25,2")
    want = (img - mean[:, None, None]) / std[:, None, None]
    d = float(np.abs(got - want).max())
    swapped = float(np.abs(got - (img - mean[::-1, None, None]) / std[::-1, None, None]).max())
    report(d <= 1e-5 and swapped > 0.1,
           f"classify --mean 0.1,0.6,-0.3 --std 0.5,0.25,2 (per channel, no resize): "
           f"(pixel - mean_c) / std_c: max|diff| {d:.1e} (channels reversed would be off by "
           f"{swapped:.2f})")


# ---------------------------------------------------------------- evaluate

def deletion_insertion(ref, x, fill, order, cls, steps):
    n = x.shape[1] * x.shape[2]
    dele, ins = [], []
    for t in range(steps + 1):
        idx = order[:t * n // steps]
        mask = np.zeros(n, bool)
        mask[idx] = True
        mask = mask.reshape(x.shape[1:])[None]
        dele.append(np.where(mask, fill, x))
        ins.append(np.where(mask, x, fill))
    p = ref.probs(np.stack(dele + ins))[:, cls]
    return p[:steps + 1], p[steps + 1:]


def evaluate_checks(ref, tmp):
    """Occlusion's per-method options (--occlusion-fill mean, --window 4,
    --stride 4: one window per 4 x 4 tile, so each tile has one value) and
    the default blur fill, against curves computed here."""
    n_images = 2 if QUICK else 3
    steps = 20
    out = os.path.join(tmp, "eval")
    run(["evaluate", "--model", CNN, "--methods", "occlusion", "--occlusion-fill", "mean",
         "--window", "4", "--stride", "4", "--data", TEST_IMAGES, "--limit", str(n_images),
         "--metrics", "deletion,insertion", "--steps", str(steps), "--out", out, "--quiet"])
    with open(os.path.join(out, "evaluate.json")) as f:
        j = json.load(f)
    images = fashion_models.read_idx(TEST_IMAGES)[:n_images].astype(np.float64)[:, None] / 255
    fill_d = curve_d = trunc_d = other_d = 0.0
    radii = set()
    min_gap = float("inf")
    ok = j["parameters"]["fill"] == "blur" and len(j["per_image"]) == n_images
    for x, row in zip(images, j["per_image"]):
        cls = int(np.argmax(ref.probs(x[None])[0]))
        ok &= row["class"] == cls
        curves = row["methods"]["occlusion"]
        # The fill image is the insertion curve's start and the deletion curve's end.
        # The definition leaves the Gaussian's radius open: evmap's fill must
        # be the blur cut at some radius from 3 sigma up (checked at 3 sigma
        # and untruncated); the curves are compared with the closer one.
        blurs = {r: gaussian_blur(x, r) for r in (3.0, 8.0)}
        p_fill = {r: ref.probs(b[None])[0, cls] for r, b in blurs.items()}
        got_fill = (curves["insertion"][0], curves["deletion"][-1])
        near = min(blurs, key=lambda r: max(abs(g - p_fill[r]) for g in got_fill))
        d = max(abs(g - p_fill[near]) for g in got_fill)
        fill_d = max(fill_d, d)
        trunc_d = max(trunc_d, abs(p_fill[3.0] - p_fill[8.0]))
        ok &= d <= 1e-4
        occ = reference_pda(ref, x, np.full((1, *x.shape), x.mean()), 4, 4, cls, LAPLACE_N)
        tiles = np.unique(occ.round(12))
        min_gap = min(min_gap, float(np.diff(tiles).min()))
        order = np.argsort(-occ.ravel(), kind="stable")
        dele, ins = deletion_insertion(ref, x, blurs[near], order, cls, steps)
        curve_d = max(curve_d, float(np.abs(np.array(curves["deletion"]) - dele).max()),
                      float(np.abs(np.array(curves["insertion"]) - ins).max()))
        zero_occ = reference_pda(ref, x, np.zeros((1, *x.shape)), 4, 4, cls, LAPLACE_N)
        zdel, _ = deletion_insertion(ref, x, blurs[near],
                                     np.argsort(-zero_occ.ravel(), kind="stable"), cls, steps)
        other_d = max(other_d, float(np.abs(np.array(curves["deletion"]) - zdel).max()))
        radii.add(near)
    ok &= curve_d <= 1e-4
    cut = " and ".join("untruncated" if r > 3 else "cut at 3 sigma" for r in sorted(radii))
    report(ok and other_d > 0.01,
           f"evaluate default fill = blur (sigma = side/10, edges replicated; closest: {cut}, "
           f"the cut moves p by up to {trunc_d:.1e}): p(c) of the filled image within "
           f"{fill_d:.1e}; occlusion with --occlusion-fill mean --window 4 "
           f"--stride 4: deletion/insertion curves ({n_images} images, {steps} steps) vs "
           f"numpy/PyTorch max|diff| {curve_d:.1e} (smallest gap between tile values "
           f"{min_gap:.1e}; the zero fill's deletion curve would be off by {other_d:.2f})")


def evaluate_interrupt_check(tmp):
    out = os.path.join(tmp, "eval_int")
    n = 40  # the first progress line comes after 10 %: 4 images; 36 to go
    proc = subprocess.Popen([EVMAP, "evaluate", "--model", CNN, "--methods", "occlusion,saliency",
                             "--stride", "2", "--steps", "10", "--threads", "1",
                             "--data", TEST_IMAGES, "--limit", str(n), "--metrics", "deletion",
                             "--out", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = ""
    try:
        for line in proc.stderr:  # the first progress line: some images are done
            if re.match(r"^evaluate: \d+%", line):
                first = line.strip()
                proc.send_signal(signal.SIGINT)
                break
        rest_out, rest_err = proc.communicate(timeout=900)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    rc = proc.returncode
    try:
        with open(os.path.join(out, "evaluate.json")) as f:
            j = json.load(f)
    except (OSError, ValueError):
        j = {}
    done = len(j.get("per_image", []))
    csv_ok = os.path.isfile(os.path.join(out, "evaluate.csv"))
    table = "occlusion" in rest_out and "saliency" in rest_out
    report(bool(first) and rc == 130 and j.get("complete") is False and 0 < done < n and csv_ok
           and "interrupted" in rest_err and table,
           f"evaluate, SIGINT after the first progress line ('{first}'): exit {rc}, "
           f"\"complete\": {j.get('complete')}, {done} of {n} images in the JSON, CSV "
           f"{'written' if csv_ok else 'missing'}, table on stdout: {'yes' if table else 'no'}")


# -------------------------------------------------------------------- demo

def demo_check(tmp):
    out = os.path.join(tmp, "demo-out")
    env = dict(os.environ, EVMAP=EVMAP, OUT=out, EVMAP_DEMO_QUICK="1")
    r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "demo")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    stems = [os.path.splitext(n)[0] for n in sorted(os.listdir(DEMO))]
    missing = []
    for model in ("fashion_cnn", "fashion_resnet"):
        for stem in stems:
            for ext in ("json",):
                if not os.path.isfile(os.path.join(out, model, f"{stem}.pda.{ext}")):
                    missing.append(f"{model}/{stem}.pda.{ext}")
            files = os.listdir(os.path.join(out, model)) if os.path.isdir(
                os.path.join(out, model)) else []
            for ext in ("npy", "png"):
                if not any(f.startswith(stem + ".pda.c") and f.endswith(ext) for f in files):
                    missing.append(f"{model}/{stem}.pda.c*.{ext}")
    classified = sum(1 for line in r.stdout.splitlines() if line.split("\t")[0] in stems)
    make = subprocess.run(["make", "-n", "BUILD=" + BUILD, "demo"], cwd=ROOT,
                          capture_output=True, text=True)
    runs_script = "scripts/demo" in make.stdout
    report(r.returncode == 0 and not missing and classified == 2 * len(stems) and runs_script
           and os.path.isfile(os.path.join(out, "sampler-k4-p2.evs")),
           f"make demo (scripts/demo, EVMAP_DEMO_QUICK=1): exit {r.returncode}, "
           f"{classified} classify lines, maps for {2 * len(stems) - len(missing) // 3} of "
           f"{2 * len(stems)} model/image pairs, sampler saved; make demo runs scripts/demo: "
           f"{runs_script}" + (f"; missing {missing[:3]}" if missing else "")
           + (f"; stderr {r.stderr.strip()[-300:]}" if r.returncode else ""))
    scene = os.path.join(out, "scenes_cnn")
    files = sorted(os.listdir(scene)) if os.path.isdir(scene) else []
    maps = [f for f in files if f.startswith("00011_sandal.efficient.c") and f.endswith(".npy")]
    shape = np.load(os.path.join(scene, maps[0])).shape if maps else None
    accuracy = [line for line in r.stdout.splitlines() if "accuracy" in line]
    report(shape == (224, 224) and "00011_sandal.efficient.json" in files and accuracy,
           f"make demo explains a 224x224 scene with the efficient method (map {shape}) and "
           f"prints the scenes' accuracy ({accuracy[:1]})")


def main():
    torch.set_num_threads(2)
    ref = Reference()
    with tempfile.TemporaryDirectory() as tmp:
        parts = [
            ("occlusion", lambda: occlusion_checks(ref, tmp)),
            ("pda border", lambda: pda_border_check(ref, tmp)),
            ("ig blur", lambda: ig_blur_check(ref, tmp)),
            ("score logit", lambda: score_logit_check(ref, tmp)),
            ("gradcam layer", lambda: gradcam_layer_check(ref, tmp)),
            ("top/probs", lambda: top_and_probs_check(ref, tmp)),
            ("pictures", lambda: picture_checks(tmp)),
            ("sampler file", lambda: sampler_file_check(tmp)),
            ("classify top", lambda: classify_top_check(ref)),
            ("preprocess", lambda: preprocess_checks(tmp)),
            ("evaluate", lambda: evaluate_checks(ref, tmp)),
            ("evaluate interrupt", lambda: evaluate_interrupt_check(tmp)),
            ("demo", lambda: demo_check(tmp)),
        ]
        for name, part in parts:
            start = time.monotonic()
            try:
                part()
            except Exception as e:  # a crash is a failure, not a silent pass
                report(False, f"{name}: {type(e).__name__}: {e}")
            print(f"     ({name}: {time.monotonic() - start:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
