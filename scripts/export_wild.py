#!/usr/bin/python3
"""Exports the "models from the wild" of tests/test_wild_models.py to ONNX.

Newer torchvision architectures with random weights (no pretrained weights
can be downloaded here), exported by torch.onnx.export at several opsets, so
that each operator form the exporter writes (Clip with attributes or inputs,
Split/Squeeze/Unsqueeze/Reduce* with attribute or input axes, HardSwish or
HardSigmoid x Mul, LayerNormalization or its decomposition, dynamic Reshape
shapes, ...) is loaded by evmap at least once.

BatchNorm statistics are calibrated like export_torchvision.build_calibrated:
measured on the model's own activations over eight random N(0, 1) images
(seed 99), so activations are not degenerate. Only the BatchNorm layers run
in training mode for it (stochastic depth and dropout stay off, so the
statistics are those of the eval-mode network). BatchNormalization nodes are
kept in the graph (TrainingMode.PRESERVE), as in the other exports.

Files: MODELS/wild_NAME_opN.onnx, input "input" (1 x 3 x 224 x 224; a
dynamic batch axis where DYNAMIC says so), output "logits". A file that is
there is not exported again (the weights are deterministic).

usage: export_wild.py [--out DIR] [--list] [NAME_opN...]
"""
import argparse
import os
import sys
import warnings

import torch
import torchvision

M = torchvision.models
ARCH = {
    "mobilenet_v3_small": lambda: M.mobilenet_v3_small(weights=None),
    "shufflenet_v2_x1_0": lambda: M.shufflenet_v2_x1_0(weights=None),
    "mnasnet0_5": lambda: M.mnasnet0_5(weights=None),
    "convnext_tiny": lambda: M.convnext_tiny(weights=None),
    "efficientnet_b0": lambda: M.efficientnet_b0(weights=None),
    "regnet_y_400mf": lambda: M.regnet_y_400mf(weights=None),
    "squeezenet1_0": lambda: M.squeezenet1_0(weights=None),
}

# (architecture, opset) pairs exported. Not every pair: enough that every
# operator form the exporter writes for these architectures appears.
#   opset 9:  Clip/HardSigmoid attributes, Split/Squeeze/Unsqueeze/ReduceMean
#             axes as attributes, Dropout without training_mode, Upsample era
#   opset 11: Clip min/max as inputs, Pad as inputs
#   opset 13: Split/Squeeze/Unsqueeze axes as inputs, ReduceMean attribute
#   opset 17: HardSwish (14), LayerNormalization (17)
PAIRS = [
    ("mobilenet_v3_small", 9), ("mobilenet_v3_small", 11),
    ("mobilenet_v3_small", 13), ("mobilenet_v3_small", 17),
    ("shufflenet_v2_x1_0", 9), ("shufflenet_v2_x1_0", 11),
    ("shufflenet_v2_x1_0", 13), ("shufflenet_v2_x1_0", 17),
    ("mnasnet0_5", 9), ("mnasnet0_5", 13),
    ("convnext_tiny", 13), ("convnext_tiny", 17),
    ("efficientnet_b0", 11), ("efficientnet_b0", 17),
    ("regnet_y_400mf", 11), ("regnet_y_400mf", 13),
    ("squeezenet1_0", 9), ("squeezenet1_0", 17),
]
# Exports with a dynamic batch axis (Shape/Gather/Concat feeding Reshape in
# the graph, as many files in the wild have); the others have batch 1.
DYNAMIC = {("shufflenet_v2_x1_0", 11), ("mnasnet0_5", 13), ("squeezenet1_0", 9)}


def file_name(arch, opset):
    return f"wild_{arch}_op{opset}.onnx"


def build(arch, seed=0):
    """The architecture in eval mode: reproducible random weights, BatchNorm
    statistics measured on eight random images."""
    torch.manual_seed(seed)
    model = ARCH[arch]().eval()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batch
        m.train()
    if bns:
        with torch.no_grad():
            model(torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(99)))
    return model.eval()


def export(arch, opset, path, model=None):
    warnings.filterwarnings("ignore")
    model = model if model is not None else build(arch)
    dyn = {"input": {0: "batch"}, "logits": {0: "batch"}} if (arch, opset) in DYNAMIC else None
    tmp = path + ".tmp"
    # PRESERVE keeps BatchNormalization nodes (EVAL would fold them into the
    # convolutions); torch warns about it although the model is in eval mode.
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), tmp, opset_version=opset,
                      input_names=["input"], output_names=["logits"], dynamic_axes=dyn,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    os.replace(tmp, path)


_built = {}


def ensure(arch, opset, out):
    """The path of the export, made when missing (one build per architecture)."""
    path = os.path.join(out, file_name(arch, opset))
    if not os.path.exists(path):
        print(f"exporting {arch} opset {opset} -> {path}", file=sys.stderr, flush=True)
        if arch not in _built:
            _built.clear()
            _built[arch] = build(arch)
        export(arch, opset, path, _built[arch])
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("MODELS", "build/models"))
    ap.add_argument("--list", action="store_true", help="print the NAME_opN known")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    known = {f"{a}_op{o}": (a, o) for a, o in PAIRS}
    if args.list:
        print("\n".join(known))
        return
    os.makedirs(args.out, exist_ok=True)
    for name in args.names or known:
        if name not in known:
            sys.exit(f"export_wild: unknown model '{name}' (known: {', '.join(known)})")
        ensure(*known[name], args.out)


if __name__ == "__main__":
    main()
