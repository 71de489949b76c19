#!/usr/bin/python3
"""The scenes benchmark (scripts/make_scenes.py, models/scenes_cnn.onnx).

  - the committed sample data/scenes/ is what make_scenes.py writes (decoded
    pixels, labels and boxes regenerated from the seed);
  - its ground truth is sound: 224x224 RGB images, binary masks that hold the
    object, boxes that are the masks' bounding boxes and lie inside the image,
    objects of at most 112 px, every class at least 4 times; the test split's
    photographs are never used for training;
  - evmap classify on the sample (with the documented preprocessing) gives
    PyTorch's probabilities (the model rebuilt from the ONNX weights) and the
    same top-1 class.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import make_scenes  # noqa: E402
import scenes_model  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
EVMAP = os.path.join(BUILD, "evmap")
SAMPLE = os.path.join(ROOT, "data", "scenes")
MODEL = os.path.join(ROOT, "models", "scenes_cnn.onnx")
PREPROCESS = ["--preprocess", "imagenet", "--size", "224x224"]

passed = failed = 0


def report(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def pixels(path):
    return np.asarray(Image.open(path))


def read_table(path):
    return [line.split() for line in open(path)]


def check_regenerated(stems):
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "sample")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make_scenes.py"),
                        "--sample", out], capture_output=True, text=True)
    report(r.returncode == 0, f"make_scenes.py --sample runs ({r.stderr.strip()[-200:]})")
    if r.returncode != 0:
        return
    same = all(np.array_equal(pixels(os.path.join(SAMPLE, sub, s + ".png")),
                              pixels(os.path.join(out, sub, s + ".png")))
               for s in stems for sub in ("images", "masks"))
    report(same, f"the {len(stems)} committed scenes and masks are what the script writes")
    for name in ("labels.txt", "boxes.txt"):
        report(open(os.path.join(SAMPLE, name)).read() == open(os.path.join(out, name)).read(),
               f"committed {name} is what the script writes")


def check_ground_truth(labels, boxes):
    ok_img = ok_mask = ok_box = ok_size = True
    for stem, *box in boxes:
        img = pixels(os.path.join(SAMPLE, "images", stem + ".png"))
        mask = pixels(os.path.join(SAMPLE, "masks", stem + ".png"))
        ok_img &= img.shape == (224, 224, 3)
        ok_mask &= mask.shape == (224, 224) and set(np.unique(mask)) <= {0, 255} and mask.any()
        x0, y0, x1, y1 = (int(v) for v in box)
        ys, xs = np.nonzero(mask)
        ok_box &= (0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
                   and (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1))
        ok_size &= x1 - x0 <= make_scenes.OBJECT_MAX and y1 - y0 <= make_scenes.OBJECT_MAX
    report(ok_img, "sample images are 224x224 RGB")
    report(ok_mask, "masks are 224x224, white on black, never empty")
    report(ok_box, "boxes are the masks' bounding boxes, inside the image")
    report(ok_size, f"objects are at most {make_scenes.OBJECT_MAX} px")
    counts = np.bincount([int(c) for _, c in labels], minlength=10)
    report(len(labels) >= 40 and counts.min() >= 4, f"every class at least 4 times ({counts})")
    report(not set(make_scenes.TRAIN_BACKGROUNDS) & set(make_scenes.TEST_BACKGROUNDS),
           "test photographs are not training photographs")


def check_model(stems, labels):
    if not os.path.exists(MODEL):
        report(False, f"{MODEL} exists")
        return
    r = subprocess.run([EVMAP, "classify", "--model", MODEL, "--json"]
                       + PREPROCESS + [os.path.join(SAMPLE, "images")],
                       capture_output=True, text=True)
    report(r.returncode == 0, f"evmap classify runs on the sample ({r.stderr.strip()[:200]})")
    if r.returncode != 0:
        return
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    got = np.array([row["probs"] for row in rows])
    model = scenes_model.from_onnx(MODEL)
    batch = np.stack([pixels(os.path.join(SAMPLE, "images", s + ".png")) for s in stems])
    with torch.no_grad():
        want = torch.softmax(model(scenes_model.to_input(batch)), 1).double().numpy()
    diff = np.abs(got - want).max() if got.shape == want.shape else np.inf
    report(diff < 1e-4, f"evmap's probabilities equal PyTorch's on {len(stems)} scenes "
           f"(max |diff| {diff:.2g})")
    top_e, top_t = got.argmax(1), want.argmax(1)
    second = np.sort(want, 1)[:, -2]
    clear = want.max(1) - second > 1e-3
    report(np.array_equal(top_e[clear], top_t[clear]), "same top-1 class where not a near tie")
    truth = np.array([int(c) for _, c in labels])
    print(f"     sample accuracy: evmap {np.mean(top_e == truth):.3f}, "
          f"PyTorch {np.mean(top_t == truth):.3f}")


def main():
    labels = read_table(os.path.join(SAMPLE, "labels.txt"))
    boxes = read_table(os.path.join(SAMPLE, "boxes.txt"))
    stems = [s for s, _ in labels]
    report(stems == sorted(stems) and [b[0] for b in boxes] == stems,
           "labels.txt and boxes.txt list the same stems in sorted (evmap's folder) order")
    check_regenerated(stems)
    check_ground_truth(labels, boxes)
    check_model(stems, labels)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
