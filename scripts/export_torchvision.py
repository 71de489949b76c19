#!/usr/bin/python3
"""Exports torchvision ImageNet architectures with random weights to ONNX.

No pretrained weights can be downloaded here; cost and operators are what
these models are for. Weights come from a fixed seed, and BatchNorm running
statistics are randomised so that evmap's BatchNorm folding is exercised.
Each model gets a dynamic batch axis (input "input", output "logits").

NAME_calibrated (for the models in CALIBRATED) is the same architecture with
BatchNorm statistics measured on its own activations over random images:
with the random statistics above, some models' activations are nearly
constant (googlenet's weights are tiny), so their maps hold no evidence and
their MaxPool windows near-ties everywhere. Tests that need real evidence or
gradients use these (batch axis fixed at 1).

usage: export_torchvision.py [--out DIR] [--opset N] [NAME...]
"""
import argparse
import os
import sys

import warnings

import torch
import torchvision

MODELS = {
    "alexnet": lambda: torchvision.models.alexnet(weights=None),
    "vgg16": lambda: torchvision.models.vgg16(weights=None),
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "resnet50": lambda: torchvision.models.resnet50(weights=None),
    "googlenet": lambda: torchvision.models.googlenet(
        weights=None, aux_logits=False, init_weights=True),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(weights=None),
    "densenet121": lambda: torchvision.models.densenet121(weights=None),
}


def build(name, seed=0):
    """The named model in eval mode with reproducible random weights."""
    torch.manual_seed(seed)
    model = MODELS[name]()
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


CALIBRATED = ("resnet18", "googlenet", "mobilenet_v2", "densenet121")


def build_calibrated(name):
    """build(name) with BatchNorm statistics of its own activations on eight
    random N(0, 1) images (seed 99)."""
    model = build(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batch
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(99)))
    return model.eval()


def export_calibrated(name, path, opset=13):
    warnings.filterwarnings("ignore")
    tmp = path + ".tmp"
    torch.onnx.export(build_calibrated(name), torch.zeros(1, 3, 224, 224), tmp,
                      opset_version=opset, input_names=["input"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    os.replace(tmp, path)


def export(name, path, opset=13):
    # PRESERVE keeps BatchNormalization nodes (EVAL would fuse them away);
    # torch warns about it although the model is in eval mode.
    warnings.filterwarnings("ignore", message=".*constant folding.*")
    model = build(name)
    x = torch.zeros(1, 3, 224, 224)
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=opset,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=True)
    os.replace(tmp, path)
    return model


def main_export(name, path, opset=13):
    """Exports unless the file is already there (weights are deterministic)."""
    if not os.path.exists(path):
        print(f"exporting {name} -> {path}", file=sys.stderr)
        if name.endswith("_calibrated"):
            export_calibrated(name[:-len("_calibrated")], path, opset)
        else:
            export(name, path, opset)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/models")
    ap.add_argument("--opset", type=int, default=13)
    known = list(MODELS) + [n + "_calibrated" for n in CALIBRATED]
    ap.add_argument("names", nargs="*", default=known)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.names:
        if name not in known:
            sys.exit(f"export_torchvision: unknown model '{name}' (known: {', '.join(known)})")
        main_export(name, os.path.join(args.out, name + ".onnx"), args.opset)


if __name__ == "__main__":
    main()
