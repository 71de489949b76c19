"""Samplers: what replaces a window when PDA marginalises it out."""
import ctypes
import os

import numpy as np

from . import _lib as L


class Sampler:
    """A sampler (conditional, marginal or constant) owned by Python.

    Make one with fit_sampler(), Sampler.load() or Sampler.constant(); pass
    it to Model.explain(sampler=...); save it with .save(path) (the same
    file format as `evmap fit-sampler`)."""

    def __init__(self, handle, tag=""):
        self._handle = ctypes.c_void_p(handle)
        self.tag = tag

    @property
    def window(self) -> int:
        return L.lib.evmap_sampler_window(self._handle)

    @property
    def pad(self) -> int:
        return L.lib.evmap_sampler_pad(self._handle)

    @property
    def kind(self) -> str:
        return L.lib.evmap_sampler_kind_name(self._handle).decode()

    def save(self, path, tag=None):
        err = L.Error()
        L.check(L.lib.evmap_sampler_save(self._handle, (tag or self.tag).encode(),
                                         os.fsencode(path), ctypes.byref(err)), err)

    @classmethod
    def load(cls, path):
        err, handle = L.Error(), ctypes.c_void_p()
        tag = ctypes.create_string_buffer(256)
        L.check(L.lib.evmap_sampler_load(os.fsencode(path), ctypes.byref(handle), tag, 256,
                                         ctypes.byref(err)), err)
        return cls(handle.value, tag.value.decode())

    @classmethod
    def constant(cls, fill, window):
        """One fill value per channel (a sequence of 1 or 3 floats), one draw."""
        fill = np.ascontiguousarray(np.atleast_1d(np.asarray(fill, np.float32)))
        err, handle = L.Error(), ctypes.c_void_p()
        L.check(L.lib.evmap_sampler_constant(fill.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                             len(fill), int(window), ctypes.byref(handle),
                                             ctypes.byref(err)), err)
        return cls(handle.value, "")

    @classmethod
    def marginal(cls, images, window):
        """Draw s takes the window from reference image s (a float32 array
        N x C x H x W in model-input units, of the explained images' size)."""
        x = np.ascontiguousarray(np.asarray(images, np.float32))
        if x.ndim != 4:
            raise ValueError(f"Sampler.marginal: images must be N x C x H x W, not {x.shape}")
        err, handle = L.Error(), ctypes.c_void_p()
        L.check(L.lib.evmap_sampler_marginal(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                             x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                                             int(window), ctypes.byref(handle),
                                             ctypes.byref(err)), err)
        return cls(handle.value, "")

    def close(self):
        if self._handle:
            L.lib.evmap_sampler_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self):
        self.close()


def fit_sampler(images, window, pad=2, *, joint_channels=False, patches=20000, seed=0,
                tag="") -> Sampler:
    """Fits the conditional Gaussian sampler (DESIGN.md 1.1) on reference
    images: a float32 array N x C x H x W in model-input units (see
    Model.prepare to turn pictures into that)."""
    x = np.ascontiguousarray(np.asarray(images, np.float32))
    if x.ndim != 4:
        raise ValueError(f"fit_sampler: images must be N x C x H x W, not shape {x.shape}")
    o = L.SamplerFitOptions()
    L.lib.evmap_sampler_fit_options_init(ctypes.byref(o))
    o.window, o.pad, o.joint_channels = int(window), int(pad), int(bool(joint_channels))
    o.patches, o.seed = int(patches), int(seed)
    err, handle = L.Error(), ctypes.c_void_p()
    L.check(L.lib.evmap_sampler_fit(x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), x.shape[0],
                                    x.shape[1], x.shape[2], x.shape[3], ctypes.byref(o),
                                    ctypes.byref(handle), ctypes.byref(err)), err)
    return Sampler(handle.value, tag)
