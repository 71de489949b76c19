"""Independent numpy + PyTorch reference for evmap's efficient method.

Written from the definitions in DESIGN.md 1.1/1.3 and docs/efficient.md,
sharing no code with evmap (the models come from their ONNX weights through
scripts/fashion_models.py, a plain PyTorch re-implementation):

- windows: k×k, all channels, top-left corners 0, s, 2s, ... (origin at the
  image's corner, as in tests/test_pda.py), kept when the window lies inside
  the region of interest x, y, w, h;
- marginal sampler: draw s of window w is the window's pixels at the same
  place in reference image s (the first S references);
- expansion around the window's mean at split layer L:
  p(c|x\\w) = softmax(above_L(h̄_w))_c with h̄_w = (1/S) Σ_s below_L(x̃_s);
  at L = input h̄_w is the image with the window set to the mean of its S
  draws;
- Laplace correction p ← (p·N + 1)/(N + K) (N = 0: none); weight of evidence
  WE_w = log2 odds(c|x) − log2 odds(c|x\\w); each pixel the mean WE of the
  windows covering it, NaN where none does;
- refinement (--refine Q, coarse window K2): a coarse map (K2 windows at
  stride k, same definition); each k×k window's score is the largest over
  the targets of the mean |coarse WE| over its pixels, +inf when it touches
  a NaN coarse pixel; the ceil(Q·n) windows with the largest scores are
  refined (ties: the earlier window in row-major order first); per target
  the others get s·(mean coarse WE over the window) with
  s = Σ f·c / Σ c² over the refined windows whose c is finite (s = 1 unless
  both sums are positive); windows whose estimate is not finite are left
  out of the pixel means.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_models  # noqa: E402


def load_gray(path):
    """An 8-bit gray PNG as a 1×H×W float32 image in [0, 1] (PIL, not evmap)."""
    import PIL.Image
    return np.asarray(PIL.Image.open(path).convert("L"), dtype=np.float32)[None] / 255.0


def references(path, n):
    """The first n images of an IDX file as n×1×H×W float32 in [0, 1]."""
    return fashion_models.read_idx(path)[:n].astype(np.float32)[:, None] / 255.0


class Network:
    """A Fashion-MNIST model cut at named layer outputs (the ONNX value names).

    layers: list of (name, function); the network is their composition."""

    def __init__(self, onnx_path):
        m = fashion_models.torch_model_from_onnx(onnx_path)
        self.model = m
        if isinstance(m, fashion_models.FashionCNN):
            self.layers = [
                ("/Relu_output_0", lambda t: F.relu(m.conv1(t))),
                ("/Relu_1_output_0", lambda t: F.relu(m.conv2(t))),
                ("/MaxPool_output_0", lambda t: F.max_pool2d(t, 2)),
                ("/Relu_2_output_0", lambda t: F.relu(m.conv3(t))),
                ("/Relu_3_output_0", lambda t: F.relu(m.conv4(t))),
                ("/MaxPool_1_output_0", lambda t: F.max_pool2d(t, 2)),
                ("/Flatten_output_0", lambda t: torch.flatten(t, 1)),
                ("/Relu_4_output_0", lambda t: F.relu(m.fc1(t))),
                ("logits", m.fc2),
            ]
        else:
            self.layers = resnet_layers(m)
        self.names = ["input"] + [n for n, _ in self.layers]

    def run(self, x, first=0, last=None):
        """Applies layers [first, last) to x (numpy float32) in batches."""
        last = len(self.layers) if last is None else last
        out = []
        with torch.no_grad():
            for b in range(0, len(x), 256):
                t = torch.from_numpy(np.ascontiguousarray(x[b:b + 256], dtype=np.float32))
                for _, f in self.layers[first:last]:
                    t = f(t)
                out.append(t.numpy())
        return np.concatenate(out)

    def split_index(self, name):
        """Number of layers below the split (0 for the input)."""
        return self.names.index(name)


def resnet_layers(m):
    """The Fashion ResNet as layers. Inside block 1 the split value carries
    the block's input along (the skip connection): both are live across a
    split there, and the window-centred mean is taken of both."""
    def block(b):
        return lambda t: b(t)

    def inside(t):  # block 1 up to its first ReLU, with its input beside it
        return torch.cat([F.relu(m.layer1.bn1(m.layer1.conv1(t))), t], 1)

    def rest_of_block(p):
        y, skip = p[:, :16], p[:, 16:]
        return F.relu(m.layer1.bn2(m.layer1.conv2(y)) + skip)

    return [
        ("/Relu_output_0", lambda t: F.relu(m.bn1(m.conv1(t)))),
        ("/layer1/Relu_output_0", inside),
        ("/layer1/Relu_1_output_0", rest_of_block),
        ("/layer2/Relu_1_output_0", block(m.layer2)),
        ("/layer3/Relu_1_output_0", block(m.layer3)),
        ("logits", lambda t: m.fc(torch.flatten(m.pool(t), 1))),
    ]


def log2_odds(logits, classes, laplace_n):
    """N×T log2 odds of each class from N×K logits, in float64, stably."""
    z = logits.astype(np.float64)
    k = z.shape[1]
    out = np.empty((len(z), len(classes)))
    for t, c in enumerate(classes):
        others = np.delete(z, c, axis=1)
        m = others.max(axis=1, keepdims=True)
        lo = z[:, c] - (m[:, 0] + np.log(np.exp(others - m).sum(axis=1)))
        p, q = 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(lo))
        if laplace_n:
            p = (p * laplace_n + 1) / (laplace_n + k)
            q = (q * laplace_n + k - 1) / (laplace_n + k)
        out[:, t] = np.log2(p) - np.log2(q)
    return out


def window_grid(h, w, k, stride, roi=None):
    x0, y0, rw, rh = roi if roi else (0, 0, w, h)
    return [(i, j) for i in range(0, h - k + 1, stride) for j in range(0, w - k + 1, stride)
            if i >= y0 and j >= x0 and i + k <= y0 + rh and j + k <= x0 + rw]


def window_evidence(net, x, refs, k, stride, classes, laplace_n, split="input", roi=None):
    """Per window (grid order) and target: WE of the window-mean expansion.

    Returns (windows, WE as n_windows × T)."""
    _, h, w = x.shape
    windows = window_grid(h, w, k, stride, roi)
    base = log2_odds(net.run(x[None]), classes, laplace_n)[0]
    cut = net.split_index(split)
    if cut == 0:
        # the image with the window replaced by the mean of its S draws
        batch = np.repeat(x[None], len(windows), axis=0)
        for n, (i, j) in enumerate(windows):
            batch[n, :, i:i + k, j:j + k] = refs[:, :, i:i + k, j:j + k].astype(
                np.float64).mean(axis=0)
        logits = net.run(batch)
    else:
        means = []
        for first in range(0, len(windows), 16):  # 16 windows' copies per batch
            part = windows[first:first + 16]
            copies = np.repeat(x[None], len(refs) * len(part), axis=0)
            for n, (i, j) in enumerate(part):
                copies[n * len(refs):(n + 1) * len(refs), :, i:i + k, j:j + k] = \
                    refs[:, :, i:i + k, j:j + k]
            h_l = net.run(copies, 0, cut).astype(np.float64)
            means += list(h_l.reshape(len(part), len(refs), *h_l.shape[1:]).mean(axis=1)
                          .astype(np.float32))
        logits = net.run(np.stack(means), cut)
    return windows, base[None] - log2_odds(logits, classes, laplace_n)


def pixel_map(shape, k, windows, we):
    """T×H×W: each pixel the mean of the finite WE of its windows (NaN: none)."""
    h, w = shape
    t_count = we.shape[1]
    sums, counts = np.zeros((t_count, h, w)), np.zeros((t_count, h, w))
    for n, (i, j) in enumerate(windows):
        for t in range(t_count):
            if np.isfinite(we[n, t]):
                sums[t, i:i + k, j:j + k] += we[n, t]
                counts[t, i:i + k, j:j + k] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def window_means(maps, k, windows):
    """n_windows × T: the mean of each target's map over each window (NaN-propagating)."""
    return np.array([[m[i:i + k, j:j + k].mean() for m in maps] for i, j in windows])


def refinement(coarse_maps, fine_windows, fine_we, k, q):
    """The selection and composition of --refine Q.

    coarse_maps: T×H×W coarse map; fine_windows / fine_we: every k×k window
    and its WE (only the refined ones are used). Returns a dict with keep
    (bool per window), order (windows by rank), score, m (windows refined),
    coarse_mean (c per window and target), scale (per target), estimate
    (s·c per window and target) and we (the composed per-window WE)."""
    c = window_means(coarse_maps, k, fine_windows)
    with np.errstate(invalid="ignore"):
        score = np.array([[np.abs(m[i:i + k, j:j + k]).mean() for m in coarse_maps]
                          for i, j in fine_windows]).max(axis=1)
    score = np.where(np.isnan(c).any(axis=1), np.inf, score)
    n = len(fine_windows)
    order = sorted(range(n), key=lambda i: (-score[i], i))
    m = math.ceil(q * n)
    keep = np.zeros(n, bool)
    keep[order[:m]] = True
    scale = np.ones(c.shape[1])
    for t in range(c.shape[1]):
        sel = keep & np.isfinite(c[:, t])
        fc, cc = float(np.sum(fine_we[sel, t] * c[sel, t])), float(np.sum(c[sel, t] ** 2))
        if cc > 0 and fc > 0:
            scale[t] = fc / cc
    estimate = c * scale[None]
    we = np.where(keep[:, None], fine_we, estimate)
    return dict(keep=keep, order=order, score=score, m=m, scale=scale, coarse_mean=c,
                estimate=estimate, we=we)


def decode_windows(maps, k, windows, used):
    """Recovers per-window WE from pixel maps (the inverse of pixel_map).

    used: n_windows × T bools, the windows that entered each target's means.
    A full 2-D box sum is injective, so least squares over the pixels gives
    the window values exactly up to the map's float32 rounding (the system
    is well enough conditioned: condition number ~300 for 25×25 windows)."""
    t_count, h, w = maps.shape
    out = np.full((len(windows), t_count), np.nan)
    for t in range(t_count):
        cols = [n for n in range(len(windows)) if used[n, t]]
        a = np.zeros((h * w, len(cols)))
        for col, n in enumerate(cols):
            i, j = windows[n]
            box = np.zeros((h, w))
            box[i:i + k, j:j + k] = 1
            a[:, col] = box.ravel()
        counts = a.sum(axis=1)
        rows = counts > 0
        b = np.where(rows, np.nan_to_num(maps[t].ravel().astype(np.float64)) * counts, 0)
        sol, *_ = np.linalg.lstsq(a[rows], b[rows], rcond=None)
        out[cols, t] = sol
    return out


def adaptive_grid(windows, we, step, threshold):
    """The adaptive window grid (DESIGN.md 1.3) over the lattice of windows
    (grid order, rows first), given every window's WE (n × T).

    Coarse lattice: every step-th row and column of positions and the last
    ones. A cell (its four corners known) is halved along each side longer
    than one position when, for some target, max - min of its corners
    exceeds threshold × (max - min of that target over the coarse lattice),
    or a corner is not finite; its new corners become known. Positions never
    evaluated take the bilinear value of the corners of the smallest final
    cell holding them (ties: the first cell in row, then column order).

    Returns (evaluated mask over the windows, WE with the interpolated
    values, the smallest distance of a tested cell's largest relative spread
    from the threshold: how far the decisions are from a rounding tie)."""
    rows = sorted({i for i, _ in windows})
    cols = sorted({j for _, j in windows})
    ny, nx, t_count = len(rows), len(cols), we.shape[1]
    field = we.reshape(ny, nx, t_count)
    known = np.zeros((ny, nx), bool)

    def lattice(n):
        return sorted(set(range(0, n, step)) | {n - 1})

    lr, lc = lattice(ny), lattice(nx)
    for a in lr:
        for b in lc:
            known[a, b] = True
    coarse = field[np.ix_(lr, lc)].reshape(-1, t_count)
    span = np.array([np.ptp(coarse[np.isfinite(coarse[:, t]), t]) if np.isfinite(coarse[:, t]).any()
                     else 0.0 for t in range(t_count)])
    pairs = lambda ax: list(zip(ax[:-1], ax[1:])) if len(ax) > 1 else [(ax[0], ax[0])]  # noqa: E731
    final, margin = [], [math.inf]

    def visit(i0, j0, i1, j1):
        corners = field[[i0, i0, i1, i1], [j0, j1, j0, j1]]
        if not np.isfinite(corners).all():
            split = True
        else:
            spread = corners.max(axis=0) - corners.min(axis=0)
            ratio = max([spread[t] / span[t] for t in range(t_count) if span[t] > 0] or [0.0])
            split = ratio > threshold
            if i1 - i0 >= 2 or j1 - j0 >= 2:
                margin[0] = min(margin[0], abs(ratio - threshold))
        if split and (i1 - i0 >= 2 or j1 - j0 >= 2):
            ii = [i0, (i0 + i1) // 2, i1] if i1 - i0 >= 2 else [i0, i1]
            jj = [j0, (j0 + j1) // 2, j1] if j1 - j0 >= 2 else [j0, j1]
            for a in ii:
                for b in jj:
                    known[a, b] = True
            for a0, a1 in pairs(ii):
                for b0, b1 in pairs(jj):
                    visit(a0, b0, a1, b1)
        else:
            final.append((i0, j0, i1, j1))

    for i0, i1 in pairs(lr):
        for j0, j1 in pairs(lc):
            visit(i0, j0, i1, j1)
    out = field.copy()
    for i in range(ny):
        for j in range(nx):
            if known[i, j]:
                continue
            holding = [c for c in final if c[0] <= i <= c[2] and c[1] <= j <= c[3]]
            i0, j0, i1, j1 = min(holding, key=lambda c: ((c[2] - c[0] + 1) * (c[3] - c[1] + 1),
                                                         c[0], c[1]))
            fy = (i - i0) / (i1 - i0) if i1 > i0 else 0.0
            fx = (j - j0) / (j1 - j0) if j1 > j0 else 0.0
            out[i, j] = ((1 - fy) * ((1 - fx) * field[i0, j0] + fx * field[i0, j1])
                         + fy * ((1 - fx) * field[i1, j0] + fx * field[i1, j1]))
    return known.reshape(-1), out.reshape(-1, t_count), margin[0]
