"""evmap in Python: evidence maps of CNN image classifiers (docs/python.md).

    import evmap
    model = evmap.Model("models/fashion_cnn.onnx")
    probs = model.classify("data/demo/9_ankle_boot.png")
    result = model.explain("data/demo/9_ankle_boot.png", method="saliency")
    result.maps   # float32 N x T x H x W
"""
from ._lib import EvmapError, EvmapIOError, EvmapMemoryError, EvmapValueError
from ._model import METHODS, Explanation, Model
from ._sampler import Sampler, fit_sampler

__all__ = ["Model", "Explanation", "Sampler", "fit_sampler", "METHODS", "EvmapError",
           "EvmapValueError", "EvmapMemoryError", "EvmapIOError"]
