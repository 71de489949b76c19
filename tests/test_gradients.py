#!/usr/bin/python3
"""Gradients and the gradient family against PyTorch and against theory.

1. Input gradients of a class's logit and log-odds (evmap_input_gradient,
   through build/tests/grad_model) against PyTorch autograd in float64 on
   both Fashion-MNIST models, random-weight resnet18, googlenet,
   mobilenet_v2 and densenet121 (BatchNorm statistics calibrated on random
   images) and a small random-weight CNN of the other activations and
   reductions (PRelu, Elu, Selu, HardSigmoid, HardSwish, Mish, Softplus,
   ReduceMax, ReduceMean, ReduceMin, ReduceL1; exported at opsets 13 and
   14):
   max |difference| <= 1e-3 * max |gradient|, with every kinked
   operator (Relu, LeakyRelu, Clip, MaxPool, GlobalMaxPool, PRelu, ...: the
   list comes from evmap's operator table) taking its decisions from
   evmap's forward;
   they differ only for inputs within float32 rounding of a kink, whose side
   depends on the CPU's kernels (tests/kink_reference.py).
2. `evmap explain --method ...` on Fashion-MNIST images:
   - saliency equals max over channels of |autograd gradient|;
   - gradient x input equals a numerically differentiated version:
     d/dt f(x + t x_p e_p) at t = 0, by central differences in float64;
   - Integrated Gradients is complete: the map sums to f(x) - f(baseline)
     within 1 % at 200 steps (zero and mean baselines), and its map equals a
     float64 PyTorch IG on numpy's Gauss-Legendre nodes;
   - SmoothGrad equals a float64 PyTorch SmoothGrad fed the same noise (the
     documented generator, reimplemented here);
   - Grad-CAM equals a PyTorch Grad-CAM on the same layer (the last
     convolution's ReLU), upsampled with F.interpolate;
   - guided backpropagation equals PyTorch with a guided ReLU;
   - options a method does not take, unknown methods and layers: exit 2
     with one line.
   Single-pass methods on the demo image (whose black background gives
   MaxPool windows of equal values) are compared at evmap's kink decisions;
   IG and SmoothGrad on a textured image without such ties.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import export_torchvision  # noqa: E402
import fashion_models  # noqa: E402

import kink_reference  # noqa: E402
import rng_reference  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")
EVMAP = os.path.join(BUILD, "evmap")
FASHION = {"fashion_cnn": "models/fashion_cnn.onnx", "fashion_resnet": "models/fashion_resnet.onnx"}
KINKED = kink_reference.evmap_kinked_ops(GRAD_MODEL)

passed = failed = 0


def report(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def torch_score(z, score, cls):
    if score == "logit":
        return z[cls]
    rest = torch.cat([z[:cls], z[cls + 1:]])
    return z[cls] - torch.logsumexp(rest, 0)


def torch_grad(model, x, score, cls, dtype=torch.float32):
    model = model.to(dtype)
    xt = torch.tensor(x[None], dtype=dtype, requires_grad=True)
    f = torch_score(model(xt)[0], score, cls)
    f.backward()
    return xt.grad[0].numpy().astype(np.float64), float(f)


def evmap_grad(path, x, score, cls, dump=()):
    """evmap's gradient and score; dump: ONNX value names whose forward
    activations to return as well."""
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


def evmap_decisions(path, x, score, cls):
    """evmap's gradient, score and its forward decisions at every kink."""
    nodes = kink_reference.kinked_nodes(path, KINKED)
    got, f_got, dumps = evmap_grad(path, x, score, cls, [name for _, name in nodes])
    return got, f_got, kink_reference.decisions_from_dumps(nodes, dumps)


def fashion_images(n):
    images, labels = fashion_models.load_split("t10k")
    return fashion_models.to_input(images[:n]).numpy(), labels[:n]


# ------------------------------------------------------------ 1. gradients

def check_model_gradients(name, path, model, x, classes):
    """evmap (float32) against PyTorch autograd in float64 at evmap's kink
    decisions (kink_reference.FollowEvmapKinks); unconstrained float64
    autograd compared with PyTorch's and evmap's float32 gradients is shown
    for scale."""
    for score in ("logit", "logodds"):
        for cls in classes:
            got, f_got, decisions = evmap_decisions(path, x, score, cls)
            torch32, _ = torch_grad(model, x, score, cls, torch.float32)
            free, _ = torch_grad(model, x, score, cls, torch.float64)
            with kink_reference.FollowEvmapKinks(decisions):
                exact, f_want = torch_grad(model, x, score, cls, torch.float64)
            e = rel_err(got, exact)
            f_ok = abs(f_got - f_want) <= 1e-4 * max(1.0, abs(f_want))
            kinks = ", ".join(f"{len(v)} {op}" for op, v in sorted(decisions.items()))
            report(e <= 1e-3 and f_ok,
                   f"{name:14s} d {score:7s}[{cls}]/dx: max|diff|/max|grad| {e:.2e} vs float64 "
                   f"autograd at evmap's kinks ({kinks}; unconstrained float64: evmap "
                   f"{rel_err(got, free):.1e}, PyTorch float32 {rel_err(torch32, free):.1e}); "
                   f"f evmap {f_got:.6g} exact {f_want:.6g}")
    model.float()


class ActivationsNet(torch.nn.Module):
    """Every kinked activation and reduction PyTorch models call, in one
    small random-weight CNN (1 x 8 x 8 in, 5 classes)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        with torch.random.fork_rng():  # the same weights every run, others' draws untouched
            torch.manual_seed(0)
            self.c1, self.prelu = nn.Conv2d(1, 4, 3, padding=1), nn.PReLU(4)
            self.c2, self.c3 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(16, 5)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.tensor([0.1, -0.3, 0.5, 2.0]))

    def forward(self, x):
        x = self.prelu(self.c1(x))
        x = F.elu(self.c2(x), alpha=0.5)
        x = F.selu(x) + 2 * F.hardsigmoid(x)
        x = F.hardswish(4 * self.c3(x))
        x = F.mish(x) + F.softplus(x)
        return self.fc(torch.cat([torch.amax(x, dim=(2, 3)), x.mean(dim=(2, 3)),
                                  torch.amin(x, dim=(2, 3)), torch.norm(x, p=1, dim=(2, 3))], 1))


def activation_checks():
    """ActivationsNet at opset 14 (HardSwish) and 13 (HardSigmoid and Mul)."""
    model = ActivationsNet().eval()
    x = np.random.default_rng(1).standard_normal((1, 8, 8)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for opset in (13, 14):
            path = os.path.join(tmp, f"activations{opset}.onnx")
            torch.onnx.export(model, torch.zeros(1, 1, 8, 8), path, opset_version=opset)
            check_model_gradients(f"activations{opset}", path, model, x, [0, 3])


def gradient_checks():
    missing = kink_reference.FollowEvmapKinks.missing_handlers(KINKED)
    report(not missing, f"the reference follows every kinked operator evmap has "
           f"({', '.join(f'{op} {rule}' for op, rule in sorted(KINKED.items()))})"
           + (f"; no handler for {missing}" if missing else ""))
    x, labels = fashion_images(2)
    for name, path in FASHION.items():
        model = fashion_models.torch_model_from_onnx(path)
        for i in range(2):
            check_model_gradients(name, path, model, x[i],
                                  [int(labels[i]), (int(labels[i]) + 3) % 10])
    activation_checks()
    models_dir = os.environ.get("MODELS", os.path.join(BUILD, "models"))
    os.makedirs(models_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(4321)
    # EVMAP_QUICK (the sanitized pass of make test): one torchvision model.
    names = ("resnet18", "googlenet", "mobilenet_v2", "densenet121")
    for name in names[:1] if os.environ.get("EVMAP_QUICK") == "1" else names:
        path = os.path.join(models_dir, name + "_calibrated.onnx")
        export_torchvision.main_export(name + "_calibrated", path)
        model = export_torchvision.build_calibrated(name)
        xi = torch.randn(3, 224, 224, generator=gen).numpy()
        with torch.no_grad():
            top = int(model(torch.tensor(xi[None]))[0].argmax())
        check_model_gradients(name, path, model, xi, [top])


# -------------------------------------------------------------- 2. methods

def explain(path, image, method, *extra, cls):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([EVMAP, "explain", "--model", path, "--out", tmp, "--method", method,
                        "--class", str(cls), "--quiet", *extra, image], check=True)
        stem = os.path.splitext(os.path.basename(image))[0]
        m = np.load(os.path.join(tmp, f"{stem}.{method}.c{cls}.npy"))
        with open(os.path.join(tmp, f"{stem}.{method}.json")) as f:
            meta = json.load(f)
        if not os.path.exists(os.path.join(tmp, f"{stem}.{method}.c{cls}.png")):
            raise RuntimeError("no PNG written")
        return m.astype(np.float64), meta


def load_demo(path):
    import PIL.Image
    return np.asarray(PIL.Image.open(path), dtype=np.float32)[None] / 255.0


def textured_demo(tmp):
    """The ankle boot over a random texture, as an 8-bit PNG: no two 3x3
    patches are equal, so no MaxPool window of the network holds a tie and
    no unit sits on a flat background. References that are not told evmap's
    kink decisions (IG, SmoothGrad: many forward passes in batches) are
    exact there on any CPU, up to kinks within rounding, which this image
    makes improbable."""
    import PIL.Image
    boot = np.asarray(PIL.Image.open("data/demo/9_ankle_boot.png"), dtype=np.float64)
    noise = np.random.default_rng(11).uniform(0, 255, boot.shape)
    img = np.round(0.75 * boot + 0.25 * noise).astype(np.uint8)
    path = os.path.join(tmp, "textured_boot.png")
    PIL.Image.fromarray(img).save(path)
    return path, img.astype(np.float32)[None] / 255.0


def reference_ig(model, x, x0, steps, cls):
    """Integrated Gradients in float64: (x - x0) times the Gauss-Legendre
    quadrature (numpy's nodes, mapped to [0, 1]) of the gradient along the
    straight path, summed over channels."""
    t, w = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (t + 1) / 2, w / 2
    total = np.zeros_like(x, dtype=np.float64)
    for a, wt in zip(alphas, weights):
        g, _ = torch_grad(model, x0 + a * (x - x0), "logodds", cls, torch.float64)
        total += wt * g
    return ((x - x0) * total).sum(0)


def reference_smoothgrad(model, x, noise, samples, seed, cls):
    """SmoothGrad in float64 with evmap's noise: sigma = noise * (max - min)
    of the image; sample s, pixel i gets the (s*n + i)-th normal of the
    seeded generator, added in double and rounded to float32 as evmap feeds
    the network; the map is the mean of max_c |gradient|."""
    rng = rng_reference.Xoshiro256ss(seed)
    sigma = noise * (float(x.max()) - float(x.min()))
    acc = np.zeros(x.shape[1:])
    for _ in range(samples):
        eps = np.array([rng.normal() for _ in range(x.size)]).reshape(x.shape)
        xs = (x.astype(np.float64) + sigma * eps).astype(np.float32)
        g, _ = torch_grad(model, xs, "logodds", cls, torch.float64)
        acc += np.abs(g).max(0)
    return acc / samples


def method_checks():
    path = FASHION["fashion_cnn"]
    model = fashion_models.torch_model_from_onnx(path)
    image = "data/demo/9_ankle_boot.png"
    x = load_demo(image)
    cls = 9
    # The demo image's black background gives MaxPool windows of equal
    # values: the single-pass methods are compared at evmap's decisions.
    _, _, decisions = evmap_decisions(path, x, "logodds", cls)

    got, meta = explain(path, image, "saliency", cls=cls)
    with kink_reference.FollowEvmapKinks(decisions):
        g, _ = torch_grad(model, x, "logodds", cls, torch.float64)
    report(rel_err(got, np.abs(g).max(0)) <= 1e-3 and meta["method"] == "saliency",
           f"saliency = max_c |autograd grad| at evmap's kinks: "
           f"{rel_err(got, np.abs(g).max(0)):.2e}")

    got, _ = explain(path, image, "gradxinput", cls=cls)
    m64 = model.double()
    base = torch.tensor(x[None], dtype=torch.float64)
    rng = np.random.default_rng(5)
    pixels = [p for p in rng.permutation(28 * 28) if x[0].flat[p] > 0.05][:40]
    fd = []
    h = 1e-5
    with torch.no_grad():
        for p in pixels:
            vals = []
            for t in (h, -h):
                xp = base.clone()
                xp.view(-1)[p] *= 1 + t
                vals.append(float(torch_score(m64(xp)[0], "logodds", cls)))
            fd.append((vals[0] - vals[1]) / (2 * h))
    fd = np.array(fd)
    e = float(np.abs(got.flat[pixels] - fd).max() / np.abs(got).max())
    report(e <= 1e-3, f"gradient x input = d/dt f(x + t x_p e_p) (central differences, "
           f"{len(pixels)} pixels): max|diff|/max|map| {e:.2e}")

    for baseline in ("zero", "mean"):
        got, meta = explain(path, image, "ig", "--steps", "200", "--baseline", baseline, cls=cls)
        x0 = np.zeros_like(x) if baseline == "zero" else np.full_like(x, x.mean())
        with torch.no_grad():
            fx = float(torch_score(m64(torch.tensor(x[None], dtype=torch.float64))[0],
                                   "logodds", cls))
            f0 = float(torch_score(m64(torch.tensor(x0[None], dtype=torch.float64))[0],
                                   "logodds", cls))
        gap = abs(got.sum() - (fx - f0)) / abs(fx - f0)
        report(gap <= 0.01 and meta["parameters"]["steps"] == 200,
               f"IG completeness, {baseline} baseline, 200 steps: sum {got.sum():.5g} vs "
               f"f(x) - f(x0) {fx - f0:.5g} ({100 * gap:.3f} %)")

    with tempfile.TemporaryDirectory() as tmp:
        textured, xt = textured_demo(tmp)
        for baseline in ("zero", "mean"):
            got, _ = explain(path, textured, "ig", "--steps", "24", "--baseline", baseline,
                             cls=cls)
            x0 = np.zeros_like(xt) if baseline == "zero" else np.full_like(xt, xt.mean())
            want = reference_ig(model, xt.astype(np.float64), x0.astype(np.float64), 24, cls)
            e = rel_err(got, want)
            report(e <= 1e-3, f"IG map = float64 PyTorch IG on 24 Gauss-Legendre nodes, "
                   f"{baseline} baseline (textured image): max|diff|/max|map| {e:.2e}")
        got, meta = explain(path, textured, "smoothgrad", "--noise", "0.2", "--samples", "6",
                            "--seed", "1234", cls=cls)
        want = reference_smoothgrad(model, xt, 0.2, 6, 1234, cls)
        e = rel_err(got, want)
        report(e <= 1e-3 and meta["parameters"]["samples"] == 6,
               f"SmoothGrad = float64 PyTorch SmoothGrad on evmap's documented noise "
               f"(xoshiro256** seed 1234, sigma 0.2 x range, 6 samples): {e:.2e}")

    model = model.double()
    got, meta = explain(path, image, "gradcam", cls=cls)
    with kink_reference.FollowEvmapKinks(decisions) as follow:
        xt = torch.tensor(x[None], dtype=torch.float64)
        f = torch_score(model(xt)[0], "logodds", cls)
        f.backward()
        a = follow.outputs[3]  # after conv4, before the last pooling
        alpha = a.grad[0].mean((1, 2))
        cam = torch.relu((alpha[:, None, None] * a[0]).sum(0)).detach()
        want = F.interpolate(cam[None, None], size=(28, 28), mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    e = rel_err(got, want)
    report(e <= 1e-3, f"Grad-CAM = PyTorch Grad-CAM on layer '{meta['parameters']['layer']}' "
           f"(last conv's ReLU) at evmap's kinks: {e:.2e}")

    got, _ = explain(path, image, "guided", cls=cls)
    with kink_reference.FollowEvmapKinks(decisions, guided=True):
        xt = torch.tensor(x[None], dtype=torch.float64, requires_grad=True)
        torch_score(model(xt)[0], "logodds", cls).backward()
        want = xt.grad[0].sum(0).numpy()
    e = rel_err(got, want)
    report(e <= 1e-3, f"guided backpropagation = PyTorch with guided ReLU at evmap's kinks: "
           f"{e:.2e}")
    model.float()


def error_checks():
    path = FASHION["fashion_cnn"]
    image = "data/demo/9_ankle_boot.png"
    cases = [
        (["--method", "nope"], "--method"),
        (["--method", "pda", "--steps", "10"], "--steps"),
        (["--method", "saliency", "--window", "3"], "--window"),
        (["--method", "gradcam", "--layer", "no_such_layer"], "no_such_layer"),
        (["--method", "gradcam", "--layer", "logits"], "4-D"),
        (["--method", "ig", "--baseline", "pink"], "--baseline"),
        (["--method", "saliency", "--class", "12"], "out of range"),
    ]
    for args, needle in cases:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            r = subprocess.run([EVMAP, "explain", "--model", path, "--out", out, "--quiet", *args,
                                image], capture_output=True, text=True)
            lines = r.stderr.strip().splitlines()
            left = os.listdir(out) if os.path.isdir(out) else []
            ok = r.returncode == 2 and len(lines) == 1 and needle in lines[0] and not left
            report(ok, f"explain {' '.join(args)}: exit {r.returncode}, "
                   f"{lines[0] if lines else '(no message)'}")


def main():
    torch.set_num_threads(2)
    for part in (gradient_checks, method_checks, error_checks):
        try:
            part()
        except Exception as e:  # a crash is a failure, not a silent pass
            report(False, f"{part.__name__}: {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
