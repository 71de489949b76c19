#!/usr/bin/python3
"""Write data/demo/: the first t10k test image of each Fashion-MNIST class,
as 8-bit grayscale 28x28 PNG named <classindex>_<shortname>.png.

    /usr/bin/python3 scripts/make_demo_images.py [--out-dir data/demo]

PNG is written with zlib + struct only (no PIL).  Deterministic output.
"""

import argparse
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fashion_models import SHORT_NAMES, read_idx, DATASET_DIR  # noqa: E402


def png_gray8(pixels):
    """Encode a 2-D uint8 numpy array as an 8-bit grayscale PNG (bytes)."""
    h, w = pixels.shape

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    # filter type 0 (None) before each scanline
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    repo = os.path.dirname(HERE)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(repo, "data", "demo"))
    ap.add_argument("--dataset-dir", default=DATASET_DIR)
    args = ap.parse_args()

    images = read_idx(os.path.join(args.dataset_dir, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.dataset_dir, "t10k-labels-idx1-ubyte.gz"))
    os.makedirs(args.out_dir, exist_ok=True)
    for c, short in enumerate(SHORT_NAMES):
        idx = int((labels == c).nonzero()[0][0])
        path = os.path.join(args.out_dir, "%d_%s.png" % (c, short))
        with open(path, "wb") as f:
            f.write(png_gray8(images[idx].astype("uint8")))
        print("%s  (t10k index %d)" % (path, idx))


if __name__ == "__main__":
    main()
