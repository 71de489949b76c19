#!/usr/bin/python3
"""`evmap evaluate` on a model whose true evidence is known.

scripts/linear_model.py exports a two-class linear model over the pixels of
10x10 images. For it, gradient x input of the log-odds is exactly each
pixel's contribution to the logit difference, (w_c - w_o) * x, and deleting
pixels in that order (fill zero) is the optimal deletion order. Checks:
  - the true map (gradxinput) has the lowest deletion AUC of every method on
    every image, no worse than any of 200 random orders computed in numpy,
    and the random map is clearly worse;
  - the deletion and insertion curves, their AUCs (trapezoid rule) and AOPC
    in the JSON equal a direct numpy computation (fill zero and mean);
  - the table, CSV, JSON and PNG plots are written and agree;
  - pda (sampler fitted on --reference) runs and is skipped for
    max-sensitivity by default;
  - bad options and inputs: exit code 2, one line on stderr, nothing written.
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

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
EVMAP = os.path.join(BUILD, "evmap")
H = W = 10
N_IMAGES = 8
STEPS = 20

passed = failed = 0


def report(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def write_idx_images(path, images):
    n, h, w = images.shape
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + h.to_bytes(4, "big")
                + w.to_bytes(4, "big") + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big")
                + np.asarray(labels, dtype=np.uint8).tobytes())


def probs(w, b, x):
    z = x.reshape(len(x), -1) @ w.T + b
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def order_of(m):
    """Descending, ties in raster order (a stable sort of -m)."""
    return np.argsort(-m.ravel(), kind="stable")


def counts(n, steps):
    return [t * n // steps for t in range(steps + 1)]


def curve(w, b, start, end, order, cls, cnts):
    """p(cls) for start with the first cnt pixels of order taken from end."""
    batch = []
    for c in cnts:
        x = start.ravel().copy()
        x[order[:c]] = end.ravel()[order[:c]]
        batch.append(x)
    return probs(w, b, np.array(batch))[:, cls]


def auc(y, n, steps):
    x = np.array(counts(n, steps)) / n
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def run(args, **kw):
    return subprocess.run([EVMAP, "evaluate"] + args, capture_output=True, text=True, **kw)


def fill_of(x, kind):
    return np.zeros_like(x) if kind == "zero" else np.full_like(x, x.mean())


def check_against_numpy(res, images, w, b, kind):
    """Curves, AUCs and AOPC of every method against numpy, given evmap's
    maps' orders for gradxinput (the true map) only."""
    n = H * W
    worst_curve = worst_auc = worst_aopc = 0.0
    L = res["parameters"]["aopc_regions"]
    k = res["parameters"]["aopc_window"]
    for i, img in enumerate(res["per_image"]):
        x = images[i]
        cls = img["class"]
        f = fill_of(x, kind)
        true_map = (w[cls] - w[1 - cls]).reshape(H, W) * (x - f)
        order = order_of(true_map)
        g = img["methods"]["gradxinput"]
        if kind == "zero":  # gradxinput is the true map only for the zero fill
            d = curve(w, b, x, f, order, cls, counts(n, STEPS))
            ins = curve(w, b, f, x, order, cls, counts(n, STEPS))
            worst_curve = max(worst_curve, np.abs(d - g["deletion"]).max(),
                              np.abs(ins - g["insertion"]).max())
        worst_auc = max(worst_auc, abs(auc(np.array(g["deletion"]), n, STEPS) - g["deletion_auc"]),
                        abs(auc(np.array(g["insertion"]), n, STEPS) - g["insertion_auc"]))
        # AOPC of the map gradxinput ranks: regions by summed evidence.
        gmap = (w[cls] - w[1 - cls]).reshape(H, W) * x
        sums = [(-gmap[r:r + k, c:c + k].sum(), r, c) for r in range(0, H, k) for c in range(0, W, k)]
        sums.sort()
        removed, drops = np.zeros((H, W), bool), []
        p0 = probs(w, b, x[None])[0, cls]
        for _, r, c in sums[:L]:
            removed[r:r + k, c:c + k] = True
            xr = np.where(removed, f, x)
            drops.append(p0 - probs(w, b, xr[None])[0, cls])
        worst_aopc = max(worst_aopc, abs(np.mean(drops) - g["aopc"]))
    if kind == "zero":
        report(worst_curve < 1e-5,
               f"fill {kind}: deletion/insertion curves of the true map = numpy (max diff {worst_curve:.2e})")
    report(worst_auc < 1e-9, f"fill {kind}: AUC = trapezoid rule in numpy (max diff {worst_auc:.2e})")
    report(worst_aopc < 1e-5, f"fill {kind}: AOPC = numpy (max diff {worst_aopc:.2e})")


def check_true_map_best(res, images, w, b):
    methods = list(res["methods"])
    best_everywhere = True
    rng = np.random.default_rng(0)
    beats_random_orders = True
    for i, img in enumerate(res["per_image"]):
        aucs = {m: img["methods"][m]["deletion_auc"] for m in methods}
        best_everywhere &= all(aucs["gradxinput"] <= a + 1e-9 for a in aucs.values())
        x, cls = images[i], img["class"]
        for _ in range(200):
            d = curve(w, b, x, np.zeros_like(x), rng.permutation(H * W), cls, counts(H * W, STEPS))
            beats_random_orders &= aucs["gradxinput"] <= auc(d, H * W, STEPS) + 1e-9
    report(best_everywhere, "the true map has the lowest deletion AUC of all methods on every image")
    report(beats_random_orders, "the true map beats 200 random deletion orders per image (numpy)")
    s = res["methods"]
    report(s["random"]["deletion_auc"]["mean"] > s["gradxinput"]["deletion_auc"]["mean"] + 0.05,
           f"a random map is worse: {s['random']['deletion_auc']['mean']:.3f} vs "
           f"{s['gradxinput']['deletion_auc']['mean']:.3f}")
    report(s["gradxinput"]["insertion_auc"]["mean"] > s["random"]["insertion_auc"]["mean"],
           "the true map has a higher insertion AUC than the random map")
    report(s["gradxinput"]["aopc"]["mean"] > s["random"]["aopc"]["mean"],
           "the true map has a higher AOPC than the random map")


def check_outputs(proc, out, methods, n_images):
    report(proc.returncode == 0, f"evaluate exits 0 (stderr: {proc.stderr.strip()[-300:]})")
    lines = proc.stdout.splitlines()
    report(all(any(line.startswith(m + " ") for line in lines) for m in methods),
           "the table has a row per method")
    report("top-1 class" in proc.stdout and "±" in proc.stdout,
           "the table says which class is explained and gives mean ± standard error")
    with open(os.path.join(out, "evaluate.csv")) as f:
        rows = list(csv.DictReader(f))
    report([r["method"] for r in rows] == methods and all(int(r["images"]) == n_images for r in rows),
           "evaluate.csv: a row per method")
    with open(os.path.join(out, "evaluate.json")) as f:
        res = json.load(f)
    same = all(abs(float(r["deletion_auc"]) - res["methods"][r["method"]]["deletion_auc"]["mean"]) < 1e-6
               for r in rows)
    report(same and len(res["per_image"]) == n_images, "evaluate.csv agrees with evaluate.json")
    for name in ("deletion.png", "insertion.png"):
        with open(os.path.join(out, name), "rb") as f:
            head = f.read(24)
        ok = head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") >= 400
        report(ok, f"{name} is a PNG plot")
    return res


def check_bad_input(tmp, model, data):
    base = ["--model", model, "--data", data, "--quiet"]
    cases = [
        ("unknown method", base + ["--methods", "saliency,magic"]),
        ("method listed twice", base + ["--methods", "saliency,saliency"]),
        ("unknown metric", base + ["--methods", "saliency", "--metrics", "deletion,beauty"]),
        ("steps 0", base + ["--methods", "saliency", "--steps", "0"]),
        ("bad fill", base + ["--methods", "saliency", "--fill", "purple"]),
        ("no methods", base),
        ("no model", ["--methods", "saliency", "--data", data]),
        ("no data", ["--model", model, "--methods", "saliency"]),
        ("unknown option", base + ["--methods", "saliency", "--colour", "red"]),
        ("missing value", base + ["--methods", "saliency", "--steps"]),
        ("pda without a sampler", base + ["--methods", "pda"]),
        ("sensitivity method not evaluated", base + ["--methods", "saliency",
                                                      "--sensitivity-methods", "ig"]),
        ("too many AOPC regions", base + ["--methods", "saliency", "--aopc-regions", "1000"]),
        ("AOPC window too large", base + ["--methods", "saliency", "--aopc-window", "11"]),
        ("label class without labels", base + ["--methods", "saliency", "--explain-class", "label"]),
        ("missing model file", ["--model", os.path.join(tmp, "none.onnx"), "--data", data,
                                "--methods", "saliency"]),
        ("missing data", ["--model", model, "--data", os.path.join(tmp, "none.idx"),
                          "--methods", "saliency"]),
        ("sampler file and references", base + ["--methods", "pda", "--sampler-file", "x.evs",
                                                 "--reference", data]),
    ]
    for what, args in cases:
        out = os.path.join(tmp, "bad-out")
        proc = run(args + ["--out", out])
        lines = proc.stderr.strip().splitlines()
        written = os.path.isdir(out) and os.listdir(out)
        report(proc.returncode == 2 and len(lines) == 1 and not written and not proc.stdout,
               f"bad input ({what}): exit 2, one line: {lines[0] if lines else '(nothing)'}")


def main():
    tmp = tempfile.mkdtemp()
    model = os.path.join(BUILD, "tests", "linear10.onnx")
    w, b = linear_model.make(model, 1, H, W, 2, seed=3)
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (N_IMAGES, H, W))
    data = os.path.join(tmp, "images.idx")
    write_idx_images(data, raw)
    labels = os.path.join(tmp, "labels.idx")
    write_idx_labels(labels, [i % 2 for i in range(N_IMAGES)])
    images = (raw.astype(np.float32) / 255).astype(np.float64)

    methods = ["gradxinput", "saliency", "ig", "smoothgrad", "occlusion", "guided", "random", "pda"]
    out = os.path.join(tmp, "zero")
    proc = run(["--model", model, "--data", data, "--labels-idx", labels, "--methods",
                ",".join(methods), "--fill", "zero", "--steps", str(STEPS), "--reference", data,
                "--patches", "200", "--smoothgrad-samples", "10", "--sensitivity-samples", "3",
                "--out", out])
    res = check_outputs(proc, out, methods, N_IMAGES)
    check_against_numpy(res, images, w, b, "zero")
    check_true_map_best(res, images, w, b)
    pred = probs(w, b, images).argmax(axis=1)
    report(all(img["class"] == int(pred[i]) for i, img in enumerate(res["per_image"])),
           "the class explained is the model's top-1 class")
    acc = 100.0 * np.mean(pred == np.arange(N_IMAGES) % 2)
    report(abs(res["accuracy_percent"] - acc) < 1e-9, f"accuracy against --labels-idx: {acc:.1f} %")
    sens = res["methods"]
    report(sens["pda"]["max_sensitivity"]["n"] == 0 and sens["saliency"]["max_sensitivity"]["n"] == N_IMAGES,
           "max-sensitivity skips pda by default and covers the others")
    report(sens["saliency"]["max_sensitivity"]["mean"] < 1e-6,
           "saliency of a linear model does not move under noise")
    report(sens["random"]["max_sensitivity"]["mean"] > 0.3, "a random map is unstable under noise")
    report(os.path.exists(os.path.join(out, "sampler-k2-p2.evs")), "the fitted sampler is saved in --out")

    out = os.path.join(tmp, "mean")
    proc = run(["--model", model, "--data", data, "--methods", "gradxinput,random", "--fill", "mean",
                "--steps", str(STEPS), "--metrics", "deletion,insertion,aopc", "--quiet",
                "--explain-class", "predicted", "--out", out])
    report(proc.returncode == 0 and not proc.stderr, "fill mean, --quiet: exit 0 and nothing on stderr")
    with open(os.path.join(out, "evaluate.json")) as f:
        res = json.load(f)
    check_against_numpy(res, images, w, b, "mean")
    report(res["methods"]["gradxinput"]["max_sensitivity"]["n"] == 0, "--metrics leaves sensitivity out")

    proc = run(["--model", model, "--data", data, "--labels-idx", labels, "--methods", "saliency",
                "--explain-class", "label", "--metrics", "deletion", "--limit", "3", "--quiet"])
    report(proc.returncode == 0 and "true label" in proc.stdout and "3 image(s)" in proc.stdout,
           "--explain-class label and --limit, table only without --out")

    check_bad_input(tmp, model, data)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
