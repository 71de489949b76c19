"""Float64 gradient references that take evmap's decisions at every kink.

A ReLU network's gradient jumps where a Relu or Clip input crosses its bound
or two MaxPool inputs trade places. Where the float32 forward puts such an
input within rounding of the kink (a pre-activation within an ulp of 0, a
MaxPool window of equal values on a flat background), which side it lands on
depends on the order of the arithmetic: on the CPU's BLAS kernels, the batch
size, the convolution algorithm. Both sides are correct subgradients; an
exact reference must take the side evmap took.

FollowEvmapKinks patches PyTorch's functional kinked operators (and the few
kinked ones PyTorch calls outside torch.nn.functional: torch.amax and
Tensor.amax) so that a float64 PyTorch model takes its decisions from evmap's
float32 forward activations (dumped by build/tests/grad_model): everywhere
else nothing changes. The kinked operators and their rules come from evmap's operator
table (`grad_model --kinks`): an operator evmap adds with a kink and no
handler here, a kinked node in a model that no patched call consumed, or a
patched call with no node left fail loudly instead of passing unconstrained.
"""
import subprocess

import numpy as np
import torch
import torch.nn.functional as F


def evmap_kinked_ops(grad_model):
    """{ONNX op_type: rule} from evmap's operator table."""
    r = subprocess.run([grad_model, "--kinks"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"grad_model --kinks: {r.stderr.strip()}")
    return dict(line.split() for line in r.stdout.splitlines())


# Operators whose decision needs every input (which one is the max), not
# only the first: their nodes give one (op_type, input) entry per input.
ALL_INPUTS = ("Max", "Min")


def kinked_nodes(onnx_path, kinked):
    """(op_type, input name) of every node of a kinked operator, in graph order
    (the order PyTorch called them in when it exported the model); for
    ALL_INPUTS operators one entry per input, in input order."""
    import onnx
    return [(n.op_type, name) for n in onnx.load(onnx_path).graph.node if n.op_type in kinked
            for name in (n.input if n.op_type in ALL_INPUTS else n.input[:1])]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def first_max_indices(ref, out_hw, kernel_size, stride, padding, dilation):
    """Flat plane index of each window's first maximum in row-major window
    order (evmap's MaxPool rule, ties included), from values ref (N,C,H,W)."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride else kernel_size)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    n, c, h, w = ref.shape
    oh, ow = out_hw
    best = torch.full((n, c, oh, ow), -float("inf"), dtype=ref.dtype)
    idx = torch.full((n, c, oh, ow), -1, dtype=torch.long)
    oy, ox = torch.arange(oh) * sh - ph, torch.arange(ow) * sw - pw
    for ky in range(kh):
        y = oy + ky * dh
        yc = y.clamp(0, h - 1)
        for kx in range(kw):
            x = ox + kx * dw
            xc = x.clamp(0, w - 1)
            valid = ((y >= 0) & (y < h))[:, None] & ((x >= 0) & (x < w))[None, :]
            v = ref[:, :, yc][:, :, :, xc]
            v = torch.where(valid, v, torch.tensor(-float("inf"), dtype=ref.dtype))
            take = v > best
            best = torch.where(take, v, best)
            flat = (yc[:, None] * w + xc[None, :]).expand(n, c, oh, ow)
            idx = torch.where(take, flat, idx)
    if (idx < 0).any():
        raise RuntimeError("a MaxPool window without a finite input")
    return idx


class RoutedMaxPool(torch.autograd.Function):
    """Max pooling whose winners are given: forward gathers them, backward
    sends the gradient to them."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return x.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        gx = torch.zeros(ctx.shape, dtype=g.dtype).flatten(2)
        gx.scatter_add_(2, idx.flatten(2), g.flatten(2))
        return gx.view(ctx.shape), None


class GuidedMask(torch.autograd.Function):
    """x * mask forward; backward passes only positive gradients where the
    mask is set (guided backpropagation's ReLU)."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g.clamp(min=0) * mask, None


HARD_ALPHA, HARD_BETA = np.float32(1 / 6), np.float32(0.5)  # PyTorch's, as exported


def hard_pieces(ref):
    """evmap's v = alpha * x + beta of HardSigmoid/HardSwish (rule "hard"),
    rounded as evmap rounds it: in float32, the product first."""
    r = np.asarray(ref.detach().numpy(), dtype=np.float32)
    v = (HARD_ALPHA * r) + HARD_BETA
    v = torch.from_numpy(v.astype(np.float64))
    return v < 0, v > 1  # below, above; the middle piece holds both bounds


def first_max_along(x, ref, dim, keepdim):
    """x reduced by its maximum over dim (None or () for all), the winner of
    each group being its first maximum of ref in row-major order (evmap's
    ReduceMax rule): forward takes x there, backward sends the gradient
    there."""
    n = x.dim()
    dims = range(n) if dim is None or dim == () or dim == [] else \
        ([dim] if isinstance(dim, int) else list(dim))
    dims = sorted(d % n for d in dims)
    kept = [d for d in range(n) if d not in dims]
    perm = kept + dims
    kept_shape = [x.shape[d] for d in kept]
    xr = x.permute(perm).reshape(*kept_shape, -1)
    idx = ref.permute(perm).reshape(*kept_shape, -1).argmax(-1, keepdim=True)  # first maximum
    out = xr.gather(-1, idx).squeeze(-1)
    if keepdim:
        out = out.reshape([1 if d in dims else x.shape[d] for d in range(n)])
    return out


class FollowEvmapKinks:
    """While active, PyTorch's functional kinked operators take evmap's
    decisions. decisions: {op_type: [evmap's float32 input of each node of
    that type, in graph order]} (from kinked_nodes + grad_model --dump).
    guided: Relu backward passes only positive gradients (guided backprop).
    outputs: every patched Relu's output, in call order (for Grad-CAM)."""

    # op_type -> (rule evmap must declare for it, functions patched: names in
    # torch.nn.functional, or "torch.NAME" / "Tensor.NAME")
    HANDLED = {
        "Relu": ("sign", ("relu",)),
        "LeakyRelu": ("sign", ("leaky_relu",)),
        "Clip": ("bounds", ("hardtanh", "relu6")),
        "MaxPool": ("argmax", ("max_pool2d",)),
        "GlobalMaxPool": ("argmax", ("adaptive_max_pool2d",)),
        "PRelu": ("sign", ("prelu",)),
        "Elu": ("sign", ("elu",)),
        "Selu": ("sign", ("selu",)),
        # hardswish before opset 14 exports as HardSigmoid and Mul
        "HardSigmoid": ("hard", ("hardsigmoid", "hardswish")),
        "HardSwish": ("hard", ("hardswish",)),
        # torch.max(x, dim) (ReduceMax and ArgMax) is not followed: its
        # ReduceMax node is left over and fails loudly
        "ReduceMax": ("argmax", ("torch.amax", "Tensor.amax")),
        # torch.min(x, dim) is not followed either (ReduceMin and ArgMin)
        "ReduceMin": ("argmin", ("torch.amin", "Tensor.amin")),
        # torch.norm(x, p=1) (Tensor.norm calls it); other norms pass through
        "ReduceL1": ("signum", ("torch.norm",)),
        # PyTorch exports no ThresholdedRelu node (F.threshold becomes Relu
        # or is refused), so no call follows one: a model with one fails
        # loudly ("kinked nodes no PyTorch call followed")
        "ThresholdedRelu": ("threshold", ()),
        "Abs": ("signum", ("torch.abs",)),
        "Max": ("select", ("torch.maximum", "torch.max")),
        "Min": ("select", ("torch.minimum", "torch.min")),
    }

    @classmethod
    def missing_handlers(cls, kinked):
        """Kinked operators of evmap that this reference cannot follow (or
        whose rule changed): must be empty."""
        return sorted(op for op, rule in kinked.items()
                      if op not in cls.HANDLED or cls.HANDLED[op][0] != rule)

    def __init__(self, decisions, guided=False):
        unknown = [op for op in decisions if op not in self.HANDLED]
        if unknown:
            raise RuntimeError(f"no kink handler for {unknown}")
        self.decisions = {op: list(v) for op, v in decisions.items()}
        self.guided, self.outputs = guided, []

    def _next(self, op, shape, dtype):
        queue = self.decisions.get(op)
        if not queue:
            raise RuntimeError(f"PyTorch called a {op} that evmap's graph does not have")
        return torch.tensor(queue.pop(0), dtype=dtype).view(shape)

    @staticmethod
    def _owner(name):
        """(object holding a patched function, attribute name)."""
        if name.startswith("torch."):
            return torch, name[6:]
        if name.startswith("Tensor."):
            return torch.Tensor, name[7:]
        return F, name

    def __enter__(self):
        names = sorted({f for _, fs in self.HANDLED.values() for f in fs})
        # Tensor methods live on its C base class: absent from its own
        # __dict__, and deleted again on exit rather than copied in
        self.saved = {f: vars(o).get(a) if o is torch.Tensor else getattr(o, a)
                      for f in names for o, a in [self._owner(f)]}
        orig = {f: getattr(*self._owner(f)) for f in names}

        def relu(x, inplace=False):
            mask = (self._next("Relu", x.shape, x.dtype) > 0).to(x.dtype)
            y = GuidedMask.apply(x, mask) if self.guided else x * mask
            if y.requires_grad:
                y.retain_grad()
            self.outputs.append(y)
            return y

        def leaky_relu(x, negative_slope=0.01, inplace=False):
            ref = self._next("LeakyRelu", x.shape, x.dtype)
            return x * torch.where(ref > 0, torch.ones_like(x), torch.full_like(x, negative_slope))

        def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
            ref = self._next("Clip", x.shape, x.dtype)
            inside = (ref >= min_val) & (ref <= max_val)
            # the bound's value outside, x itself (slope 1) inside
            bound = torch.where(ref < min_val, torch.full_like(x, min_val),
                                torch.full_like(x, max_val))
            return torch.where(inside, x, bound)

        def relu6(x, inplace=False):
            return hardtanh(x, 0.0, 6.0)

        def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
            ref = self._next("MaxPool", x.shape, x.dtype)
            out = orig["max_pool2d"](ref, kernel_size, stride, padding, dilation,
                                     ceil_mode=ceil_mode)
            idx = first_max_indices(ref, out.shape[2:], kernel_size, stride, padding, dilation)
            return RoutedMaxPool.apply(x, idx)

        def adaptive_max_pool2d(x, output_size, return_indices=False):
            if _pair(output_size) != (1, 1):
                raise RuntimeError("only global max pooling is followed")
            ref = self._next("GlobalMaxPool", x.shape, x.dtype)
            idx = ref.flatten(2).argmax(2)[:, :, None, None]  # first maximum
            return RoutedMaxPool.apply(x, idx)

        def prelu(x, weight):
            ref = self._next("PRelu", x.shape, x.dtype)
            if weight.numel() > 1 and x.dim() >= 2:  # one slope per channel
                weight = weight.view(1, -1, *([1] * (x.dim() - 2)))
            return x * torch.where(ref > 0, torch.ones_like(x), weight.expand_as(x))

        def elu(x, alpha=1.0, inplace=False):
            ref = self._next("Elu", x.shape, x.dtype)
            return torch.where(ref > 0, x, alpha * torch.expm1(x))

        def selu(x, inplace=False):
            ref = self._next("Selu", x.shape, x.dtype)
            alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
            return scale * torch.where(ref > 0, x, alpha * torch.expm1(x))

        def hard(op, x):
            below, above = hard_pieces(self._next(op, x.shape, x.dtype))
            return torch.where(below, torch.zeros_like(x),
                               torch.where(above, torch.ones_like(x), x / 6 + 0.5))

        def hardsigmoid(x, inplace=False):
            return hard("HardSigmoid", x)

        def hardswish(x, inplace=False):
            if self.decisions.get("HardSwish"):
                return x * hard("HardSwish", x)
            return x * hard("HardSigmoid", x)  # exported as HardSigmoid and Mul

        def amax(x, dim=(), keepdim=False):
            ref = self._next("ReduceMax", x.shape, x.dtype)
            return first_max_along(x, ref, dim, keepdim)

        def amin(x, dim=(), keepdim=False):
            ref = self._next("ReduceMin", x.shape, x.dtype)
            return first_max_along(x, -ref, dim, keepdim)  # the first minimum of ref

        def norm(x, p="fro", dim=None, keepdim=False, out=None, dtype=None):
            if not (isinstance(p, (int, float)) and p == 1) or out is not None or \
                    dtype is not None:
                return orig["torch.norm"](x, p, dim, keepdim, out=out, dtype=dtype)
            # evmap's slope: sign(x), 0 at 0
            s = torch.sign(self._next("ReduceL1", x.shape, x.dtype))
            dims = tuple(range(x.dim())) if dim is None else dim
            return (x * s).sum(dim=dims, keepdim=keepdim)

        def abs_(x, *args, **kwargs):
            if args or kwargs:
                return orig["torch.abs"](x, *args, **kwargs)
            # evmap's slope: sign(x), 0 at 0
            return x * torch.sign(self._next("Abs", x.shape, x.dtype))

        def select(op, a, b):
            # the gradient goes to the first input equal to the output: a on ties
            ra = self._next(op, a.shape, a.dtype)
            rb = self._next(op, b.shape, b.dtype)
            return torch.where(ra >= rb if op == "Max" else ra <= rb, a, b)

        def binary(op, name):
            def fn(a, *args, **kwargs):
                other = args[0] if len(args) == 1 and not kwargs else kwargs.get("other")
                if isinstance(other, torch.Tensor) and len(args) + len(kwargs) == 1:
                    return select(op, a, other)
                return orig[name](a, *args, **kwargs)  # torch.max(x), torch.max(x, dim), ...
            return fn

        patched = {"relu": relu, "leaky_relu": leaky_relu, "hardtanh": hardtanh, "relu6": relu6,
                   "max_pool2d": max_pool2d, "adaptive_max_pool2d": adaptive_max_pool2d,
                   "prelu": prelu, "elu": elu, "selu": selu, "hardsigmoid": hardsigmoid,
                   "hardswish": hardswish, "torch.amax": amax, "Tensor.amax": amax,
                   "torch.amin": amin, "Tensor.amin": amin, "torch.norm": norm,
                   "torch.abs": abs_,
                   "torch.maximum": binary("Max", "torch.maximum"),
                   "torch.max": binary("Max", "torch.max"),
                   "torch.minimum": binary("Min", "torch.minimum"),
                   "torch.min": binary("Min", "torch.min")}
        for name, fn in patched.items():
            setattr(*self._owner(name), fn)
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            owner, attr = self._owner(name)
            if fn is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, fn)
        left = {op: len(q) for op, q in self.decisions.items() if q}
        if left and exc[0] is None:
            raise RuntimeError(f"kinked nodes no PyTorch call followed: {left}")


def decisions_from_dumps(nodes, dumps):
    """{op_type: [arrays]} from kinked_nodes' list and the matching dumps."""
    out = {}
    for (op, _), arr in zip(nodes, dumps):
        out.setdefault(op, []).append(np.asarray(arr, dtype=np.float64))
    return out
