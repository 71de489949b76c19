"""ctypes declarations of libevmap (include/evmap.h) and error mapping."""
import ctypes
import ctypes.util
import os

c_int, c_float, c_double, c_size_t = ctypes.c_int, ctypes.c_float, ctypes.c_double, ctypes.c_size_t
c_uint64, c_char_p, c_void_p = ctypes.c_uint64, ctypes.c_char_p, ctypes.c_void_p
POINTER = ctypes.POINTER

STATUS = ["OK", "INVALID_ARGUMENT", "IO", "BAD_FILE", "UNSUPPORTED", "TOO_LARGE",
          "OUT_OF_MEMORY", "CANCELLED", "INTERNAL"]
PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_size_t, c_size_t)


class Error(ctypes.Structure):
    _fields_ = [("status", c_int), ("message", ctypes.c_char * 512)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("channels", c_int), ("height", c_int), ("width", c_int),
                ("free_height", c_int), ("free_width", c_int), ("num_classes", c_int),
                ("ends_in_softmax", c_int), ("num_nodes", c_size_t),
                ("num_parameters", c_size_t), ("layout", c_int)]


class LoadOptions(ctypes.Structure):
    _fields_ = [("max_memory", c_uint64), ("layout", c_int)]


class Image(ctypes.Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("channels", c_int),
                ("pixels", POINTER(c_float))]


class Preprocess(ctypes.Structure):
    _fields_ = [("preset", c_int), ("mean", c_float * 3), ("std", c_float * 3),
                ("width", c_int), ("height", c_int)]


class SamplerFitOptions(ctypes.Structure):
    _fields_ = [("window", c_int), ("pad", c_int), ("joint_channels", c_int),
                ("patches", c_size_t), ("seed", c_uint64)]


class PdaOptions(ctypes.Structure):
    _fields_ = [("stride", c_int), ("samples", c_int), ("sampler", c_void_p),
                ("laplace_n", c_double), ("classes", POINTER(c_int)), ("n_classes", c_int),
                ("target_layer", c_char_p), ("target_channel", c_int), ("roi", c_int * 4),
                ("seed", c_uint64), ("batch", c_int), ("threads", c_int),
                ("progress", PROGRESS_FN), ("progress_user", c_void_p), ("no_locality", c_int)]


class EfficientOptions(ctypes.Structure):
    _fields_ = [("pda", PdaOptions), ("split", c_char_p), ("refine", c_double),
                ("coarse_sampler", c_void_p), ("around_image", c_int), ("grid", c_int),
                ("grid_threshold", c_double)]


class GradientOptions(ctypes.Structure):
    _fields_ = [("method", c_int), ("score", c_int), ("classes", POINTER(c_int)),
                ("n_classes", c_int), ("target_layer", c_char_p), ("target_channel", c_int),
                ("steps", c_int), ("baseline", c_int), ("noise", c_float), ("samples", c_int),
                ("seed", c_uint64), ("layer", c_char_p), ("batch", c_int), ("threads", c_int),
                ("progress", PROGRESS_FN), ("progress_user", c_void_p)]


class Stats(ctypes.Structure):
    _fields_ = [("windows", c_size_t), ("forward_images", c_size_t), ("seconds", c_double),
                ("locality", c_int), ("macs", c_double), ("macs_naive", c_double),
                ("cache_bytes", c_size_t), ("local_steps", c_int), ("total_steps", c_int),
                ("backward_images", c_size_t), ("layer", ctypes.c_char * 256),
                ("coarse_windows", c_size_t), ("grid_positions", c_size_t),
                ("grid_levels", c_int), ("local_engines", c_int)]


def _find_library():
    """EVMAP_LIBRARY, the path `make install` recorded, the source tree's
    build/, then the system's library path."""
    env = os.environ.get("EVMAP_LIBRARY")
    if env:
        return env
    try:
        from ._installed import LIBRARY
        if os.path.exists(LIBRARY):
            return LIBRARY
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "build", "libevmap.so")
    if os.path.exists(built):
        return built
    found = ctypes.util.find_library("evmap")
    if found:
        return found
    raise ImportError("evmap: cannot find libevmap.so; run `make install`, or set EVMAP_LIBRARY "
                      "to its path")


lib = ctypes.CDLL(_find_library())  # CDLL releases the GIL during every call

class Localisation(ctypes.Structure):
    _fields_ = [("pointing", c_double), ("mass", c_double), ("rank", c_double), ("iou", c_double),
                ("area", c_double), ("pointing_uniform", c_double), ("iou_uniform", c_double)]


IntPtr, FloatPtr, DoublePtr = POINTER(c_int), POINTER(c_float), POINTER(c_double)

_SIGNATURES = {
    "evmap_eval_pixel_order": (c_int, [FloatPtr, c_int, c_int, IntPtr, POINTER(Error)]),
    "evmap_eval_step_pixels": (c_size_t, [c_size_t, c_int, c_int]),
    "evmap_eval_replace": (None, [FloatPtr, FloatPtr, c_int, c_int, c_int, IntPtr, c_size_t,
                                  FloatPtr]),
    "evmap_eval_auc": (c_double, [DoublePtr, DoublePtr, c_int]),
    "evmap_eval_region_count": (c_int, [c_int, c_int, c_int]),
    "evmap_eval_region_order": (c_int, [FloatPtr, c_int, c_int, c_int, IntPtr,
                                        POINTER(c_size_t), POINTER(Error)]),
    "evmap_eval_aopc": (c_double, [c_double, DoublePtr, c_int]),
    "evmap_eval_fill": (c_int, [FloatPtr, c_int, c_int, c_int, c_int, FloatPtr, POINTER(Error)]),
    "evmap_eval_uniform_noise": (None, [FloatPtr, c_size_t, c_float, c_uint64, FloatPtr]),
    "evmap_eval_map_distance": (c_double, [FloatPtr, FloatPtr, c_size_t]),
    "evmap_eval_localisation": (c_int, [FloatPtr, POINTER(ctypes.c_ubyte), c_int, c_int, c_int,
                                        c_double, POINTER(Localisation), POINTER(Error)]),
    "evmap_model_load_with_options": (c_int, [c_char_p, POINTER(LoadOptions), POINTER(c_void_p),
                                              POINTER(Error)]),
    "evmap_model_load_memory_with_options": (c_int, [c_void_p, c_size_t, POINTER(LoadOptions),
                                                     POINTER(c_void_p), POINTER(Error)]),
    "evmap_model_free": (None, [c_void_p]),
    "evmap_model_get_info": (c_int, [c_void_p, POINTER(ModelInfo), POINTER(Error)]),
    "evmap_model_set_input_size": (c_int, [c_void_p, c_int, c_int, POINTER(Error)]),
    "evmap_default_memory_limit": (c_uint64, []),
    "evmap_runner_create": (c_int, [c_void_p, c_int, c_int, POINTER(c_void_p), POINTER(Error)]),
    "evmap_runner_free": (None, [c_void_p]),
    "evmap_runner_classify": (c_int, [c_void_p, POINTER(c_float), c_int, POINTER(c_float),
                                      POINTER(Error)]),
    "evmap_image_load": (c_int, [c_char_p, POINTER(POINTER(Image)), POINTER(Error)]),
    "evmap_image_free": (None, [POINTER(Image)]),
    "evmap_preprocess_init": (None, [POINTER(Preprocess), c_int]),
    "evmap_preprocess_image": (c_int, [POINTER(Image), POINTER(Preprocess), c_int, c_int, c_int,
                                       POINTER(c_float), POINTER(Error)]),
    "evmap_preprocess_size": (c_int, [POINTER(Image), POINTER(Preprocess), POINTER(c_int),
                                      POINTER(c_int), POINTER(Error)]),
    "evmap_sampler_fit_options_init": (None, [POINTER(SamplerFitOptions)]),
    "evmap_sampler_fit": (c_int, [POINTER(c_float), c_size_t, c_int, c_int, c_int,
                                  POINTER(SamplerFitOptions), POINTER(c_void_p), POINTER(Error)]),
    "evmap_sampler_marginal": (c_int, [POINTER(c_float), c_size_t, c_int, c_int, c_int, c_int,
                                       POINTER(c_void_p), POINTER(Error)]),
    "evmap_sampler_constant": (c_int, [POINTER(c_float), c_int, c_int, POINTER(c_void_p),
                                       POINTER(Error)]),
    "evmap_sampler_save": (c_int, [c_void_p, c_char_p, c_char_p, POINTER(Error)]),
    "evmap_sampler_load": (c_int, [c_char_p, POINTER(c_void_p), c_char_p, c_size_t,
                                   POINTER(Error)]),
    "evmap_sampler_free": (None, [c_void_p]),
    "evmap_sampler_window": (c_int, [c_void_p]),
    "evmap_sampler_pad": (c_int, [c_void_p]),
    "evmap_sampler_kind_name": (c_char_p, [c_void_p]),
    "evmap_pda_default_window": (c_int, [c_int, c_int]),
    "evmap_pda_options_init": (None, [POINTER(PdaOptions)]),
    "evmap_pda": (c_int, [c_void_p, POINTER(c_float), POINTER(PdaOptions), POINTER(c_float),
                          POINTER(Stats), POINTER(Error)]),
    "evmap_efficient_options_init": (None, [POINTER(EfficientOptions)]),
    "evmap_efficient": (c_int, [c_void_p, POINTER(c_float), POINTER(EfficientOptions),
                                POINTER(c_float), POINTER(Stats), POINTER(Error)]),
    "evmap_gradient_options_init": (None, [POINTER(GradientOptions)]),
    "evmap_gradient_map": (c_int, [c_void_p, POINTER(c_float), POINTER(GradientOptions),
                                   POINTER(c_float), POINTER(Stats), POINTER(Error)]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args


class EvmapError(Exception):
    """An error evmap reported; .status names its kind (e.g. "UNSUPPORTED")."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class EvmapValueError(EvmapError, ValueError):
    """Bad input: a bad value, file or size (evmap's exit code 2)."""


class EvmapMemoryError(EvmapError, MemoryError):
    """Memory: --max-memory's limit or an allocation."""


class EvmapIOError(EvmapError, OSError):
    """A file that could not be opened or read."""


def check(status, err):
    """Raises the exception for a failed call (status != 0)."""
    if status == 0:
        return
    name = STATUS[status] if 0 <= status < len(STATUS) else str(status)
    message = err.message.decode("utf-8", "replace")
    if name == "CANCELLED":
        raise KeyboardInterrupt(message)
    if name in ("OUT_OF_MEMORY", "TOO_LARGE"):
        raise EvmapMemoryError(message, name)
    if name == "IO":
        raise EvmapIOError(message, name)
    if name == "INTERNAL":
        raise EvmapError(message, name)
    raise EvmapValueError(message, name)
