#!/usr/bin/python3
"""Whole models: evmap's logits against PyTorch's on fixed inputs.

Exports torchvision architectures with random weights (scripts/
export_torchvision.py) into the build folder, runs PyTorch and evmap on the
same seeded inputs (batch 2), and requires max |difference| <= 1e-4 * max
|logit| and the same top-5 classes for every image, in the same order, where
PyTorch's logits tell them apart by more than rounding: random weights leave
near-ties that another CPU's kernels may order either way, so a pair counts
only when PyTorch's logits differ by more than twice the allowed difference.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import export_torchvision  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
RUN_MODEL = os.path.join(BUILD, "tests", "run_model")


def evmap_logits(model_path, x):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.f32"), os.path.join(tmp, "out.f32")
        x.astype(np.float32).tofile(inp)
        subprocess.run([RUN_MODEL, model_path, inp, *map(str, x.shape), out], check=True)
        return np.fromfile(out, dtype=np.float32)


def top5_agrees(want, got, tol):
    """Every class a in want's top 5 stays above every class b that want puts
    more than 2 tol below it (order within the top 5, and membership)."""
    for a in np.argsort(-want)[:5]:
        below = want[a] - want > 2 * tol
        if not (got[a] > got[below]).all():
            return False
    return True


def check(name, models_dir):
    path = os.path.join(models_dir, name + ".onnx")
    export_torchvision.main_export(name, path)
    model = export_torchvision.build(name)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(2, 3, 224, 224, generator=gen)
    with torch.no_grad():
        want = model(x).numpy()
    got = evmap_logits(path, x.numpy()).reshape(want.shape)
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    tol = 1e-4 * scale
    top_same = all(top5_agrees(want[i], got[i], tol) for i in range(len(x)))
    exact = all(
        list(np.argsort(-want[i])[:5]) == list(np.argsort(-got[i])[:5]) for i in range(len(x)))
    ok = err <= tol and top_same
    print(f"{'ok  ' if ok else 'FAIL'} {name:14s} max|diff| {err:.3g}  max|logit| {scale:.3g}"
          f"  ratio {err / scale:.2e}  top-5 {'same' if top_same else 'DIFFERENT'}"
          f"{'' if exact or not top_same else ' (near-ties ordered differently)'}")
    return ok


def main():
    names = sys.argv[1:] or list(export_torchvision.MODELS)
    models_dir = os.environ.get("MODELS", os.path.join(BUILD, "models"))
    os.makedirs(models_dir, exist_ok=True)
    torch.set_num_threads(2)
    passed = failed = 0
    for name in names:
        try:
            ok = check(name, models_dir)
        except Exception as e:  # report and go on to the next model
            print(f"FAIL {name}: {e}")
            ok = False
        passed += ok
        failed += not ok
    print(f"models: {passed} passed, {failed} failed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
