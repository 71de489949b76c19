#!/usr/bin/python3
"""The shipped Fashion-MNIST models: evmap agrees with PyTorch on real data.

For each shipped model, classifies all 10000 test images with `evmap
classify --json` and with PyTorch (the model rebuilt from the ONNX file's
initializers by scripts/fashion_models.py), and requires the same top-1 class
on all but at most ALLOWED = 5 images (near-ties that another CPU's OpenBLAS
kernels may round the other way), and evmap's count of correct images within
ALLOWED of the count models/README.md records: each near-tie that flips can
move the count by one, so the exact figure belongs to one machine. With
EVMAP_QUICK=1 (the sanitized pass of make test) only the first 1000 images,
at most 1 disagreeing, and no accuracy figure.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_models  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
DATA = "/usr/share/datasets/fashion-mnist"
IMAGES = os.path.join(DATA, "t10k-images-idx3-ubyte.gz")
LABELS = os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")


def readme_correct(name):
    """The correct count on the 10000 test images that models/README.md
    records for a model ("92.72 % (9272/10000)")."""
    text = open(os.path.join(ROOT, "models", "README.md")).read()
    section = text[text.index(f"{name}.onnx"):]
    return int(re.search(r"\(([0-9]+)/10000\)", section).group(1))


QUICK = os.environ.get("EVMAP_QUICK") == "1"
COUNT = 1000 if QUICK else 10000
ALLOWED = COUNT - COUNT * 9995 // 10000  # disagreements with PyTorch: 5 (quick: 1)


def first_entries(src, path, count, header, entry):
    """A plain IDX file with the first count entries of src."""
    import gzip
    with gzip.open(src) as f:
        head, data = f.read(header), f.read(count * entry)
    with open(path, "wb") as f:
        f.write(head[:4] + count.to_bytes(4, "big") + head[8:] + data)
    return path


def evmap_predictions(model_path, images, labels):
    out = subprocess.run([os.path.join(BUILD, "evmap"), "classify", "--model", model_path,
                          "--json", "--batch", "64", "--labels-idx", labels, images],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    preds = [json.loads(line)["top"][0]["class"] for line in out if line.startswith("{")]
    accuracy = float(re.search(r"= ([0-9.]+)%", out[-1]).group(1))
    return np.array(preds), accuracy


def torch_predictions(model_path):
    model = fashion_models.torch_model_from_onnx(model_path)
    images, _ = fashion_models.load_split("t10k")
    images = images[:COUNT]
    with torch.no_grad():
        logits = torch.cat([model(fashion_models.to_input(images[i:i + 500]))
                            for i in range(0, len(images), 500)])
    return logits.argmax(1).numpy()


def main():
    torch.set_num_threads(2)
    passed = failed = 0
    tmp = tempfile.mkdtemp()
    images, labels = IMAGES, LABELS
    if QUICK:
        images = first_entries(IMAGES, os.path.join(tmp, "images"), COUNT, 16, 28 * 28)
        labels = first_entries(LABELS, os.path.join(tmp, "labels"), COUNT, 8, 1)
    truth = fashion_models.load_split("t10k")[1][:COUNT]
    for name in ("fashion_cnn", "fashion_resnet"):
        path = os.path.join(ROOT, "models", name + ".onnx")
        try:
            ours, accuracy = evmap_predictions(path, images, labels)
            theirs = torch_predictions(path)
            agree = int((ours == theirs).sum())
            correct = int((ours == truth).sum()) if len(ours) == COUNT else -1
            recorded = readme_correct(name)
            ok = len(ours) == COUNT and COUNT - agree <= ALLOWED
            # evmap's own summary line says the same as its per-image answers
            ok = ok and abs(accuracy - 100.0 * correct / COUNT) < 0.005
            ok = ok and (QUICK or abs(correct - recorded) <= ALLOWED)
            print(f"{'ok  ' if ok else 'FAIL'} {name}: top-1 agrees with PyTorch on {agree}/{COUNT}"
                  f" (at most {ALLOWED} may differ); {correct}/{COUNT} correct"
                  + ("" if QUICK else f" (models/README.md: {recorded}/10000, within {ALLOWED})"))
        except Exception as e:  # report and go on
            print(f"FAIL {name}: {e}")
            ok = False
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
