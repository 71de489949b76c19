#!/usr/bin/python3
"""Share of positive evidence that falls on the object, for the demo maps.

For each model's PDA maps in demo-out/<model>/ (written by `make demo`), the
object is the set of pixels brighter than the background (value > 0.05 in
[0,1]; Fashion-MNIST backgrounds are 0). Prints, per image and on average,
the share of the map's positive evidence on object pixels next to the share
of the image the object covers (what a map spread at random would score).

usage: scripts/object_evidence.py [DEMO_OUT]
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
from test_pda import load_png_gray  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "demo-out")
    print("| model | image | class | positive evidence on object | object area |")
    print("| --- | --- | --- | --- | --- |")
    for model in ("fashion_cnn", "fashion_resnet"):
        shares, areas = [], []
        folder = os.path.join(out, model)
        for name in sorted(f for f in os.listdir(folder) if f.endswith(".json")):
            summary = json.load(open(os.path.join(folder, name)))
            image = load_png_gray(summary["image"]).astype(np.float64) / 255
            obj = image > 0.05
            for c in summary["classes"]:
                m = np.load(os.path.join(folder, c["npy"]))
                pos = np.where(np.isfinite(m) & (m > 0), m, 0.0)
                share = pos[obj].sum() / pos.sum() if pos.sum() > 0 else float("nan")
                shares.append(share)
                areas.append(obj.mean())
                print(f"| {model} | {summary['stem']} | {c['label']} | {100 * share:.1f} % |"
                      f" {100 * obj.mean():.1f} % |")
        print(f"| {model} | **mean** | | **{100 * np.nanmean(shares):.1f} %** |"
              f" {100 * np.mean(areas):.1f} % |")


if __name__ == "__main__":
    main()
