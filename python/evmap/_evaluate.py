"""Model.evaluate: the CLI's `evmap evaluate` metrics from Python, computed
with the C library's metric functions (docs/evaluate.md)."""
import ctypes
import math

import numpy as np

from . import _lib as L
from ._model import BASELINES, _ptr

EXPENSIVE = ("pda",)  # max-sensitivity is skipped for these unless asked for


def _iptr(a):
    return a.ctypes.data_as(L.IntPtr)


def _dptr(a):
    return a.ctypes.data_as(L.DoublePtr)


class _Curves:
    """p(class) along perturbation curves, in batches of the evaluation's
    runner (the CLI's batch: every point of one curve in one pass, at most
    256 images)."""

    def __init__(self, model, x, batch):
        self.model, self.shape = model, x.shape
        self.runner = model._runner(batch, x.shape[1:])
        self.batch, self.k = batch, model.num_classes
        self.images = np.empty((batch,) + x.shape, np.float32)
        self.probs = np.empty((batch, self.k), np.float32)

    def probabilities(self, x):
        """p of every class for one image (a batch of one, as the CLI)."""
        err = L.Error()
        L.check(L.lib.evmap_runner_classify(self.runner, _ptr(x), 1, _ptr(self.probs),
                                            ctypes.byref(err)), err)
        return self.probs[0].copy()

    def run(self, src, dst, order, counts, cls):
        c, h, w = self.shape
        out = np.empty(len(counts))
        err = L.Error()
        for first in range(0, len(counts), self.batch):
            n = min(self.batch, len(counts) - first)
            for j in range(n):
                L.lib.evmap_eval_replace(_ptr(src), _ptr(dst), c, h, w, _iptr(order),
                                         int(counts[first + j]), _ptr(self.images[j]))
            L.check(L.lib.evmap_runner_classify(self.runner, _ptr(self.images), n,
                                                _ptr(self.probs), ctypes.byref(err)), err)
            out[first:first + n] = self.probs[:n, cls]
        return out


def _summary(values):
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], np.float64)
    if len(v) == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "se": se, "n": int(len(v))}


def evaluate(model, images, methods, *, labels=None, explain_label=False, steps=50,
             fill="blur", aopc_window=None, aopc_regions=None, sensitivity_radius=0.02,
             sensitivity_samples=10, sensitivity_methods=None, masks=None,
             pointing_tolerance=None, iou_top=0.1, batch=0, seed=0, **options):
    x_all = model.prepare(images)
    n, (c, h, w) = x_all.shape[0], x_all.shape[1:]
    plane = h * w
    if isinstance(methods, str):
        methods = [methods]
    if sensitivity_methods is None:
        sensitivity_methods = [m for m in methods if m not in EXPENSIVE]
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != (n, h, w):
            raise ValueError(f"masks must be {n} x {h} x {w} (one per image), not {masks.shape}")
    if explain_label and labels is None:
        raise ValueError("explain_label=True needs labels")
    points = steps + 1
    aopc_k = aopc_window or L.lib.evmap_pda_default_window(h, w)
    regions = L.lib.evmap_eval_region_count(h, w, aopc_k)
    aopc_l = aopc_regions or max(1, int(math.floor(0.1 * regions + 0.5)))
    if aopc_l > regions:
        raise ValueError(f"aopc_regions {aopc_l} is more than the {regions} regions")
    run_batch = batch or min(max(points, aopc_l), 256)
    curves = _Curves(model, x_all[0], run_batch)
    fraction = np.array([L.lib.evmap_eval_step_pixels(plane, steps, t) / plane
                         for t in range(points)])
    counts = [L.lib.evmap_eval_step_pixels(plane, steps, t) for t in range(points)]
    tolerance = (pointing_tolerance if pointing_tolerance is not None
                 else int(15.0 * min(h, w) / 224.0 + 0.5))
    err = L.Error()
    per_image = []
    for i in range(n):
        x = np.ascontiguousarray(x_all[i])
        probs = curves.probabilities(x)
        predicted = int(np.argmax(probs))
        cls = int(labels[i]) if explain_label else predicted
        p0 = float(probs[cls])
        filled = np.empty_like(x)
        L.check(L.lib.evmap_eval_fill(_ptr(x), c, h, w, BASELINES[fill], _ptr(filled),
                                      ctypes.byref(err)), err)
        row = {"index": i, "label": None if labels is None else int(labels[i]),
               "predicted": predicted, "class": cls, "probability": p0, "methods": {}}
        for m in methods:
            row["methods"][m] = _one_method(model, m, x, filled, cls, p0, i, curves, counts,
                                            fraction, aopc_k, aopc_l, regions, masks, tolerance,
                                            iou_top, m in sensitivity_methods, sensitivity_radius,
                                            sensitivity_samples, seed, dict(options, batch=batch))
        per_image.append(row)
    keys = ("deletion_auc", "insertion_auc", "aopc", "max_sensitivity", "seconds",
            "pointing_game", "relevance_mass", "relevance_rank", "iou_top")
    summary = {m: {k: _summary([r["methods"][m][k] for r in per_image]) for k in keys}
               for m in methods}
    return {"images": n, "input_size": [w, h], "fraction": fraction.tolist(),
            "methods": summary, "per_image": per_image}


def _one_method(model, method, x, filled, cls, p0, index, curves, counts, fraction, aopc_k,
                aopc_l, regions, masks, tolerance, iou_top, sensitivity, radius, samples, seed,
                options):
    h, w = x.shape[1:]
    result = model.explain(x, method, classes=[cls], seed=seed, progress=False, **options)
    m = np.ascontiguousarray(result.maps[0, 0])
    err = L.Error()
    order = np.empty(h * w, np.int32)
    L.check(L.lib.evmap_eval_pixel_order(_ptr(m), h, w, _iptr(order), ctypes.byref(err)), err)
    deletion = curves.run(x, filled, order, counts, cls)
    insertion = curves.run(filled, x, order, counts, cls)
    ends = np.empty(regions, np.uintp)
    L.check(L.lib.evmap_eval_region_order(_ptr(m), h, w, aopc_k, _iptr(order),
                                          ends.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)),
                                          ctypes.byref(err)), err)
    aopc_curve = curves.run(x, filled, order, ends[:aopc_l], cls)
    out = {"deletion_auc": L.lib.evmap_eval_auc(_dptr(fraction), _dptr(deletion), len(deletion)),
           "insertion_auc": L.lib.evmap_eval_auc(_dptr(fraction), _dptr(insertion),
                                                 len(insertion)),
           "aopc": L.lib.evmap_eval_aopc(p0, _dptr(aopc_curve), aopc_l),
           "max_sensitivity": None, "seconds": result.meta[0]["seconds"],
           "pointing_game": None, "relevance_mass": None, "relevance_rank": None,
           "iou_top": None, "deletion": deletion.tolist(), "insertion": insertion.tolist(),
           "aopc_curve": aopc_curve.tolist()}
    if sensitivity:
        out["max_sensitivity"] = _max_sensitivity(model, method, x, m, cls, index, radius,
                                                  samples, seed, options)
    if masks is not None:
        mask = np.ascontiguousarray(masks[index] != 0, np.uint8)
        loc = L.Localisation()
        L.check(L.lib.evmap_eval_localisation(_ptr(m), mask.ctypes.data_as(
            ctypes.POINTER(ctypes.c_ubyte)), h, w, int(tolerance), float(iou_top),
            ctypes.byref(loc), ctypes.byref(err)), err)
        out.update(pointing_game=loc.pointing, relevance_mass=loc.mass,
                   relevance_rank=loc.rank, iou_top=loc.iou)
    return out


def _max_sensitivity(model, method, x, m, cls, index, radius, samples, seed, options):
    """The largest distance between the L2-normalised map and the maps of
    noisy copies of the image (seeds as the CLI's)."""
    span = float(x.max() - x.min())
    r = np.float32(radius) * np.float32(span)
    worst = -math.inf
    noisy = np.empty_like(x)
    for k in range(samples):
        s = (seed * 1000003 + index * 1009 + k + 1) % (1 << 64)
        L.lib.evmap_eval_uniform_noise(_ptr(x), x.size, float(r), s, _ptr(noisy))
        nm = np.ascontiguousarray(model.explain(noisy, method, classes=[cls], seed=seed,
                                                progress=False, **options).maps[0, 0])
        d = L.lib.evmap_eval_map_distance(_ptr(m), _ptr(nm), m.size)
        worst = d if math.isnan(d) or d > worst else worst
        if math.isnan(d):
            break
    return worst
