#!/usr/bin/python3
"""Generate "scenes": 224x224 RGB images of one Fashion-MNIST item on a
cluttered photographic background, with the item's mask and box as ground
truth for evidence localisation.

    /usr/bin/python3 scripts/make_scenes.py build/scenes            # train + test
    /usr/bin/python3 scripts/make_scenes.py build/scenes --train 0  # test only
    /usr/bin/python3 scripts/make_scenes.py --sample data/scenes    # committed sample

Deterministic: scene i of a split depends only on (--seed, split, i), so any
subset can be regenerated and checked (tests/test_scenes.py does that for the
committed sample).

Writes into OUT:
  train-images.npy     N x 224 x 224 x 3 uint8 (for training)
  train-labels.npy     N int64 class indices
  test/images/<stem>.png, test/masks/<stem>.png (white = object),
  test/labels.txt      "<stem> <class>" per line,
  test/boxes.txt       "<stem> x0 y0 x1 y1" per line (x1, y1 exclusive),
  test/labels-idx1-ubyte  the same labels as IDX (for evmap classify/evaluate),
  test-background/images/<stem>.png  the same scenes without the object
                       (its accuracy should be chance: the net must find it).
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fashion_models import DATASET_DIR, SHORT_NAMES, read_idx  # noqa: E402

SIDE = 224
SEED = 2026
SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
# Backgrounds: the test split's photographs are never used for training.
TRAIN_BACKGROUNDS = [
    "astronaut.png", "camera.png", "chelsea.png", "coins.png", "hubble_deep_field.jpg",
    "ihc.png", "moon.png", "retina.jpg", "cell.png", "clock_motion.png", "page.png",
    "brick.png", "grass.png", "gravel.png",
]
TEST_BACKGROUNDS = ["coffee.png", "rocket.jpg", "motorcycle_left.png", "phantom.png"]
SPLIT_CODE = {"train": 1, "test": 2}
OBJECT_MIN, OBJECT_MAX = 56, 112


def load_backgrounds(names):
    out = []
    for name in names:
        with Image.open(os.path.join(SKIMAGE_DATA, name)) as im:
            out.append(im.convert("RGB").copy())
    return out


def random_colour(rng):
    return rng.integers(0, 256, size=3)


def background(rng, photos):
    """A random crop of a photograph: scale, flips, colour jitter."""
    photo = photos[rng.integers(len(photos))]
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.3, 1.0))
    x0 = int(rng.integers(0, w - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    crop = photo.resize((SIDE, SIDE), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_TOP_BOTTOM)
    img = np.asarray(crop, dtype=np.float32)
    gain = rng.uniform(0.6, 1.4) * rng.uniform(0.75, 1.25, size=3)  # brightness, tint
    grey = img.mean(axis=2, keepdims=True)
    saturation = rng.uniform(0.3, 1.5)
    img = grey + (img - grey) * saturation
    img = (img - 128) * rng.uniform(0.6, 1.3) + 128  # contrast
    return np.clip(img * gain, 0, 255)


def clutter(rng, img):
    """Random strokes and shapes in random colours, drawn over the background."""
    canvas = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in random_colour(rng))
        kind = rng.integers(4)
        pts = rng.integers(-20, SIDE + 20, size=(4, 2))
        if kind == 0:  # stroke
            n = int(rng.integers(2, 5))
            draw.line([tuple(int(v) for v in p) for p in pts[:n]], fill=colour,
                      width=int(rng.integers(2, 9)))
        elif kind == 1:  # ellipse
            cx, cy = pts[0]
            rx, ry = rng.integers(6, 40, size=2)
            draw.ellipse([int(cx - rx), int(cy - ry), int(cx + rx), int(cy + ry)], fill=colour)
        elif kind == 2:  # rectangle
            cx, cy = pts[0]
            rx, ry = rng.integers(6, 40, size=2)
            draw.rectangle([int(cx - rx), int(cy - ry), int(cx + rx), int(cy + ry)], fill=colour)
        else:  # triangle
            c = pts[0]
            tri = c + rng.integers(-40, 41, size=(3, 2))
            draw.polygon([tuple(int(v) for v in p) for p in tri], fill=colour)
    return np.asarray(canvas, dtype=np.float32)


def texture(rng, size):
    """A pattern in [0, 1] (solid, stripes, checks or noise) to mix two colours."""
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 20)
        t = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        return (np.sin(2 * np.pi * t) > 0).astype(np.float32)
    if kind == 2:
        period = rng.uniform(6, 20)
        return ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
    coarse = rng.random((8, 8)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BILINEAR))


def composite(rng, img, item):
    """Pastes the 28x28 item, scaled and coloured, at a random place inside the
    image; returns the image, the mask (bool) and the box (x0, y0, x1, y1)."""
    size = int(rng.integers(OBJECT_MIN, OBJECT_MAX + 1))
    shade = np.asarray(Image.fromarray(item).resize((size, size), Image.BILINEAR),
                       dtype=np.float32) / 255.0
    alpha = np.clip((shade - 0.03) / 0.09, 0.0, 1.0)
    c1, c2 = random_colour(rng).astype(np.float32), random_colour(rng).astype(np.float32)
    pattern = texture(rng, size)[..., None]
    colour = c1 * (1 - pattern) + c2 * pattern
    obj = colour * (0.35 + 0.65 * shade[..., None])
    x0 = int(rng.integers(0, SIDE - size + 1))
    y0 = int(rng.integers(0, SIDE - size + 1))
    out = img.copy()
    region = out[y0:y0 + size, x0:x0 + size]
    a = alpha[..., None]
    out[y0:y0 + size, x0:x0 + size] = region * (1 - a) + obj * a
    mask = np.zeros((SIDE, SIDE), bool)
    mask[y0:y0 + size, x0:x0 + size] = alpha >= 0.5
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return out, mask, box


def scene(seed, split, index, item, photos):
    """Scene `index` of `split`: (image uint8 HxWx3, background-only uint8,
    mask bool HxW, box). Depends only on its arguments."""
    rng = np.random.default_rng([seed, SPLIT_CODE[split], index])
    back = clutter(rng, background(rng, photos))
    img, mask, box = composite(rng, back, item)
    to_u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return to_u8(img), to_u8(back), mask, box


def stem(index, label):
    return "%05d_%s" % (index, SHORT_NAMES[label])


def write_idx_labels(path, labels):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big"))
        f.write(bytes(int(v) for v in labels))


def write_test(out, seed, indices, items, labels, photos, with_background=True):
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    back_dir = os.path.join(os.path.dirname(out.rstrip("/")), "test-background", "images")
    if with_background:
        os.makedirs(back_dir, exist_ok=True)
    with open(os.path.join(out, "labels.txt"), "w") as fl, \
            open(os.path.join(out, "boxes.txt"), "w") as fb:
        for i in indices:
            img, back, mask, box = scene(seed, "test", i, items[i], photos)
            s = stem(i, labels[i])
            Image.fromarray(img).save(os.path.join(out, "images", s + ".png"))
            Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(out, "masks", s + ".png"))
            if with_background:
                Image.fromarray(back).save(os.path.join(back_dir, s + ".png"))
            fl.write("%s %d\n" % (s, labels[i]))
            fb.write("%s %d %d %d %d\n" % ((s,) + box))
    write_idx_labels(os.path.join(out, "labels-idx1-ubyte"), [labels[i] for i in indices])


def write_train(out, seed, n, items, labels, photos):
    path = os.path.join(out, "train-images.npy")
    data = np.lib.format.open_memmap(path + ".part", mode="w+", dtype=np.uint8,
                                     shape=(n, SIDE, SIDE, 3))
    for i in range(n):
        data[i] = scene(seed, "train", i, items[i], photos)[0]
        if (i + 1) % 5000 == 0:
            print("  train scenes: %d/%d" % (i + 1, n), flush=True)
    data.flush()
    del data
    os.replace(path + ".part", path)
    np.save(os.path.join(out, "train-labels.npy"), labels[:n].astype(np.int64))


def sample_indices(labels, per_class, limit):
    """The first `per_class` test scenes of each class among the first `limit`."""
    picked = []
    for c in range(10):
        picked += [int(i) for i in np.nonzero(labels[:limit] == c)[0][:per_class]]
    return sorted(picked)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="output folder (e.g. build/scenes)")
    ap.add_argument("--train", type=int, default=60000, help="training scenes (<= 60000)")
    ap.add_argument("--test", type=int, default=2000, help="test scenes (<= 10000)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--sample", metavar="DIR",
                    help="write only the committed sample (4 test scenes per class) to DIR")
    ap.add_argument("--dataset-dir", default=DATASET_DIR)
    args = ap.parse_args()
    if not args.out and not args.sample:
        ap.error("give an output folder or --sample DIR")

    def load(split):
        prefix = "train" if split == "train" else "t10k"
        return (read_idx(os.path.join(args.dataset_dir, prefix + "-images-idx3-ubyte.gz")).astype(np.uint8),
                read_idx(os.path.join(args.dataset_dir, prefix + "-labels-idx1-ubyte.gz")).astype(np.int64))

    test_items, test_labels = load("test")
    test_photos = load_backgrounds(TEST_BACKGROUNDS)
    if args.sample:
        picked = sample_indices(test_labels, 4, args.test)
        write_test(args.sample, args.seed, picked, test_items, test_labels, test_photos,
                   with_background=False)
        print("%s: %d scenes" % (args.sample, len(picked)))
        return
    os.makedirs(args.out, exist_ok=True)
    write_test(os.path.join(args.out, "test"), args.seed, range(args.test), test_items,
               test_labels, test_photos)
    print("%s/test: %d scenes" % (args.out, args.test), flush=True)
    if args.train > 0:
        train_items, train_labels = load("train")
        write_train(args.out, args.seed, args.train, train_items, train_labels,
                    load_backgrounds(TRAIN_BACKGROUNDS))
        print("%s: %d training scenes" % (args.out, args.train))


if __name__ == "__main__":
    main()
