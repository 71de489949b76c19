#!/usr/bin/python3
"""Models from the wild: newer torchvision architectures, exported by
torch.onnx.export at several opsets, against PyTorch (issue 18, item 3).

The models (scripts/export_wild.py: random weights, BatchNorm statistics
calibrated on random images, exported once into $MODELS and reused):
mobilenet_v3_small, shufflenet_v2_x1_0, mnasnet0_5, convnext_tiny,
efficientnet_b0, regnet_y_400mf and squeezenet1_0, at the opsets of
export_wild.PAIRS (9, 11, 13, 17: every operator form the exporter writes
for them).

1. logits (tests/tools/run_model) on two seeded N(0, 1) images against
   PyTorch's: max |difference| <= 1e-4 * max |logit|, and the same top-5
   classes in the same order where PyTorch's logits differ by more than
   twice that (random weights leave near-ties; tests/test_models.py);
2. `evmap classify --json --batch 2` on two random PNGs (a file with batch 1
   must still classify several images at once): the first one's probabilities against
   PyTorch's softmax of the same pixels: |log p - log p_torch| <= 2 * 1e-4 *
   max |logit| (log p = z - logsumexp z moves at most twice the logits);
3. input gradients (build/tests/grad_model) of mobilenet_v3_small (opset 17:
   HardSwish, HardSigmoid) and shufflenet_v2_x1_0 (opset 9: Split, MaxPool)
   against float64 autograd at evmap's kink decisions
   (tests/kink_reference.py): max |difference| <= 1e-3 * max |gradient|;
4. `evmap explain --method efficient` on one export of every architecture,
   on a small region of interest at the image corner: it runs, and the map
   is finite inside the region and NaN outside;
5. exact locality: the efficient map of the top class of mnasnet0_5 on a
   tiny corner region (split at the input, as --no-locality takes it) with
   and without --no-locality agree within 1e-4 and 1 % of its largest
   |value| (at least MIN_EVIDENCE), as tests/test_locality.py.

A model that evmap refuses because an operator is missing passes only when
EXPECTED_MISSING lists it with that operator and the error line names it; a
listed model that loads fails, so that the table is cleaned. Any other
failure (an error, a crash, a difference) fails.

EVMAP_QUICK=1 (the sanitized pass of make test): only QUICK_PAIRS.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import export_wild  # noqa: E402
import kink_reference  # noqa: E402

# (architecture, opset) -> the operator evmap does not have yet, e.g.
#   ("convnext_tiny", 17): "LayerNormalization",
# The test expects exactly these to be refused at loading with the error
# line "uses operator 'X', which evmap does not support"; only missing
# operators belong here, never other failures.
EXPECTED_MISSING = {
    # none at present: every export of export_wild.PAIRS loads
}

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
RUN_MODEL = os.path.join(BUILD, "tests", "run_model")
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")
MODELS = os.environ.get("MODELS", os.path.join(BUILD, "models"))
QUICK = os.environ.get("EVMAP_QUICK") == "1"
QUICK_PAIRS = [("mobilenet_v3_small", 17), ("shufflenet_v2_x1_0", 9)]
GRADIENT_PAIRS = [("mobilenet_v3_small", 17), ("shufflenet_v2_x1_0", 9)]
LOCALITY_PAIR = ("mnasnet0_5", 9)
MIN_EVIDENCE = 1e-3  # largest |value| the locality maps must reach (log2 odds)
TOL = 1e-4  # of max |logit|

passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def label(arch, opset):
    return f"{arch} opset {opset}"


# ------------------------------------------------------------ 1. logits

def evmap_logits(path, x):
    """run_model on x (N x 3 x 224 x 224), one image at a time (most exports
    have batch 1); raises with evmap's error line when it fails."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        inp, res = os.path.join(tmp, "in.f32"), os.path.join(tmp, "out.f32")
        for xi in x:
            xi.astype(np.float32).tofile(inp)
            r = subprocess.run([RUN_MODEL, path, inp, "1", *map(str, xi.shape), res],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"run_model exit {r.returncode}: "
                                   f"{(r.stderr.strip().splitlines() or [''])[-1]}")
            out.append(np.fromfile(res, dtype=np.float32))
    return np.stack(out)


def top5_agrees(want, got, tol):
    """Every class a in want's top 5 stays above every class b that want
    puts more than 2 tol below it (tests/test_models.py)."""
    for a in np.argsort(-want)[:5]:
        below = want[a] - want > 2 * tol
        if not (got[a] > got[below]).all():
            return False
    return True


def check_logits(arch, opset, path, model):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        want = model(x).numpy()
    got = evmap_logits(path, x.numpy()).reshape(want.shape)
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    tol = TOL * scale
    top = all(top5_agrees(want[i], got[i], tol) for i in range(len(x)))
    report(err <= tol and top,
           f"{label(arch, opset):30s} logits max|diff| {err:.3g}  max|logit| {scale:.3g}  "
           f"ratio {err / scale:.2e}  top-5 {'same' if top else 'DIFFERENT'}")
    return err / scale


# ------------------------------------------------------------ 2. classify --json

def check_classify(arch, opset, path, model, image, pixels, other):
    """image and another (other) in one batch of 2: evmap batches images even
    when the file declares batch 1; only image's record is compared."""
    r = subprocess.run([EVMAP, "classify", "--model", path, "--json", "--top", "5",
                        "--threads", "2", "--batch", "2", image, other],
                       capture_output=True, text=True)
    if r.returncode != 0:
        report(False, f"{label(arch, opset):30s} classify --json (2 images) exit "
                      f"{r.returncode}: {r.stderr.strip()}")
        return
    rec = json.loads(r.stdout.splitlines()[0])
    got = np.array(rec["probs"], dtype=np.float64)
    with torch.no_grad():
        z = model(torch.tensor(pixels[None]))[0].double()
    want = torch.softmax(z, 0).numpy()
    tol = 2 * TOL * float(z.abs().max())
    err = float(np.abs(np.log(got) - np.log(want)).max())
    top = [t["class"] for t in rec["top"]]
    top_ok = all(got[a] >= got[b] for a, b in zip(top, top[1:])) and \
        top5_agrees(z.numpy(), np.log(got), tol / 2)
    report(err <= tol and top_ok and rec["softmax_applied"],
           f"{label(arch, opset):30s} classify --json: max|log p - log p_torch| {err:.2e} "
           f"(at most {tol:.2e}), top-5 {top}")


# ------------------------------------------------------------ 3. gradients

KINKED = None


def torch_grad(model, x, score, cls, dtype):
    model = model.to(dtype)
    xt = torch.tensor(x[None], dtype=dtype, requires_grad=True)
    z = model(xt)[0]
    f = z[cls] if score == "logit" else z[cls] - torch.logsumexp(
        torch.cat([z[:cls], z[cls + 1:]]), 0)
    f.backward()
    return xt.grad[0].numpy().astype(np.float64), float(f)


def evmap_grad(path, x, score, cls, dump):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.f32"), os.path.join(tmp, "g.f32")
        x.astype(np.float32).tofile(inp)
        extra = []
        for i, name in enumerate(dump):
            extra += ["--dump", name, os.path.join(tmp, f"d{i}.f32")]
        r = subprocess.run([GRAD_MODEL, path, inp, score, str(cls), out, *extra], check=True,
                           capture_output=True, text=True)
        dumped = [np.fromfile(os.path.join(tmp, f"d{i}.f32"), dtype=np.float32)
                  for i in range(len(dump))]
        return np.fromfile(out, dtype=np.float32).reshape(x.shape), float(r.stdout), dumped


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def check_gradients(arch, opset, path, model):
    global KINKED
    if KINKED is None:
        KINKED = kink_reference.evmap_kinked_ops(GRAD_MODEL)
    x = torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(4321)).numpy()
    with torch.no_grad():
        top = int(model(torch.tensor(x[None]))[0].argmax())
    nodes = kink_reference.kinked_nodes(path, KINKED)
    try:
        for score, cls in (("logit", top), ("logodds", (top + 3) % 1000)):
            got, f_got, dumps = evmap_grad(path, x, score, cls, [n for _, n in nodes])
            decisions = kink_reference.decisions_from_dumps(nodes, dumps)
            with kink_reference.FollowEvmapKinks(decisions):
                exact, f_want = torch_grad(model, x, score, cls, torch.float64)
            e = rel_err(got, exact)
            f_ok = abs(f_got - f_want) <= 1e-4 * max(1.0, abs(f_want))
            kinks = ", ".join(f"{len(v)} {op}" for op, v in sorted(decisions.items()))
            report(e <= 1e-3 and f_ok,
                   f"{label(arch, opset):30s} d {score}[{cls}]/dx: max|diff|/max|grad| {e:.2e} "
                   f"vs float64 autograd at evmap's kinks ({kinks}); "
                   f"f evmap {f_got:.6g} exact {f_want:.6g}")
    finally:
        model.float()


# ------------------------------------------------------------ 4./5. efficient

def write_png(path, rgb):
    from PIL import Image
    Image.fromarray(rgb).save(path)


def efficient(path, image, out, args):
    """Runs evmap explain --method efficient; returns (json, [maps])."""
    r = subprocess.run([EVMAP, "explain", "--model", path, "--out", out, "--method", "efficient",
                        "--quiet", "--threads", "2", *args, image], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"explain exit {r.returncode}: {r.stderr.strip()}")
    stem = os.path.splitext(os.path.basename(image))[0]
    with open(os.path.join(out, stem + ".efficient.json")) as f:
        meta = json.load(f)
    maps = [np.load(os.path.join(out, n)) for n in sorted(os.listdir(out)) if n.endswith(".npy")]
    return meta, maps


def check_efficient(arch, opset, path, image, refs, tmp):
    # a 14 x 14 corner at stride 2: 9 windows of 10 x 10, where padding matters
    roi = (0, 0, 14, 14)
    args = ["--sampler", "marginal", "--reference", refs, "--samples", "2",
            "--roi", ",".join(map(str, roi)), "--stride", "2"]
    meta, maps = efficient(path, image, os.path.join(tmp, f"eff-{arch}-{opset}"), args)
    m = maps[0] if len(maps) == 1 else None
    ok = m is not None and meta["method"] == "efficient"
    inside = np.zeros(m.shape, bool) if ok else None
    if ok:
        inside[roi[1]:roi[1] + roi[3], roi[0]:roi[0] + roi[2]] = True
        ok = bool(np.isfinite(m[inside]).all() and np.isnan(m[~inside]).all())
    vmax = float(np.nanmax(np.abs(m))) if m is not None and np.isfinite(m).any() else float("nan")
    report(ok, f"{label(arch, opset):30s} explain --method efficient roi {roi} stride 2: "
               f"{'finite inside, NaN outside' if ok else 'NOT finite / wrong NaN pattern'}, "
               f"max|WE| {vmax:.3g} (split {meta['parameters'].get('split')})")


def check_locality(arch, opset, path, image, refs, tmp):
    roi = (212, 0, 12, 12)  # top-right corner: 3 x 3 windows, clipped cones
    # every window position evaluated: the grid's decisions are not what is
    # tested; the split at the input, which --no-locality can take too
    args = ["--sampler", "marginal", "--reference", refs, "--samples", "2",
            "--roi", ",".join(map(str, roi)), "--grid", "1", "--split", "input"]
    local, (a,) = efficient(path, image, os.path.join(tmp, "loc-local"), args)
    naive, (b,) = efficient(path, image, os.path.join(tmp, "loc-naive"), args + ["--no-locality"])
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    diff = float(np.nanmax(np.abs(a - b)))
    scale = float(np.nanmax(np.abs(b)))
    # real evidence, so that the 1 % bound sits above float32 noise
    ok = same_nan and scale >= MIN_EVIDENCE and diff <= 1e-4 and diff <= 1e-2 * scale
    ok &= local["locality"]["enabled"] and not naive["locality"]["enabled"]
    report(ok, f"{label(arch, opset):30s} efficient locality, class {local['classes'][0]['class']} "
               f"roi {roi}: max|diff| {diff:.2e} with and without --no-locality "
               f"(max|WE| {scale:.3g}, at least {MIN_EVIDENCE:.2g}), arithmetic "
               f"{local['locality']['arithmetic_fraction']:.3f}")


# ------------------------------------------------------------ driver

def load_or_refusal(arch, opset, path):
    """None when evmap loads the model; else its error line."""
    x = np.zeros((1, 3, 224, 224), np.float32)
    try:
        evmap_logits(path, x)
        return None
    except RuntimeError as e:
        return str(e)


def main():
    torch.set_num_threads(2)
    pairs = QUICK_PAIRS if QUICK else export_wild.PAIRS
    stale = [p for p in EXPECTED_MISSING if p not in export_wild.PAIRS]
    if stale:
        report(False, f"EXPECTED_MISSING lists pairs export_wild.py does not export: {stale}")
    os.makedirs(MODELS, exist_ok=True)
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="evmap-wild-") as tmp:
        image = os.path.join(tmp, "random224.png")
        rgb = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        write_png(image, rgb)
        pixels = (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
        refs = os.path.join(tmp, "refs")
        os.makedirs(refs)
        for i in range(2):
            write_png(os.path.join(refs, f"r{i}.png"),
                      rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
        ratios = {}
        explained = set()
        model = built = None
        for arch, opset in pairs:
            what = label(arch, opset)
            try:
                path = export_wild.ensure(arch, opset, MODELS)
                refusal = load_or_refusal(arch, opset, path)
                missing = EXPECTED_MISSING.get((arch, opset))
                if missing is not None:
                    # the error line names it: "uses operator 'X', which evmap does not support"
                    ok = refusal is not None and f"operator '{missing}'" in refusal
                    report(ok, f"{what:30s} refused as expected (missing {missing}): {refusal}"
                           if ok else f"{what:30s} listed in EXPECTED_MISSING ({missing}) but "
                           + ("loads now: remove it from the table" if refusal is None
                              else f"fails otherwise: {refusal}"))
                    continue
                if refusal is not None:
                    report(False, f"{what:30s} refused: {refusal}")
                    continue
                if built != arch:
                    model, built = export_wild.build(arch), arch
                ratios[(arch, opset)] = check_logits(arch, opset, path, model)
                check_classify(arch, opset, path, model, image, pixels,
                               os.path.join(refs, "r0.png"))
                if (arch, opset) in GRADIENT_PAIRS:
                    check_gradients(arch, opset, path, model)
                # one efficient map per architecture: its last export
                last = [o for a, o in pairs if a == arch][-1]
                if opset == last and arch not in explained:
                    explained.add(arch)
                    check_efficient(arch, opset, path, image, refs, tmp)
                if (arch, opset) == LOCALITY_PAIR:
                    check_locality(arch, opset, path, image, refs, tmp)
            except Exception as e:  # report and go on to the next model
                report(False, f"{what}: {type(e).__name__}: {e}")
        if ratios:
            worst = max(ratios, key=ratios.get)
            print(f"largest logit difference: {ratios[worst]:.2e} of max |logit| "
                  f"({label(*worst)})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
