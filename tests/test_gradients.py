#!/usr/bin/python3
"""Gradients and the gradient family against PyTorch and against theory.

1. Input gradients of a class's logit and log-odds (evmap_input_gradient,
   through build/tests/grad_model) against PyTorch autograd in float64 on
   both Fashion-MNIST models and random-weight resnet18, googlenet,
   mobilenet_v2 and densenet121 (BatchNorm statistics calibrated on random
   images): max |difference| <= 1e-3 * max |gradient|, with PyTorch's relu
   and max_pool2d taking their decisions from evmap's forward (they differ
   only for inputs within float32 rounding of a kink; see FollowEvmapKinks).
2. `evmap explain --method ...` on Fashion-MNIST images:
   - saliency equals max over channels of |autograd gradient|;
   - gradient x input equals a numerically differentiated version:
     d/dt f(x + t x_p e_p) at t = 0, by central differences in float64;
   - Integrated Gradients is complete: the map sums to f(x) - f(baseline)
     within 1 % at 200 steps (zero and mean baselines);
   - Grad-CAM equals a PyTorch Grad-CAM on the same layer (the last
     convolution's ReLU), upsampled with F.interpolate;
   - guided backpropagation equals PyTorch with a guided ReLU;
   - SmoothGrad with zero noise equals saliency;
   - options a method does not take, unknown methods and layers: exit 2
     with one line.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import export_torchvision  # noqa: E402
import fashion_models  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
GRAD_MODEL = os.path.join(BUILD, "tests", "grad_model")
EVMAP = os.path.join(BUILD, "evmap")
FASHION = {"fashion_cnn": "models/fashion_cnn.onnx", "fashion_resnet": "models/fashion_resnet.onnx"}

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


class RoutedMaxPool(torch.autograd.Function):
    """Max pooling whose winners are given: forward gathers them, backward
    sends the gradient to them."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        gx = torch.zeros(ctx.shape, dtype=g.dtype).flatten(2)
        gx.scatter_add_(2, idx.flatten(2), g.flatten(2))
        return gx.view(ctx.shape), None


def kink_inputs(onnx_path):
    """ONNX names of the inputs of every Relu and MaxPool node, in graph
    order (the order PyTorch called them in when it exported the model)."""
    import onnx
    nodes = onnx.load(onnx_path).graph.node
    return ([n.input[0] for n in nodes if n.op_type == "Relu"],
            [n.input[0] for n in nodes if n.op_type == "MaxPool"])


class FollowEvmapKinks:
    """While active, PyTorch's relu and max_pool2d take their decisions from
    evmap's float32 forward: relu passes where evmap's input was > 0, each
    MaxPool window picks the input evmap picked. Elsewhere nothing changes,
    so a float64 model run this way is the exact gradient at evmap's
    linearisation. It differs from unconstrained autograd only where an
    input lies within float32 rounding of a kink (a pre-activation within
    rounding of 0, two window inputs within rounding of each other): with
    random weights, a 224x224 image has millions of such inputs and a few
    always do, so every float32 implementation differs there, PyTorch's own
    float32 autograd included."""

    def __init__(self, relu_inputs, pool_inputs):
        self.relu_inputs, self.pool_inputs = relu_inputs, pool_inputs

    def __enter__(self):
        self.saved = F.relu, F.max_pool2d
        relus, pools = iter(self.relu_inputs), iter(self.pool_inputs)

        def relu(x, inplace=False):
            mask = torch.tensor(next(relus) > 0).view(x.shape).to(x.dtype)
            return x * mask

        def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
            ref = torch.tensor(next(pools), dtype=x.dtype).view(x.shape)
            _, idx = self.saved[1](ref, kernel_size, stride, padding, dilation,
                                   ceil_mode=ceil_mode, return_indices=True)
            return RoutedMaxPool.apply(x, idx)

        F.relu, F.max_pool2d = relu, max_pool2d
        return self

    def __exit__(self, *exc):
        F.relu, F.max_pool2d = self.saved


def fashion_images(n):
    images, labels = fashion_models.load_split("t10k")
    return fashion_models.to_input(images[:n]).numpy(), labels[:n]


# ------------------------------------------------------------ 1. gradients

def calibrated(name):
    """A random-weight torchvision model whose BatchNorm statistics are those
    of its own activations on random images. With export_torchvision's
    random statistics, googlenet's activations are nearly constant (its
    weights are tiny), MaxPool windows hold near-ties everywhere, and
    PyTorch's own float32 gradient differs from its float64 one by 58 %."""
    model = export_torchvision.build(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(99)))
    return model.eval()


def export_calibrated(name, path):
    if os.path.exists(path):
        return
    warnings.filterwarnings("ignore")
    torch.onnx.export(calibrated(name), torch.zeros(1, 3, 224, 224), path + ".tmp",
                      opset_version=13, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    os.replace(path + ".tmp", path)


def check_model_gradients(name, path, model, x, classes):
    """evmap (float32) against PyTorch autograd in float64 at evmap's kink
    decisions (FollowEvmapKinks); unconstrained float64 autograd compared
    with PyTorch's and evmap's float32 gradients is shown for scale."""
    relu_in, pool_in = kink_inputs(path)
    for score in ("logit", "logodds"):
        for cls in classes:
            got, f_got, acts = evmap_grad(path, x, score, cls, relu_in + pool_in)
            torch32, _ = torch_grad(model, x, score, cls, torch.float32)
            free, _ = torch_grad(model, x, score, cls, torch.float64)
            with FollowEvmapKinks(acts[:len(relu_in)], acts[len(relu_in):]):
                exact, f_want = torch_grad(model, x, score, cls, torch.float64)
            e = rel_err(got, exact)
            f_ok = abs(f_got - f_want) <= 1e-4 * max(1.0, abs(f_want))
            report(e <= 1e-3 and f_ok,
                   f"{name:14s} d {score:7s}[{cls}]/dx: max|diff|/max|grad| {e:.2e} vs float64 "
                   f"autograd at evmap's kinks (unconstrained float64: evmap "
                   f"{rel_err(got, free):.1e}, PyTorch float32 {rel_err(torch32, free):.1e}); "
                   f"f evmap {f_got:.6g} exact {f_want:.6g}")
    model.float()


def gradient_checks():
    x, labels = fashion_images(2)
    for name, path in FASHION.items():
        model = fashion_models.torch_model_from_onnx(path)
        for i in range(2):
            check_model_gradients(name, path, model, x[i],
                                  [int(labels[i]), (int(labels[i]) + 3) % 10])
    models_dir = os.environ.get("MODELS", os.path.join(BUILD, "models"))
    os.makedirs(models_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(4321)
    # EVMAP_QUICK (the sanitized pass of make test): one torchvision model.
    names = ("resnet18", "googlenet", "mobilenet_v2", "densenet121")
    for name in names[:1] if os.environ.get("EVMAP_QUICK") == "1" else names:
        path = os.path.join(models_dir, name + "_calibrated.onnx")
        export_calibrated(name, path)
        model = calibrated(name)
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


class PatchedRelu:
    """Replaces F.relu (which the Fashion CNN calls) while active: records
    the outputs, and with guided=True passes back only positive gradients
    through positive inputs."""

    class Guided(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g.clamp(min=0) * (x > 0).to(g.dtype)

    def __init__(self, guided=False):
        self.guided, self.outputs, self.saved = guided, [], None

    def __enter__(self):
        self.saved = F.relu

        def relu(x, inplace=False):
            y = PatchedRelu.Guided.apply(x) if self.guided else self.saved(x)
            if y.requires_grad:
                y.retain_grad()
            self.outputs.append(y)
            return y
        F.relu = relu
        fashion_models.F.relu = relu
        return self

    def __exit__(self, *exc):
        F.relu = self.saved
        fashion_models.F.relu = self.saved


def method_checks():
    path = FASHION["fashion_cnn"]
    model = fashion_models.torch_model_from_onnx(path)
    image = "data/demo/9_ankle_boot.png"
    x = load_demo(image)
    cls = 9

    got, meta = explain(path, image, "saliency", cls=cls)
    g, _ = torch_grad(model, x, "logodds", cls)
    report(rel_err(got, np.abs(g).max(0)) <= 1e-3 and meta["method"] == "saliency",
           f"saliency = max_c |autograd grad|: {rel_err(got, np.abs(g).max(0)):.2e}")

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

    model = model.float()
    got, meta = explain(path, image, "gradcam", cls=cls)
    with PatchedRelu() as relu:
        xt = torch.tensor(x[None])
        f = torch_score(model(xt)[0], "logodds", cls)
        f.backward()
        a = relu.outputs[3]  # after conv4, before the last pooling
        alpha = a.grad[0].mean((1, 2))
        cam = torch.relu((alpha[:, None, None] * a[0]).sum(0)).detach()
        want = F.interpolate(cam[None, None], size=(28, 28), mode="bilinear",
                             align_corners=False)[0, 0].numpy()
    e = rel_err(got, want)
    report(e <= 1e-3, f"Grad-CAM = PyTorch Grad-CAM on layer '{meta['parameters']['layer']}' "
           f"(last conv's ReLU): {e:.2e}")

    got, _ = explain(path, image, "guided", cls=cls)
    with PatchedRelu(guided=True):
        xt = torch.tensor(x[None], requires_grad=True)
        torch_score(model(xt)[0], "logodds", cls).backward()
        want = xt.grad[0].sum(0).numpy()
    e = rel_err(got, want)
    report(e <= 1e-3, f"guided backpropagation = PyTorch with guided ReLU: {e:.2e}")

    sal, _ = explain(path, image, "saliency", cls=cls)
    got, _ = explain(path, image, "smoothgrad", "--noise", "0", "--samples", "3", cls=cls)
    report(rel_err(got, sal) <= 1e-6, f"SmoothGrad with zero noise = saliency: {rel_err(got, sal):.2e}")


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
