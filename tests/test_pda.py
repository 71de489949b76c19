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

The default conditional sampler: tests/tools/pda_draws replays the draws
evmap_pda made (same sampler file and seed), the reference above is fed them
and must give evmap explain's map within 1e-3; and many draws of single
windows must follow the conditional Gaussian computed here in numpy from the
fitted mean and covariance, μ_w + Σ_wr Σ_rr⁻¹ (x_r − μ_r) and
Σ_ww − Σ_wr Σ_rr⁻¹ Σ_rw, clipped to the references' range (see
check_draw_distribution).
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


def reference_pda(scorer, x, replacements, k, stride, targets, roi=None, draws=None):
    """x: C×H×W; replacements: S×C×H×W images whose window pixels replace x's,
    or draws: the S×C×k×k replacements of each window, in raster order."""
    c_, h, w = x.shape
    x0, y0, rw, rh = roi if roi else (0, 0, w, h)
    base = scorer.raw(x[None])
    sums = np.zeros((len(targets), h, w))
    counts = np.zeros((h, w))
    for i in range(0, h - k + 1, stride):
        for j in range(0, w - k + 1, stride):
            if not (i >= y0 and j >= x0 and i + k <= y0 + rh and j + k <= x0 + rw):
                continue
            if draws is not None:
                batch = np.repeat(x[None], len(draws[0]), axis=0)
                batch[:, :, i:i + k, j:j + k] = draws.pop(0)
            else:
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


# ---- the conditional sampler (the default) ----
#
# tests/tools/pda_draws (linked against the library) loads the sampler file
# and writes (a) its fitted Gaussian and clip range, (b) the draws evmap_pda
# makes for a run (one generator seeded with --seed, windows in raster order,
# S draws each) and (c) many draws for single windows. The map evmap explain
# writes is compared with the PyTorch reference fed the replayed draws; the
# draws are compared with the conditional Gaussian computed here in numpy
# from the fitted mean and covariance, clipped to the references' range.

def pda_draws(*args):
    tool = os.path.join(BUILD, "tests", "pda_draws")
    subprocess.run([tool, *[str(a) for a in args]], check=True)


def write_idx(path, images):
    n, h, w = images.shape
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + h.to_bytes(4, "big")
                + w.to_bytes(4, "big") + images.astype(np.uint8).tobytes())


def conditional_reference(mean, cov, x, k, pad, y, xx):
    """DESIGN.md 1.1 / docs/pda.md: the l×l patch (l = k + 2·pad) around the
    window, shifted to lie inside the image; the window given the ring:
    μ_w + Σ_wr Σ_rr⁻¹ (x_r − μ_r) and Σ_ww − Σ_wr Σ_rr⁻¹ Σ_rw (one channel)."""
    h, w = x.shape
    l = k + 2 * pad
    py, px = min(max(y - pad, 0), h - l), min(max(xx - pad, 0), w - l)
    win = np.zeros((l, l), bool)
    win[y - py:y - py + k, xx - px:xx - px + k] = True
    wi, ri = np.flatnonzero(win), np.flatnonzero(~win)
    v = x[py:py + l, px:px + l].astype(np.float64).ravel()
    s_wr = cov[np.ix_(wi, ri)]
    m = mean[wi] + s_wr @ np.linalg.solve(cov[np.ix_(ri, ri)], v[ri] - mean[ri])
    c = cov[np.ix_(wi, wi)] - s_wr @ np.linalg.solve(cov[np.ix_(ri, ri)], s_wr.T)
    return m, c


def censored_moments(m, sd, lo, hi):
    """Mean, standard deviation and P(Y = lo), P(Y = hi) of Y = clip(X, lo, hi)
    for X ~ N(m, sd²), per element."""
    from math import erf, exp, pi, sqrt
    cdf = np.vectorize(lambda z: 0.5 * (1 + erf(z / sqrt(2))))
    pdf = np.vectorize(lambda z: exp(-0.5 * z * z) / sqrt(2 * pi))
    a, b = (lo - m) / sd, (hi - m) / sd
    fa, fb, da, db = cdf(a), cdf(b), pdf(a), pdf(b)
    inside = fb - fa
    ey = lo * fa + hi * (1 - fb) + m * inside + sd * (da - db)
    ey2 = (lo * lo * fa + hi * hi * (1 - fb) + m * m * inside + 2 * m * sd * (da - db)
           + sd * sd * (inside + a * da - b * db))
    return ey, np.sqrt(np.maximum(ey2 - ey * ey, 1e-300)), fa, 1 - fb


def check_draw_distribution(tmp, evs, x, refs, k, pad):
    """Many draws of a few windows (centre, corners, borders: shifted patches)
    of a demo image and of a mid-grey image against the clipped conditional Gaussian: the fitted clip range is the
    references' range; every draw lies in it; per pixel the draws' mean and
    the share clipped at each end match the censored normal (z < 5); the
    covariance between pixels that are (almost) never clipped matches the
    conditional covariance (z < 6)."""
    h, w = x.shape
    img = os.path.join(tmp, "cond-image.f32")
    x.astype("<f4").tofile(img)
    params = os.path.join(tmp, "cond-params.f64")
    pda_draws(evs, img, 1, h, w, "params", params)
    l = k + 2 * pad
    p = np.fromfile(params, "<f8")
    dim = l * l
    mean, cov = p[:dim], p[dim:dim + dim * dim].reshape(dim, dim)
    lo, hi = p[-2], p[-1]
    ok = lo == refs.min() and hi == refs.max()
    print(f"{'ok  ' if ok else 'FAIL'} conditional sampler: clip range [{lo}, {hi}] = the "
          f"references' range [{refs.min()}, {refs.max()}]")
    results = [ok]
    n = 4000 if os.environ.get("EVMAP_QUICK") == "1" else 20000
    worst_mean = worst_clip = worst_cov = 0.0
    outside = 0
    pairs = 0
    # a mid-grey image as well, whose windows are rarely clipped: there the
    # covariance can be compared without the clipping's distortion
    yy, xg = np.mgrid[0:h, 0:w]
    grey = (0.5 + 0.03 * np.sin(yy / 3.0) * np.cos(xg / 4.0)).astype(np.float32)
    grey_img = os.path.join(tmp, "cond-grey.f32")
    grey.astype("<f4").tofile(grey_img)
    for y, xx, image, path in [(12, 12, x, img), (8, 6, x, img), (0, 0, x, img),
                               (0, 13, x, img), (24, 24, x, img), (20, 0, x, img),
                               (12, 12, grey, grey_img), (0, 24, grey, grey_img)]:
        out = os.path.join(tmp, f"cond-many-{y}-{xx}.f32")
        pda_draws(evs, path, 1, h, w, "many", y, xx, n, 11, out)
        d = np.fromfile(out, "<f4").reshape(n, k * k).astype(np.float64)
        outside += int(((d < lo) | (d > hi)).sum())
        m, c = conditional_reference(mean, cov, image, k, pad, y, xx)
        sd = np.sqrt(np.diag(c))
        ey, sy, plo, phi = censored_moments(m, sd, lo, hi)
        worst_mean = max(worst_mean, np.max(np.abs(d.mean(axis=0) - ey) / (sy / np.sqrt(n))))
        for frac, prob in (((d <= lo).mean(axis=0), plo), ((d >= hi).mean(axis=0), phi)):
            se = np.sqrt(np.maximum(prob * (1 - prob), 1.0 / n) / n)
            worst_clip = max(worst_clip, np.max(np.abs(frac - prob) / se))
        free = np.flatnonzero((plo < 1e-3) & (phi < 1e-3))
        if len(free) > 1:
            sc = np.cov(d[:, free], rowvar=False)
            cf = c[np.ix_(free, free)]
            se = np.sqrt((np.outer(np.diag(cf), np.diag(cf)) + cf * cf) / n)
            worst_cov = max(worst_cov, np.max(np.abs(sc - cf) / se))
            pairs += len(free) * (len(free) + 1) // 2
    for ok, what in [
            (outside == 0, f"every draw lies in the clip range ({outside} outside)"),
            (worst_mean < 5, f"per-pixel mean of {n} draws = censored conditional mean "
                             f"(max z {worst_mean:.2f})"),
            (worst_clip < 5, f"share of draws clipped at each end = normal tail "
                             f"(max z {worst_clip:.2f})"),
            (pairs >= 50 and worst_cov < 6, f"covariance of unclipped pixels = conditional "
                                            f"covariance ({pairs} entries, max z {worst_cov:.2f})")]:
        print(f"{'ok  ' if ok else 'FAIL'} conditional draws, 8 windows: {what}")
        results.append(ok)
    return results


def check_conditional_pda(tmp, evs, model_name, stem, roi, stride, cls):
    """evmap explain with the conditional sampler file against the PyTorch
    reference fed the draws evmap_pda made (replayed by the tool)."""
    model_path = os.path.join(ROOT, "models", model_name + ".onnx")
    png = os.path.join(DEMO, stem + ".png")
    x = load_png_gray(png).astype(np.float32)[None] / 255
    c, h, w = x.shape
    k, samples, seed = 4, 10, 5
    img = os.path.join(tmp, stem + ".f32")
    x.astype("<f4").tofile(img)
    region = roi or (0, 0, w, h)
    out_draws = os.path.join(tmp, stem + "-draws.f32")
    pda_draws(evs, img, c, h, w, "replay", ",".join(map(str, region)), stride, samples, seed,
              out_draws)
    d = np.fromfile(out_draws, "<f4").reshape(-1, samples, c, k, k)
    out = os.path.join(tmp, f"cond-{model_name}-{stem}")
    args = ["--sampler-file", evs, "--samples", str(samples), "--seed", str(seed),
            "--stride", str(stride), "--class", str(cls)]
    if roi:
        args += ["--roi", ",".join(map(str, roi))]
    run_evmap(model_path, png, out, args)
    ours = np.load(os.path.join(out, f"{stem}.pda.c{cls}.npy"))
    scorer = Scorer(fashion_models.torch_model_from_onnx(model_path), 100000)
    want = reference_pda(scorer, x, None, k, stride, [cls], roi, draws=list(d))
    name = (f"{model_name} {stem} conditional sampler ({len(d)} windows, stride {stride}"
            f"{', roi ' + ','.join(map(str, roi)) if roi else ''})")
    return compare(name, ours, want[0])


def conditional_cases(tmp):
    refs_u8 = fashion_models.read_idx(TRAIN)[:300]
    refs_idx = os.path.join(tmp, "refs.idx")
    write_idx(refs_idx, refs_u8)
    evs = os.path.join(tmp, "fashion-k4-p2.evs")
    subprocess.run([os.path.join(BUILD, "evmap"), "fit-sampler", "--model",
                    os.path.join(ROOT, "models", "fashion_cnn.onnx"), "--patches", "5000",
                    "--quiet", "-o", evs, refs_idx], check=True)
    x = load_png_gray(os.path.join(DEMO, "2_pullover.png")).astype(np.float32) / 255
    results = check_draw_distribution(tmp, evs, x, refs_u8.astype(np.float32) / 255, 4, 2)
    results.append(check_conditional_pda(tmp, evs, "fashion_resnet", "2_pullover",
                                         (3, 5, 12, 11), 1, 2))
    if os.environ.get("EVMAP_QUICK") != "1":
        results.append(check_conditional_pda(tmp, evs, "fashion_cnn", "5_sandal", None, 2, 5))
    return results


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
        try:
            results = conditional_cases(tmp)
        except Exception as e:  # a crash of evmap or the tool is a failure
            print(f"FAIL conditional sampler: {e}")
            results = [False]
        passed += sum(results)
        failed += len(results) - sum(results)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
