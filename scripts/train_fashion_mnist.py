#!/usr/bin/python3
"""Train the shipped Fashion-MNIST models on CPU and export them to ONNX.

    /usr/bin/python3 scripts/train_fashion_mnist.py            # both models
    /usr/bin/python3 scripts/train_fashion_mnist.py --model cnn

Writes models/fashion_cnn.onnx and models/fashion_resnet.onnx (opset 13,
input "input" N x 1 x 28 x 28 float in [0, 1], output "logits" N x 10, dynamic
batch axis) and prints the test accuracy on the 10000 t10k images.

Deterministic: fixed seeds, torch.use_deterministic_algorithms(True), no
DataLoader workers, 2 threads.  Runs from any directory.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fashion_models as fm  # noqa: E402

REPO = os.path.dirname(HERE)

# Per-model schedule: Adam + one-cycle LR, batch 128, random horizontal flip.
CONFIG = {
    "cnn":    dict(epochs=6, max_lr=2e-3, weight_decay=0.0,
                   file="fashion_cnn.onnx"),
    "resnet": dict(epochs=10, max_lr=5e-3, weight_decay=1e-4,
                   file="fashion_resnet.onnx"),
}
BATCH = 128
SEED = 20240601

ALLOWED_OPS = {
    "Conv", "Relu", "MaxPool", "Gemm", "MatMul", "Add", "BatchNormalization",
    "GlobalAveragePool", "Flatten", "Reshape", "Dropout", "Identity",
    "Constant", "Shape", "Gather", "Unsqueeze", "Concat",
}


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            logits = model(x[i:i + batch])
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / x.shape[0]


def train(name, xtr, ytr, xte, yte, epochs=None, limit=None):
    cfg = CONFIG[name]
    epochs = cfg["epochs"] if epochs is None else epochs
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = fm.MODELS[name]()
    nparams = sum(p.numel() for p in model.parameters())
    print("[%s] %s, %d parameters, %d epochs" %
          (name, type(model).__name__, nparams, epochs), flush=True)

    n = xtr.shape[0] if limit is None else min(limit, xtr.shape[0])
    steps_per_epoch = (n + BATCH - 1) // BATCH
    opt = torch.optim.Adam(model.parameters(), lr=cfg["max_lr"],
                           weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["max_lr"], epochs=epochs,
        steps_per_epoch=steps_per_epoch)

    t_start = time.time()
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(xtr.shape[0], generator=gen)[:n]
        total_loss = 0.0
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = xtr[idx], ytr[idx]
            flip = torch.rand(xb.shape[0], generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss) * xb.shape[0]
        t_epoch = time.time() - t0
        acc = evaluate(model, xte, yte)
        print("[%s] epoch %d/%d  loss %.4f  test acc %.4f  (%.1f s)" %
              (name, epoch + 1, epochs, total_loss / n, acc, t_epoch),
              flush=True)
    train_time = time.time() - t_start
    model.eval()
    return model, train_time


def export(model, path):
    import onnx
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    # PRESERVE (model is in eval mode) + no constant folding keeps
    # BatchNormalization nodes (the EVAL-mode peephole would fuse Conv+BN)
    # and keeps state_dict names as initializer names.
    torch.onnx.export(
        model, dummy, path, opset_version=13,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False, export_params=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    ops = sorted({n.op_type for n in proto.graph.node})
    bad = set(ops) - ALLOWED_OPS
    if bad:
        raise SystemExit("%s: unexpected ops %s" % (path, sorted(bad)))
    if isinstance(model, fm.FashionResNet) and "BatchNormalization" not in ops:
        raise SystemExit("%s: BatchNormalization nodes were fused away" % path)
    inits = [t.name for t in proto.graph.initializer]
    want = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if sorted(inits) != sorted(want):
        raise SystemExit("%s: initializers %s differ from state_dict %s"
                         % (path, inits, want))
    return ops, inits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["cnn", "resnet", "all"], default="all")
    ap.add_argument("--epochs", type=int, help="override the epoch count")
    ap.add_argument("--limit", type=int,
                    help="train on only this many images per epoch (timing)")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models"))
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    np.random.seed(SEED)

    tr_img, tr_lab = fm.load_split("train")
    te_img, te_lab = fm.load_split("t10k")
    xtr, ytr = fm.to_input(tr_img), torch.from_numpy(tr_lab)
    xte, yte = fm.to_input(te_img), torch.from_numpy(te_lab)

    names = ["cnn", "resnet"] if args.model == "all" else [args.model]
    os.makedirs(args.out_dir, exist_ok=True)
    for name in names:
        model, train_time = train(name, xtr, ytr, xte, yte,
                                  args.epochs, args.limit)
        acc = evaluate(model, xte, yte)
        print("[%s] training time %.1f s" % (name, train_time))
        print("[%s] test accuracy %.4f (%d/%d)" %
              (name, acc, round(acc * xte.shape[0]), xte.shape[0]))
        if args.no_export:
            continue
        path = os.path.join(args.out_dir, CONFIG[name]["file"])
        ops, inits = export(model, path)
        print("[%s] wrote %s (%d bytes)" % (name, path, os.path.getsize(path)))
        print("[%s] ops: %s" % (name, " ".join(ops)))
        print("[%s] initializers: %s" % (name, " ".join(inits)))

        # Round trip: rebuild from the ONNX initializers, compare outputs.
        back = fm.torch_model_from_onnx(path)
        with torch.no_grad():
            a = torch.cat([model(xte[i:i + 1000]) for i in range(0, 10000, 1000)])
            b = torch.cat([back(xte[i:i + 1000]) for i in range(0, 10000, 1000)])
        diff = float((a - b).abs().max())
        same = bool(torch.equal(a, b))
        print("[%s] onnx->torch round trip: max |diff| %.3g, identical %s, "
              "accuracy %.4f" % (name, diff, same, evaluate(back, xte, yte)))
        if not same:
            raise SystemExit("round trip mismatch")


if __name__ == "__main__":
    main()
