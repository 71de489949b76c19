#!/usr/bin/python3
"""The shipped Fashion-MNIST models: evmap agrees with PyTorch on real data.

For each shipped model, classifies all 10000 test images with `evmap
classify --json` and with PyTorch (the model rebuilt from the ONNX file's
initializers by scripts/fashion_models.py), and requires the same top-1 class
on at least 9995 images and evmap's accuracy to equal the figure recorded in
models/README.md.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import fashion_models  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
DATA = "/usr/share/datasets/fashion-mnist"
IMAGES = os.path.join(DATA, "t10k-images-idx3-ubyte.gz")
LABELS = os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")


def readme_accuracy(name):
    """The test accuracy (percent) that models/README.md records for a model."""
    text = open(os.path.join(ROOT, "models", "README.md")).read()
    section = text[text.index(f"{name}.onnx"):]
    return float(re.search(r"([0-9]+\.[0-9]+)\s*%", section).group(1))


def evmap_predictions(model_path):
    out = subprocess.run([os.path.join(BUILD, "evmap"), "classify", "--model", model_path,
                          "--json", "--batch", "64", "--labels-idx", LABELS, IMAGES],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    preds = [json.loads(line)["top"][0]["class"] for line in out if line.startswith("{")]
    accuracy = float(re.search(r"= ([0-9.]+)%", out[-1]).group(1))
    return np.array(preds), accuracy


def torch_predictions(model_path):
    model = fashion_models.torch_model_from_onnx(model_path)
    images, _ = fashion_models.load_split("t10k")
    with torch.no_grad():
        logits = torch.cat([model(fashion_models.to_input(images[i:i + 500]))
                            for i in range(0, len(images), 500)])
    return logits.argmax(1).numpy()


def main():
    torch.set_num_threads(2)
    passed = failed = 0
    for name in ("fashion_cnn", "fashion_resnet"):
        path = os.path.join(ROOT, "models", name + ".onnx")
        try:
            ours, accuracy = evmap_predictions(path)
            theirs = torch_predictions(path)
            agree = int((ours == theirs).sum())
            recorded = readme_accuracy(name)
            ok = len(ours) == 10000 and agree >= 9995 and abs(accuracy - recorded) < 0.005
            print(f"{'ok  ' if ok else 'FAIL'} {name}: top-1 agrees with PyTorch on {agree}/10000;"
                  f" accuracy {accuracy:.2f}% (models/README.md: {recorded:.2f}%)")
        except Exception as e:  # report and go on
            print(f"FAIL {name}: {e}")
            ok = False
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
