#!/usr/bin/python3
"""A linear classifier over the pixels, exported to ONNX: a model whose true
evidence is known. With two classes, p(c | x) = sigmoid(z_c - z_o) and
z_c - z_o = sum_i (w_c,i - w_o,i) x_i + (b_c - b_o), so pixel i contributes
exactly (w_c,i - w_o,i) * (x_i - f_i) when it is replaced by f_i, and deleting
pixels in the order of that contribution lowers p(c) faster than any other
order (tests/test_evaluate.py relies on this).

    linear_model.py --out build/tests/linear.onnx [--size 10x10] [--channels 1]
                    [--classes 2] [--seed 0]

writes the ONNX file and the weights beside it (FILE.npz: w, b).
"""
import argparse
import os

import numpy as np
import torch


def make(path, channels=1, height=10, width=10, classes=2, seed=0):
    """Exports the model to path and returns (w, b) as float64 numpy arrays,
    w of shape classes x (channels * height * width)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(),
                                torch.nn.Linear(channels * height * width, classes))
    with torch.no_grad():
        model[1].weight.mul_(8.0)  # confident enough that deletion matters
    model.eval()
    x = torch.zeros(1, channels, height, width)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"],
                      opset_version=13)
    w = model[1].weight.detach().double().numpy()
    b = model[1].bias.detach().double().numpy()
    np.savez(path + ".npz", w=w, b=b)
    return w, b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="10x10", help="WIDTHxHEIGHT")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))
    make(a.out, a.channels, height, width, a.classes, a.seed)


if __name__ == "__main__":
    main()
