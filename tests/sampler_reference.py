#!/usr/bin/python3
"""Independent numpy reference for the conditional sampler (tests/unit/test_sampler.c).

Usage: sampler_reference.py DIR. DIR holds, written by the C test:
  params.txt     n C H W k pad joint P Q (whitespace-separated integers)
  images.f32     n x C x H x W float32, the reference images
  positions.i64  P x 3 int64 (image, y, x): the patches the sampler was fitted on
  image.f32      C x H x W float32, the image whose windows are queried
  queries.i32    Q x 2 int32 (y, x): window top-left corners
Writes DIR/ref.f64 (float64, little-endian), in this order:
  per group: mean (dim), covariance (dim x dim, ddof=1)
  per query: conditional mean (C x k x k), then per group the conditional
             covariance of the window (wd x wd)
computed directly: mu_w + S_wr S_rr^-1 (x_r - mu_r) and S_ww - S_wr S_rr^-1 S_rw
with numpy.linalg.solve. At borders the l x l patch is shifted into the image.
"""
import os
import sys

import numpy as np


def group_vectors(patches, joint):
    """patches: (P, C, l, l) -> list of (P, dim) arrays, one per group."""
    p, c = patches.shape[:2]
    if joint:
        return [patches.reshape(p, -1)]
    return [patches[:, i].reshape(p, -1) for i in range(c)]


def main(folder):
    n, c, h, w, k, pad, joint, npatch, nq = [
        int(v) for v in open(os.path.join(folder, "params.txt")).read().split()
    ]
    l = k + 2 * pad
    images = np.fromfile(os.path.join(folder, "images.f32"), "<f4").reshape(n, c, h, w)
    pos = np.fromfile(os.path.join(folder, "positions.i64"), "<i8").reshape(npatch, 3)
    image = np.fromfile(os.path.join(folder, "image.f32"), "<f4").reshape(c, h, w)
    queries = np.fromfile(os.path.join(folder, "queries.i32"), "<i4").reshape(nq, 2)

    patches = np.stack([images[i, :, y:y + l, x:x + l] for i, y, x in pos]).astype(np.float64)
    groups = group_vectors(patches, joint)
    means = [g.mean(axis=0) for g in groups]
    covs = [np.cov(g, rowvar=False) for g in groups]
    out = []
    for m, s in zip(means, covs):
        out += [m.ravel(), s.ravel()]

    gc = c if joint else 1
    for y, x in queries:
        py = min(max(y - pad, 0), h - l)
        px = min(max(x - pad, 0), w - l)
        mask = np.zeros((gc, l, l), bool)
        mask[:, y - py:y - py + k, x - px:x - px + k] = True
        win = np.flatnonzero(mask.ravel())
        ring = np.flatnonzero(~mask.ravel())
        current = group_vectors(image[None, :, py:py + l, px:px + l].astype(np.float64), joint)
        cond_means, cond_covs = [], []
        for m, s, v in zip(means, covs, current):
            v = v[0]
            s_rr = s[np.ix_(ring, ring)]
            s_wr = s[np.ix_(win, ring)]
            s_ww = s[np.ix_(win, win)]
            cond_means.append(m[win] + s_wr @ np.linalg.solve(s_rr, v[ring] - m[ring]))
            cond_covs.append(s_ww - s_wr @ np.linalg.solve(s_rr, s_wr.T))
        out.append(np.concatenate(cond_means))
        out += [cc.ravel() for cc in cond_covs]
    np.concatenate(out).astype("<f8").tofile(os.path.join(folder, "ref.f64"))


if __name__ == "__main__":
    main(sys.argv[1])
