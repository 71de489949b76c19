#!/usr/bin/python3
"""`evmap evaluate --masks`: the localisation metrics against numpy.

The model is scripts/linear_model.py's two-class linear classifier on 24x32
gray images, whose maps numpy knows exactly: for the log-odds, saliency is
|w_c - w_o| and gradient x input (w_c - w_o) * x. The pointing game,
relevance mass, relevance rank, top-q IoU and the uniform baselines are
written again here from their definitions (dilation by offsets within the
disc, ties shared in proportion) and compared with the JSON for every image:
  - masks matched by name (a folder with an extra mask sorting first, so that
    matching by order would be wrong) and by order (an IDX file);
  - --pointing-tolerance and --iou-top, and the defaults (15 px at 224,
    scaled to the shorter side; 10 %);
  - the table, CSV and JSON agree and carry the "(uniform)" row;
  - masks follow the images' resize (--size): a left-half mask stays half;
  - bad masks and options: exit code 2, one line, nothing written.
Near-ties that float rounding could decide either way are allowed one pixel.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import linear_model  # noqa: E402
from make_demo_images import png_gray8  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
EVMAP = os.path.join(BUILD, "evmap")
H, W = 24, 32
N = 6

passed = failed = 0


def report(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def run(args):
    return subprocess.run([EVMAP, "evaluate", "--quiet"] + args, capture_output=True, text=True)


def write_png(path, pixels):
    with open(path, "wb") as f:
        f.write(png_gray8(pixels.astype(np.uint8)))


# ---------------------------------------------------------------- reference

def dilate(mask, r):
    """Pixels within Euclidean distance r of the mask."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:
                continue
            src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] |= src
    return out


def expected_top_inside(m, mask, k):
    """Mask pixels among the k highest, pixels tied at the cut sharing the rest."""
    v = np.where(np.isnan(m), -np.inf, m).ravel()
    cut = np.sort(v)[::-1][k - 1]
    inside = mask.ravel()
    above = v > cut
    tied = v == cut
    return inside[above].sum() + (k - above.sum()) * inside[tied].sum() / tied.sum()


def reference(m, mask, tolerance, q):
    n = m.size
    area = int(mask.sum())
    top = max(1, int(np.floor(q * n + 0.5)))
    near = dilate(mask, tolerance)
    best = m == np.nanmax(m)
    pos = np.where(m > 0, m, 0)
    inter = expected_top_inside(m, mask, top)
    a = area / n
    qq = top / n
    return {
        "pointing_game": near[best].sum() / best.sum(),
        "relevance_mass": pos[mask].sum() / pos.sum(),
        "relevance_rank": expected_top_inside(m, mask, area) / area,
        "iou_top": inter / (top + area - inter),
        "uniform_area": a,
        "uniform_pointing": near.mean(),
        "uniform_iou": qq * a / (qq + a - qq * a),
        "top": top,
        "area": area,
    }


def near_tie(m, k):
    """Whether the k-th and (k+1)-th values (or the top two, k = 1) differ by
    less than float rounding could change."""
    v = np.sort(m.ravel())[::-1]
    tol = 1e-5 * np.abs(v).max()
    return k < len(v) and 0 < v[k - 1] - v[k] <= tol


def compare(res, images, g, masks, tolerance, q, label):
    worst = {"pointing_game": 0, "relevance_mass": 0, "relevance_rank": 0, "iou_top": 0}
    allowed = {}
    base_ok = True
    for img in res["per_image"]:
        i = img["index"]
        sign = 1 if img["class"] == 1 else -1  # g = w_1 - w_0
        maps = {"saliency": np.abs(g), "gradxinput": sign * g * images[i]}
        for method, m in maps.items():
            ref = reference(m.astype(np.float32).astype(np.float64), masks[i], tolerance, q)
            got = img["methods"][method]
            slack = {
                "pointing_game": 1.0 if near_tie(m, 1) else 1e-12,
                "relevance_mass": 1e-5,
                "relevance_rank": (1.0 if near_tie(m, ref["area"]) else 0) / ref["area"] + 1e-9,
                "iou_top": (1.0 if near_tie(m, ref["top"]) else 0) / ref["top"] + 1e-9,
            }
            for key in worst:
                d = abs(got[key] - ref[key])
                worst[key] = max(worst[key], d - slack[key])
                allowed[key] = max(allowed.get(key, 0), slack[key])
        u = img["uniform"]
        base_ok &= (abs(u["mask_area"] - ref["uniform_area"]) < 1e-8
                    and abs(u["pointing_game"] - ref["uniform_pointing"]) < 1e-8
                    and abs(u["iou_top"] - ref["uniform_iou"]) < 1e-8)
    for key, d in worst.items():
        report(d <= 0, f"{label}: {key} equals numpy's on {len(res['per_image'])} images x 2 "
               f"methods (worst excess {d:.2g})")
    report(base_ok, f"{label}: uniform baselines equal numpy's")


# -------------------------------------------------------------------- main

def random_masks(rng, count):
    """Blobs of random size and place: an ellipse each, never empty."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for _ in range(count):
        cy, cx = rng.uniform(0, H), rng.uniform(0, W)
        ry, rx = rng.uniform(2, 8), rng.uniform(2, 10)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        m[int(min(H - 1, cy)), int(min(W - 1, cx))] = True
        out.append(m)
    return np.array(out)


def main():
    tmp = tempfile.mkdtemp()
    model = os.path.join(tmp, "linear.onnx")
    w, _ = linear_model.make(model, 1, H, W, 2, seed=11)
    g = (w[1] - w[0]).reshape(H, W)
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=(N, H, W)).astype(np.uint8)
    images = raw.astype(np.float32).astype(np.float64) / 255
    masks = random_masks(rng, N)

    img_dir, mask_dir = os.path.join(tmp, "images"), os.path.join(tmp, "masks")
    os.makedirs(img_dir)
    os.makedirs(mask_dir)
    for i in range(N):
        write_png(os.path.join(img_dir, f"scene{i}.png"), raw[i])
        write_png(os.path.join(mask_dir, f"scene{i}.png"), masks[i] * 255)
    write_png(os.path.join(mask_dir, "aaa_extra.png"), np.full((H, W), 255))
    idx_masks = os.path.join(tmp, "masks-idx3-ubyte")
    with open(idx_masks, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + N.to_bytes(4, "big") + H.to_bytes(4, "big")
                + W.to_bytes(4, "big") + (masks * 255).astype(np.uint8).tobytes())

    methods = ["--methods", "saliency,gradxinput,random", "--model", model]
    out = os.path.join(tmp, "by-name")
    r = run(methods + ["--metrics", "localisation", "--masks", mask_dir, "--out", out, img_dir])
    report(r.returncode == 0, f"evaluate --masks FOLDER runs ({r.stderr.strip()[:200]})")
    if r.returncode == 0:
        res = json.load(open(os.path.join(out, "evaluate.json")))
        tol = res["parameters"]["pointing_tolerance"]
        report(tol == int(15 * H / 224 + 0.5) and res["parameters"]["iou_top"] == 0.1,
               f"default tolerance {tol} px (15 at 224, scaled to {H}) and top 10 %")
        compare(res, images, g, masks, tol, 0.1, "by name")
        for name in ("pointing game", "relevance mass", "relevance rank", "IoU top-q",
                     "(uniform)"):
            report(name in r.stdout, f"table shows '{name}'")
        rows = {row["method"]: row for row in csv.DictReader(open(os.path.join(out, "evaluate.csv")))}
        mean_mass = np.mean([img["methods"]["saliency"]["relevance_mass"]
                             for img in res["per_image"]])
        report(abs(float(rows["saliency"]["relevance_mass"]) - mean_mass) < 1e-7
               and "(uniform)" in rows
               and abs(float(rows["(uniform)"]["relevance_rank"])
                       - res["uniform"]["relevance_rank"]["mean"]) < 1e-7,
               "CSV agrees with the JSON, (uniform) row included")

    out = os.path.join(tmp, "by-order")
    r = run(methods + ["--metrics", "localisation,time", "--masks", idx_masks,
                       "--pointing-tolerance", "4", "--iou-top", "0.25", "--out", out, img_dir])
    report(r.returncode == 0, f"evaluate --masks IDX (by order) runs ({r.stderr.strip()[:200]})")
    if r.returncode == 0:
        res = json.load(open(os.path.join(out, "evaluate.json")))
        compare(res, images, g, masks, 4, 0.25, "by order, tolerance 4, top 25 %")

    # The masks follow the images' resize: the left half of 32 columns is
    # the left half of 16.
    half = np.zeros((H, W), np.uint8)
    half[:, :W // 2] = 255
    half_dir = os.path.join(tmp, "half")
    os.makedirs(half_dir)
    for i in range(N):
        write_png(os.path.join(half_dir, f"scene{i}.png"), half)
    out = os.path.join(tmp, "resized")
    r = run(["--methods", "saliency", "--model", model, "--metrics", "localisation",
             "--size", "%dx%d" % (W, H), "--masks", half_dir, "--out", out, img_dir])
    ok = r.returncode == 0
    if ok:
        res = json.load(open(os.path.join(out, "evaluate.json")))
        ok = all(img["uniform"]["mask_area"] == 0.5 for img in res["per_image"])
    report(ok, "masks pass through the images' preprocessing (--size)")

    # Bad masks and options: exit 2, one line, no output folder.
    empty_dir = os.path.join(tmp, "empty")
    os.makedirs(empty_dir)
    for i in range(N):
        write_png(os.path.join(empty_dir, f"scene{i}.png"), masks[i] * 255 if i else half * 0)
    small_dir = os.path.join(tmp, "small")
    os.makedirs(small_dir)
    for i in range(N):
        write_png(os.path.join(small_dir, f"scene{i}.png"), np.full((H, W - 1), 255))
    few = os.path.join(tmp, "few")
    os.makedirs(few)
    write_png(os.path.join(few, "other.png"), half)
    cases = [
        ("an empty mask", ["--masks", empty_dir], "no object pixel"),
        ("a mask of another size", ["--masks", small_dir], "must have its image's size"),
        ("too few masks, no names", ["--masks", few], "no mask is named like image"),
        ("a missing masks folder", ["--masks", os.path.join(tmp, "nope")], "nope"),
        ("localisation without masks", ["--metrics", "localisation"], "--masks"),
        ("masks without localisation", ["--metrics", "deletion", "--masks", mask_dir],
         "does not list localisation"),
        ("--iou-top 0", ["--masks", mask_dir, "--iou-top", "0"], "--iou-top"),
        ("--pointing-tolerance -1", ["--masks", mask_dir, "--pointing-tolerance", "-1"],
         "--pointing-tolerance"),
    ]
    for what, extra, needle in cases:
        out = os.path.join(tmp, "bad")
        r = run(["--methods", "saliency", "--model", model, "--out", out] + extra + [img_dir])
        lines = r.stderr.strip().splitlines()
        report(r.returncode == 2 and len(lines) == 1 and needle in lines[0]
               and not os.path.exists(os.path.join(out, "evaluate.json")),
               f"{what}: exit 2, one line naming it ({r.returncode}: {r.stderr.strip()[:160]})")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
