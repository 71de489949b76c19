#!/usr/bin/python3
"""Prediction Difference Analysis: evmap against an independent reference.

The reference below follows the published algorithm (Zintgraf et al. 2017)
directly in numpy + PyTorch, sharing no code with evmap: for every k×k window
on the stride grid inside the region of interest, S copies of the image get
the window replaced (marginal sampler: from the first S reference images;
constant: one fill value), the class probability is averaged over the copies,
Laplace-corrected, and the weight of evidence log2 odds(x) − log2 odds(x\\w) is
spread over the window's pixels; each pixel's value is the mean of its
windows. Hidden-unit targets use the mean activation of one channel instead.
evmap must agree within 1e-3 (log2 odds) and leave the same pixels NaN.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_models  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
DEMO = os.path.join(ROOT, "data", "demo")


def load_png_gray(path):
    """Decodes an 8-bit gray PNG with the standard library (independent of evmap)."""
    import struct
    import zlib
    data = open(path, "rb").read()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 0, "test images are 8-bit gray"
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows, prev = [], bytearray(width)
    for y in range(height):
        f, line = raw[y * (width + 1)], bytearray(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):
            a = line[x - 1] if x else 0
            b, c = prev[x], prev[x - 1] if x else 0
            pred = [0, a, b, (a + b) // 2, 0][f] if f != 4 else \
                (a if abs(b - c) <= abs(a - c) and abs(b - c) <= abs(a + b - 2 * c)
                 else b if abs(a - c) <= abs(a + b - 2 * c) else c)
            line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(rows), np.uint8).reshape(height, width)


class Scorer:
    """Class log2-odds or a hidden unit's mean activation, in float64."""

    def __init__(self, model, laplace_n, hidden=None):
        self.model, self.laplace_n, self.hidden = model, laplace_n, hidden
        self.captured = None
        if hidden:
            module, _ = hidden
            getattr(model, module).register_forward_hook(
                lambda m, i, o: setattr(self, "captured", o.detach()))

    def raw(self, batch):
        """Per image: class probabilities (N×K) or the unit's activation (N)."""
        with torch.no_grad():
            logits = self.model(torch.from_numpy(batch.astype(np.float32)))
        if self.hidden:
            return self.captured[:, self.hidden[1]].double().mean(dim=(1, 2)).numpy()
        return torch.softmax(logits.double(), dim=1).numpy()

    def score(self, raw_rows, c):
        """Target score of the mean over rows (PDA averages probabilities, then takes odds)."""
        if self.hidden:
            return float(np.mean(raw_rows))
        p = float(np.mean(raw_rows[:, c]))
        k = raw_rows.shape[1]
        if self.laplace_n:
            p = (p * self.laplace_n + 1) / (self.laplace_n + k)
        return np.log2(p) - np.log2(1 - p)


def reference_pda(scorer, x, replacements, k, stride, targets, roi=None):
    """x: C×H×W; replacements: S×C×H×W images whose window pixels replace x's."""
    c_, h, w = x.shape
    x0, y0, rw, rh = roi if roi else (0, 0, w, h)
    base = scorer.raw(x[None])
    sums = np.zeros((len(targets), h, w))
    counts = np.zeros((h, w))
    for i in range(0, h - k + 1, stride):
        for j in range(0, w - k + 1, stride):
            if not (i >= y0 and j >= x0 and i + k <= y0 + rh and j + k <= x0 + rw):
                continue
            batch = np.repeat(x[None], len(replacements), axis=0)
            batch[:, :, i:i + k, j:j + k] = replacements[:, :, i:i + k, j:j + k]
            rows = scorer.raw(batch)
            for t, c in enumerate(targets):
                sums[t, i:i + k, j:j + k] += scorer.score(base, c) - scorer.score(rows, c)
            counts[i:i + k, j:j + k] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def run_evmap(model_path, image, out_dir, args):
    cmd = [os.path.join(BUILD, "evmap"), "explain", "--model", model_path, "--out", out_dir,
           "--quiet", *args, image]
    subprocess.run(cmd, check=True)


def compare(name, ours, ref):
    nan_same = np.array_equal(np.isnan(ours), np.isnan(ref))
    diff = np.nanmax(np.abs(ours - ref)) if np.isfinite(ref).any() else 0.0
    scale = np.nanmax(np.abs(ref)) if np.isfinite(ref).any() else 0.0
    ok = nan_same and diff <= 1e-3
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max|diff| {diff:.2e} (max|WE| {scale:.3g})"
          f"{'' if nan_same else ', NaN pixels differ'}")
    return ok


def main():
    torch.set_num_threads(2)
    train = fashion_models.read_idx(TRAIN)[:10].astype(np.float32)[:, None] / 255.0
    models = {n: os.path.join(ROOT, "models", n + ".onnx") for n in ("fashion_cnn", "fashion_resnet")}
    cases = [
        # name, model, demo image, evmap args, reference settings
        ("cnn boot classes 9,7 marginal", "fashion_cnn", "9_ankle_boot",
         ["--sampler", "marginal", "--class", "9,7"], dict(targets=[9, 7])),
        ("cnn shirt top-1 marginal stride 3", "fashion_cnn", "6_shirt",
         ["--sampler", "marginal", "--stride", "3"], dict(targets="top", stride=3)),
        ("resnet bag stride 2", "fashion_resnet", "8_bag",
         ["--sampler", "marginal", "--stride", "2", "--class", "8"], dict(targets=[8], stride=2)),
        ("resnet trouser roi, no Laplace", "fashion_resnet", "1_trouser",
         ["--sampler", "marginal", "--roi", "4,6,14,12", "--no-laplace", "--class", "1,3"],
         dict(targets=[1, 3], roi=(4, 6, 14, 12), laplace_n=0)),
        ("cnn hidden unit conv3:5", "fashion_cnn", "4_coat",
         ["--sampler", "marginal", "--target", "/conv3/Conv_output_0:5", "--roi", "2,2,20,20"],
         dict(targets=[0], hidden=("conv3", 5), roi=(2, 2, 20, 20))),
        ("cnn occlusion (constant 0, S=1)", "fashion_cnn", "7_sneaker",
         ["--sampler", "constant", "--fill", "zero", "--class", "7"],
         dict(targets=[7], constant=0.0)),
    ]
    if os.environ.get("EVMAP_QUICK") == "1":
        # the sanitized pass of make test: one case of each kind, no full
        # stride-1 map with samples
        cases = [cases[i] for i in (1, 3, 4, 5)]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, model_name, stem, args, ref in cases:
            try:
                model = fashion_models.torch_model_from_onnx(models[model_name])
                x = load_png_gray(os.path.join(DEMO, stem + ".png")).astype(np.float32)[None] / 255
                scorer = Scorer(model, ref.get("laplace_n", 100000), ref.get("hidden"))
                targets = ref["targets"]
                if targets == "top":
                    targets = [int(np.argmax(scorer.raw(x[None])[0]))]
                k, samples = 4, 10
                if "constant" in ref:
                    repl = np.full((1, *x.shape), ref["constant"], np.float32)
                else:
                    repl = train[:samples]
                    args = args + ["--reference", TRAIN, "--samples", str(samples)]
                want = reference_pda(scorer, x, repl, k, ref.get("stride", 1), targets,
                                     ref.get("roi"))
                out = os.path.join(tmp, name.replace(" ", "_"))
                run_evmap(models[model_name], os.path.join(DEMO, stem + ".png"), out, args)
                ok = True
                for t, c in enumerate(targets):
                    suffix = "unit-_conv3_Conv_output_0-5" if "hidden" in ref else f"c{c}"
                    ours = np.load(os.path.join(out, f"{stem}.pda.{suffix}.npy"))
                    ok &= compare(f"{name} [{suffix}]", ours, want[t])
            except Exception as e:  # report and go on
                print(f"FAIL {name}: {e}")
                ok = False
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
