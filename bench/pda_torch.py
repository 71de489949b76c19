#!/usr/bin/python3
"""Prediction Difference Analysis in plain batched PyTorch (the baseline for bench/pda).

What a user would write without evmap (DESIGN.md 1.1, marginal sampler): for
every k x k window (all channels, stride s) build S copies of the image with
the window replaced by the same place in S reference images, run them through
the model in batches of about --batch images (several windows per batch) under
torch.no_grad(), take the softmax (the models end in logits), average the
target class's probability over the S copies, apply the Laplace correction
p <- (p*N + 1)/(N + K), and add WE = log2 odds(x) - log2 odds(x without w) to
every pixel of the window; each pixel's value is the mean over the windows
that cover it (NaN where no window does).

Used as a module by bench/pda (pda(), load_model(), load_image(),
load_references()); also runs on its own:

usage: bench/pda_torch.py --model vgg16|FILE.onnx --reference SRC [--samples 10]
           [--window k] [--stride 1] [--roi x,y,w,h] [--batch 64] [--threads 2]
           [--class c] [--out MAP.npy] IMAGE

--model: a torchvision name known to scripts/export_torchvision.py (random
weights) or an evmap Fashion-MNIST .onnx (scripts/fashion_models.py rebuilds
it in torch). Images are pixel / 255 with no further preprocessing; they must
already have the model's input size. --reference: a folder of PNG/JPEG images
(first S by name) or an IDX file (first S images).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def log2_odds(p, laplace_n, num_classes):
    """log2(p / (1 - p)) after the Laplace correction (laplace_n <= 0: none)."""
    if laplace_n > 0:
        p = (p * laplace_n + 1.0) / (laplace_n + num_classes)
    return torch.log2(p) - torch.log2(1.0 - p)


def windows_of(height, width, window, stride=1, roi=None):
    """Top-left corners (y, x) of the windows on the stride grid inside roi (x, y, w, h)."""
    x0, y0, x1, y1 = (0, 0, width, height) if roi is None else (
        roi[0], roi[1], roi[0] + roi[2], roi[1] + roi[3])
    return [(y, x) for y in range(0, height - window + 1, stride)
            for x in range(0, width - window + 1, stride)
            if y >= y0 and x >= x0 and y + window <= y1 and x + window <= x1]


def pda(model, image, refs, cls=None, window=10, stride=1, roi=None, batch=64,
        laplace_n=100000):
    """Evidence map of class cls (default: the top-1) for image (C x H x W float
    tensor), with the windows replaced by the same place in refs (S x C x H x W).
    Returns (map H x W float64 numpy array, cls, number of windows)."""
    samples = refs.shape[0]
    channels, height, width = image.shape
    k = window
    wins = windows_of(height, width, k, stride, roi)
    per_batch = max(1, batch // samples)   # windows per forward pass
    total = torch.zeros(height, width, dtype=torch.float64)
    count = torch.zeros(height, width, dtype=torch.float64)
    with torch.no_grad():
        probs = torch.softmax(model(image[None]).double(), dim=1)[0]
        num_classes = probs.numel()
        if cls is None:
            cls = int(probs.argmax())
        base = log2_odds(probs[cls], laplace_n, num_classes)
        for first in range(0, len(wins), per_batch):
            chunk = wins[first:first + per_batch]
            x = image.repeat(len(chunk) * samples, 1, 1, 1)
            for i, (y, x0) in enumerate(chunk):
                x[i * samples:(i + 1) * samples, :, y:y + k, x0:x0 + k] = \
                    refs[:, :, y:y + k, x0:x0 + k]
            p = torch.softmax(model(x).double(), dim=1)[:, cls]
            p = p.view(len(chunk), samples).mean(dim=1)
            we = base - log2_odds(p, laplace_n, num_classes)
            for i, (y, x0) in enumerate(chunk):
                total[y:y + k, x0:x0 + k] += we[i]
                count[y:y + k, x0:x0 + k] += 1
    out = torch.full((height, width), float("nan"), dtype=torch.float64)
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    return out.numpy(), cls, len(wins)


def load_model(name):
    """A torchvision name (random weights, as exported by export_torchvision)
    or an evmap Fashion-MNIST .onnx file; the model in eval mode."""
    if name.endswith(".onnx"):
        import fashion_models
        return fashion_models.torch_model_from_onnx(name)
    import export_torchvision
    return export_torchvision.build(name)


def load_image(path, channels):
    """PNG/JPEG file -> C x H x W float32 tensor in [0, 1]."""
    from PIL import Image
    img = Image.open(path).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def load_references(src, count, channels):
    """The first count images of a folder (sorted by name) or an IDX file."""
    if os.path.isdir(src):
        names = sorted(n for n in os.listdir(src)
                       if n.lower().endswith((".png", ".jpg", ".jpeg")))[:count]
        return torch.stack([load_image(os.path.join(src, n), channels) for n in names])
    import fashion_models
    arr = fashion_models.read_idx(src)[:count].astype(np.float32) / 255.0
    return torch.from_numpy(arr).unsqueeze(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--window", type=int, default=None,
                    help="default 10, or max(2, round(side/7)) under 100 px")
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--roi", default=None, help="x,y,w,h")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--class", dest="cls", type=int, default=None)
    ap.add_argument("--laplace-n", type=float, default=100000)
    ap.add_argument("--out", default=None, help="write the map here (.npy)")
    ap.add_argument("image")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    channels = 1 if args.model.endswith(".onnx") else 3
    image = load_image(args.image, channels)
    refs = load_references(args.reference, args.samples, channels)
    if refs.shape[0] < args.samples or refs.shape[1:] != image.shape:
        sys.exit(f"pda_torch: need {args.samples} references of shape {tuple(image.shape)}, "
                 f"got {tuple(refs.shape)}")
    side = min(image.shape[1:])
    window = args.window or (10 if side >= 100 else max(2, round(side / 7)))
    roi = [int(v) for v in args.roi.split(",")] if args.roi else None
    t0 = time.perf_counter()
    emap, cls, n = pda(model, image, refs, args.cls, window, args.stride, roi, args.batch,
                       args.laplace_n)
    seconds = time.perf_counter() - t0
    print(f"class {cls}: {n} windows in {seconds:.2f} s ({n / seconds:.2f} windows/s); "
          f"max |WE| {np.nanmax(np.abs(emap)):.4g}")
    if args.out:
        np.save(args.out, emap.astype(np.float32))


if __name__ == "__main__":
    main()
