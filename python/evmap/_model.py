"""evmap.Model: classify and explain with the C library, numpy in and out."""
import ctypes
import io
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lib as L
from ._sampler import Sampler

PRESETS = {"none": 0, "imagenet": 1, "custom": 2}
LAYOUTS = {"auto": 0, "nchw": 1, "nhwc": 2}
GRADIENT_METHODS = {"saliency": 0, "gradxinput": 1, "ig": 2, "smoothgrad": 3, "gradcam": 4,
                    "guided": 5}
METHODS = ("pda", "efficient", "occlusion") + tuple(GRADIENT_METHODS)
SCORES = {"logodds": 0, "logit": 1}
BASELINES = {"zero": 0, "mean": 1, "blur": 2}
FloatPtr = ctypes.POINTER(ctypes.c_float)


def _ptr(a):
    return a.ctypes.data_as(FloatPtr)


@dataclass
class Explanation:
    """maps: float32 N x T x H x W (T targets per image; NaN where no window
    was evaluated, as in the CLI's NPY files); meta: one dict per image with
    the targets, probabilities and the run's statistics."""
    maps: np.ndarray
    meta: List[Dict[str, Any]] = field(default_factory=list)


class _Progress:
    """The C progress callback: reports to a callable or a tqdm bar, and
    turns Ctrl-C into a cancel request (the C call then returns CANCELLED,
    raised as KeyboardInterrupt)."""

    def __init__(self, progress, what):
        self.report, self.bar, self.what = None, None, what
        if callable(progress):
            self.report = progress
        elif progress is None or progress is True:
            try:
                from tqdm import tqdm
                if progress is True or sys.stderr.isatty():
                    self.bar = tqdm(desc=what, unit="step", leave=False)
            except ImportError:
                pass
        self.fn = L.PROGRESS_FN(self._call)

    def _call(self, user, done, total):
        try:
            if self.report:
                self.report(done, total)
            elif self.bar is not None:
                self.bar.total = total
                self.bar.n = done
                self.bar.refresh()
            return 0
        except KeyboardInterrupt:
            return 1
        except Exception:  # a failing callback stops the work instead of being lost
            return 1

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _onnx_from_module(module, example_input, opset):
    """ONNX bytes of a torch.nn.Module traced on example_input (in memory)."""
    import torch
    if example_input is None:
        raise ValueError("Model(torch.nn.Module) needs example_input: a tensor N x C x H x W of "
                         "the size the model takes")
    buf = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        torch.onnx.export(module, example_input, buf, opset_version=opset, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    finally:
        module.train(was_training)
    return buf.getvalue()


class Model:
    """An image classifier evmap can run and explain.

    source: a path to an ONNX file, the ONNX file's bytes, or a
    torch.nn.Module with example_input (a tensor of the input's shape; the
    module is exported to ONNX in memory). preprocess, mean, std, size:
    as the CLI's --preprocess/--mean/--std/--size, applied to pictures
    (uint8 arrays, PIL images, paths); float32 arrays are taken as model
    input already. threads: 0 for all of this process's CPUs."""

    def __init__(self, source, example_input=None, *, preprocess: str = "none",
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                 size: Optional[Sequence[int]] = None, layout: str = "auto",
                 max_memory: Optional[int] = None, threads: int = 0, opset: int = 13):
        self._handle = ctypes.c_void_p()
        if preprocess not in PRESETS or preprocess == "custom":
            raise ValueError(f"preprocess must be 'none' or 'imagenet', not {preprocess!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        opts = L.LoadOptions(max_memory=L.lib.evmap_default_memory_limit()
                             if max_memory is None else int(max_memory), layout=LAYOUTS[layout])
        err = L.Error()
        if hasattr(source, "state_dict") and hasattr(source, "forward"):
            source = _onnx_from_module(source, example_input, opset)
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            L.check(L.lib.evmap_model_load_memory_with_options(
                data, len(data), ctypes.byref(opts), ctypes.byref(self._handle),
                ctypes.byref(err)), err)
        elif isinstance(source, (str, os.PathLike)):
            L.check(L.lib.evmap_model_load_with_options(
                os.fsencode(source), ctypes.byref(opts), ctypes.byref(self._handle),
                ctypes.byref(err)), err)
        else:
            raise TypeError("Model(source): a path, ONNX bytes or a torch.nn.Module, not "
                            f"{type(source).__name__}")
        self.threads = int(threads)
        self._pre = self._preprocess(preprocess, mean, std, size)
        self._runners = {}

    @staticmethod
    def _preprocess(preset, mean, std, size):
        """As the CLI: --size makes a plain resize (custom); mean/std
        without a preset normalise (custom, size kept)."""
        chosen = "custom" if size is not None or (preset == "none" and (mean or std)) else preset
        base, p = L.Preprocess(), L.Preprocess()
        L.lib.evmap_preprocess_init(ctypes.byref(base), PRESETS[preset])
        L.lib.evmap_preprocess_init(ctypes.byref(p), PRESETS[chosen])
        for c in range(3):
            p.mean[c] = mean[c] if mean else base.mean[c]
            p.std[c] = std[c] if std else base.std[c]
        if chosen == "custom":
            p.width, p.height = (int(size[0]), int(size[1])) if size is not None else (0, 0)
        return p

    # ------------------------------------------------------------ properties

    @property
    def info(self) -> Dict[str, Any]:
        """channels, height, width (free sides: the current size), free
        sides, num_classes, ends_in_softmax, parameters, layout."""
        i, err = L.ModelInfo(), L.Error()
        L.check(L.lib.evmap_model_get_info(self._handle, ctypes.byref(i), ctypes.byref(err)), err)
        return {"channels": i.channels, "height": i.height, "width": i.width,
                "free_height": bool(i.free_height), "free_width": bool(i.free_width),
                "num_classes": i.num_classes, "ends_in_softmax": bool(i.ends_in_softmax),
                "num_parameters": i.num_parameters,
                "layout": {1: "nchw", 2: "nhwc"}.get(i.layout, "auto")}

    @property
    def num_classes(self) -> int:
        return self.info["num_classes"]

    # ----------------------------------------------------------------- input

    def _picture(self, pixels):
        """uint8 H x W or H x W x C (C = 1, 3 or 4) -> preprocessed C x H x W."""
        a = np.asarray(pixels)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
            raise ValueError(f"a picture must be H x W or H x W x C (C = 1, 3 or 4), not "
                             f"shape {a.shape}")
        a = a[:, :, :3] if a.shape[2] == 4 else a
        planes = np.ascontiguousarray(a.transpose(2, 0, 1), np.float32) / np.float32(255)
        img = L.Image(width=a.shape[1], height=a.shape[0], channels=a.shape[2],
                      pixels=_ptr(planes))
        return self._preprocess_image(img)

    def _preprocess_image(self, img):
        info, err = self.info, L.Error()
        w, h = ctypes.c_int(), ctypes.c_int()
        if info["free_height"] or info["free_width"]:
            L.check(L.lib.evmap_preprocess_size(ctypes.byref(img), ctypes.byref(self._pre),
                                                ctypes.byref(w), ctypes.byref(h),
                                                ctypes.byref(err)), err)
            self._set_size(h.value, w.value)
            info = self.info
        out = np.empty((info["channels"], info["height"], info["width"]), np.float32)
        L.check(L.lib.evmap_preprocess_image(ctypes.byref(img), ctypes.byref(self._pre),
                                             info["channels"], info["height"], info["width"],
                                             _ptr(out), ctypes.byref(err)), err)
        return out

    def _file(self, path):
        err, img = L.Error(), ctypes.POINTER(L.Image)()
        L.check(L.lib.evmap_image_load(os.fsencode(path), ctypes.byref(img), ctypes.byref(err)),
                err)
        try:
            return self._preprocess_image(img.contents)
        finally:
            L.lib.evmap_image_free(img)

    def _set_size(self, height, width):
        err = L.Error()
        L.check(L.lib.evmap_model_set_input_size(self._handle, int(height), int(width),
                                                 ctypes.byref(err)), err)

    def prepare(self, images) -> np.ndarray:
        """The model input N x C x H x W (float32) for images: a float32
        array N x C x H x W or C x H x W (taken as model input), uint8
        pictures (H x W x C, or N x H x W x C), PIL images, paths, or a list
        of these; pictures go through the model's preprocessing."""
        if isinstance(images, np.ndarray) and images.dtype != np.uint8:
            x = np.asarray(images, np.float32)
            x = x[None] if x.ndim == 3 else x
            if x.ndim != 4:
                raise ValueError(f"float images must be N x C x H x W or C x H x W, not shape "
                                 f"{x.shape}")
            info = self.info
            if (info["free_height"] or info["free_width"]) and x.shape[2:] != (
                    info["height"], info["width"]):
                self._set_size(x.shape[2], x.shape[3])
                info = self.info
            want = (info["channels"], info["height"], info["width"])
            if x.shape[1:] != want:
                raise ValueError(f"images of shape {x.shape[1:]} do not fit the model's input "
                                 f"{want} (C x H x W)")
            return np.ascontiguousarray(x)
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, (list, tuple)):
            images = [images]
        out = []
        for item in images:
            if isinstance(item, (str, os.PathLike)):
                out.append(self._file(item))
            elif isinstance(item, np.ndarray) and item.dtype != np.uint8:
                out.append(self.prepare(item)[0])
            else:
                out.append(self._picture(np.asarray(item)))
        if len({x.shape for x in out}) > 1:
            raise ValueError("images of different sizes in one call; explain or classify them "
                             "one size at a time")
        return np.stack(out)

    # -------------------------------------------------------------- classify

    def classify(self, images, batch: int = 16) -> np.ndarray:
        """Class probabilities, N x K (softmax applied when the graph ends
        in logits)."""
        x = self.prepare(images)
        n, k = x.shape[0], self.num_classes
        batch = max(1, min(int(batch), n))
        runner = self._runner(batch, x.shape[2:])
        probs = np.empty((n, k), np.float32)
        err = L.Error()
        for first in range(0, n, batch):
            count = min(batch, n - first)
            chunk = np.ascontiguousarray(x[first:first + count])
            L.check(L.lib.evmap_runner_classify(runner, _ptr(chunk), count,
                                                _ptr(probs[first:first + count]),
                                                ctypes.byref(err)), err)
        return probs

    def _runner(self, batch, hw):
        key = (batch, tuple(hw))
        if key not in self._runners:
            err, r = L.Error(), ctypes.c_void_p()
            L.check(L.lib.evmap_runner_create(self._handle, batch, self.threads, ctypes.byref(r),
                                              ctypes.byref(err)), err)
            self._runners[key] = r
        return self._runners[key]

    # --------------------------------------------------------------- explain

    def explain(self, images, method: str = "pda", classes: Optional[Sequence[int]] = None,
                top: int = 1, *, sampler: Optional[Sampler] = None, window: Optional[int] = None,
                samples: int = 10, stride: int = 1, seed: int = 0,
                roi: Optional[Sequence[int]] = None, split: Optional[str] = None,
                grid: int = 0, grid_threshold: Optional[float] = None, expand: str = "window",
                no_locality: bool = False, laplace_n: float = 100000.0, score: str = "logodds",
                steps: int = 50, baseline: str = "zero", noise: float = 0.15,
                smoothgrad_samples: int = 50, layer: Optional[str] = None,
                occlusion_fill: Union[str, float] = "zero", batch: int = 0,
                target: Optional[str] = None, refine: float = 1.0,
                coarse_sampler: Optional[Sampler] = None,
                progress: Union[None, bool, Callable[[int, int], Any]] = None) -> Explanation:
        """Evidence maps of `method` (pda, efficient, occlusion, saliency,
        gradxinput, ig, smoothgrad, gradcam, guided) for the given classes
        (default: each image's `top` most likely), with the CLI's options as
        keywords (docs/python.md). pda and efficient need a sampler
        (fit_sampler or Sampler.load). target="LAYER:CH" explains channel CH
        of a layer's output (its mean activation) instead of a class."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; evmap has {', '.join(METHODS)}")
        unit_layer, unit_channel = None, -1
        if target is not None:
            unit_layer, _, ch = str(target).rpartition(":")
            if not unit_layer or not ch.isdigit():
                raise ValueError(f"target must be 'LAYER:CHANNEL', not {target!r}")
            unit_channel = int(ch)
        x = self.prepare(images)
        probs = self.classify(x)
        n, (_, h, w) = x.shape[0], x.shape[1:]
        targets = []
        for i in range(n):
            if unit_layer is not None:
                targets.append([0])  # one map; the class is not used (as the CLI passes it)
            elif classes is not None:
                targets.append([int(c) for c in classes])
            else:
                targets.append([int(c) for c in np.argsort(-probs[i], kind="stable")[:top]])
        t = len(targets[0])
        for c in targets[0]:
            if not 0 <= c < self.num_classes:
                raise ValueError(f"class {c} is out of range: the model has classes 0 to "
                                 f"{self.num_classes - 1}")
        maps = np.empty((n, t, h, w), np.float32)
        result = Explanation(maps)
        opts = dict(sampler=sampler, window=window, samples=samples, stride=stride, seed=seed,
                    roi=roi, split=split, grid=grid, grid_threshold=grid_threshold,
                    expand=expand, no_locality=no_locality, laplace_n=laplace_n, score=score,
                    steps=steps, baseline=baseline, noise=noise,
                    smoothgrad_samples=smoothgrad_samples, layer=layer,
                    occlusion_fill=occlusion_fill, batch=batch, layer_target=unit_layer,
                    channel_target=unit_channel, refine=refine, coarse_sampler=coarse_sampler)
        for i in range(n):
            stats = self._explain_one(method, np.ascontiguousarray(x[i]), targets[i], maps[i],
                                      progress, opts)
            result.meta.append({"method": method, "classes": targets[i],
                                "probs": probs[i].tolist(), "input_size": [w, h], **stats})
        return result

    def _explain_one(self, method, x, targets, out, progress, o):
        classes = (ctypes.c_int * len(targets))(*targets)
        unit = o["layer_target"].encode() if o["layer_target"] else None
        stats, err = L.Stats(), L.Error()
        prog = _Progress(progress, method)
        try:
            if method in GRADIENT_METHODS:
                g = L.GradientOptions()
                L.lib.evmap_gradient_options_init(ctypes.byref(g))
                g.method, g.score = GRADIENT_METHODS[method], SCORES[o["score"]]
                g.classes, g.n_classes = classes, len(targets)
                g.target_layer, g.target_channel = unit, o["channel_target"]
                g.steps, g.baseline = int(o["steps"]), BASELINES[o["baseline"]]
                g.noise, g.samples = float(o["noise"]), int(o["smoothgrad_samples"])
                g.seed = int(o["seed"])
                g.layer = o["layer"].encode() if o["layer"] else None
                if o["batch"]:
                    g.batch = int(o["batch"])
                g.threads, g.progress = self.threads, prog.fn
                status = L.lib.evmap_gradient_map(self._handle, _ptr(x), ctypes.byref(g),
                                                  _ptr(out), ctypes.byref(stats),
                                                  ctypes.byref(err))
                L.check(status, err)
            else:
                self._perturb(method, x, classes, len(targets), out, stats, prog, o)
        finally:
            prog.close()
        return {"forward_passes": stats.forward_images, "backward_passes": stats.backward_images,
                "windows": stats.windows, "seconds": stats.seconds,
                "locality": bool(stats.locality), "layer": stats.layer.decode()}

    def _perturb(self, method, x, classes, n_classes, out, stats, prog, o):
        sampler, samples, own = o["sampler"], int(o["samples"]), None
        if method == "occlusion":
            fill = o["occlusion_fill"]
            values = (x.reshape(x.shape[0], -1).mean(axis=1, dtype=np.float64)
                      if fill == "mean" else np.zeros(x.shape[0]) if fill == "zero"
                      else np.full(x.shape[0], float(fill)))
            k = o["window"] or L.lib.evmap_pda_default_window(x.shape[1], x.shape[2])
            own = sampler = Sampler.constant(values.astype(np.float32), k)
            samples = 1
        elif sampler is None:
            raise ValueError(f"{method} needs a fitted sampler: sampler=fit_sampler(...) or "
                             "Sampler.load(path) (a file from `evmap fit-sampler`)")
        elif o["window"] and o["window"] != sampler.window:
            raise ValueError(f"the sampler was fitted for window {sampler.window}, not "
                             f"{o['window']}")
        p = L.PdaOptions()
        L.lib.evmap_pda_options_init(ctypes.byref(p))
        p.sampler, p.samples, p.stride = sampler._handle, samples, int(o["stride"])
        p.laplace_n, p.classes, p.n_classes = float(o["laplace_n"]), classes, n_classes
        if o["layer_target"]:
            p.target_layer, p.target_channel = o["layer_target"].encode(), o["channel_target"]
        if o["roi"] is not None:
            p.roi[:] = [int(v) for v in o["roi"]]
        p.seed, p.threads, p.no_locality = int(o["seed"]), self.threads, int(o["no_locality"])
        if o["batch"]:
            p.batch = int(o["batch"])
        p.progress = prog.fn
        err = L.Error()
        try:
            if method == "efficient":
                e = L.EfficientOptions()
                L.lib.evmap_efficient_options_init(ctypes.byref(e))
                e.pda = p
                e.split = o["split"].encode() if o["split"] else None
                e.grid = int(o["grid"])
                e.grid_threshold = -1.0 if o["grid_threshold"] is None else float(
                    o["grid_threshold"])
                e.around_image = int(o["expand"] == "image")
                e.refine = float(o["refine"])
                if o["coarse_sampler"] is not None:
                    e.coarse_sampler = o["coarse_sampler"]._handle
                status = L.lib.evmap_efficient(self._handle, _ptr(x), ctypes.byref(e), _ptr(out),
                                               ctypes.byref(stats), ctypes.byref(err))
            else:
                status = L.lib.evmap_pda(self._handle, _ptr(x), ctypes.byref(p), _ptr(out),
                                         ctypes.byref(stats), ctypes.byref(err))
            L.check(status, err)
        finally:
            if own is not None:
                own.close()

    # -------------------------------------------------------------- evaluate

    def evaluate(self, images, methods, **options) -> Dict[str, Any]:
        """The CLI's `evmap evaluate` for images: per image and method the
        deletion and insertion curves and AUCs, AOPC, max-sensitivity,
        seconds and, with masks (N x H x W, non-zero = object), the
        localisation metrics; and their means with standard errors. Options:
        labels, explain_label, steps (50), fill ("blur"), aopc_window,
        aopc_regions, sensitivity_radius (0.02), sensitivity_samples (10),
        sensitivity_methods, masks, pointing_tolerance, iou_top (0.1),
        batch, seed, and explain()'s options for the methods. The returned
        dict has the keys of the CLI's evaluate.json it shares: images,
        input_size, fraction, methods (summaries), per_image."""
        from ._evaluate import evaluate
        return evaluate(self, images, methods, **options)

    # --------------------------------------------------------------- cleanup

    def close(self):
        for r in self._runners.values():
            L.lib.evmap_runner_free(r)
        self._runners = {}
        if self._handle:
            L.lib.evmap_model_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
