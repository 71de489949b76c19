#!/usr/bin/python3
"""Train the scenes model (a narrow ResNet-18 for 224x224 RGB scenes) on the
CPU and export it to models/scenes_cnn.onnx.

    /usr/bin/python3 scripts/train_scenes.py [--data build/scenes] [--epochs N]

Generates the scenes with scripts/make_scenes.py first when --data lacks them.
Input "input": N x 3 x 224 x 224, pixel / 255 normalised with the ImageNet
mean and std; output "logits": N x 10 (Fashion-MNIST classes). Prints the
test accuracy on the scenes and on the same scenes without the object.

Deterministic: fixed seeds, torch.use_deterministic_algorithms(True), 2
threads, no DataLoader workers.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from scenes_model import ScenesResNet, to_input  # noqa: E402

SEED = 20261203
BATCH = 128


def load_folder(folder, stems):
    return np.stack([np.asarray(Image.open(os.path.join(folder, s + ".png")).convert("RGB"))
                     for s in stems])


def load_test(data):
    rows = [line.split() for line in open(os.path.join(data, "test", "labels.txt"))]
    stems = [r[0] for r in rows]
    labels = torch.tensor([int(r[1]) for r in rows])
    return (load_folder(os.path.join(data, "test", "images"), stems),
            load_folder(os.path.join(data, "test-background", "images"), stems), labels)


def accuracy(model, images, labels, batch=200):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            correct += int((model(to_input(images[i:i + batch])).argmax(1)
                            == labels[i:i + batch]).sum())
    return correct / len(images)


def train(model, xtr, ytr, test, epochs, max_lr, limit):
    gen = torch.Generator().manual_seed(SEED)
    n = len(xtr) if limit is None else min(limit, len(xtr))
    steps = (n + BATCH - 1) // BATCH
    decay = [p for name, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for name, p in model.named_parameters() if p.ndim <= 1]
    # AdamW: SGD with momentum stayed at chance for the first 25k scenes.
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 5e-4},
                             {"params": no_decay, "weight_decay": 0.0}], lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs,
                                                steps_per_epoch=steps)
    t_start = time.time()
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)[:n].numpy()
        total = 0.0
        for i in range(0, n, BATCH):
            idx = np.sort(perm[i:i + BATCH])
            xb, yb = to_input(xtr[idx]), ytr[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        print("epoch %d/%d  loss %.4f  test acc %.4f  (%.0f s)" %
              (epoch + 1, epochs, total / n, accuracy(model, test[0], test[2]), time.time() - t0),
              flush=True)
    return time.time() - t_start


def export(model, path):
    import onnx
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False, export_params=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    ops = sorted({n.op_type for n in proto.graph.node})
    if "BatchNormalization" not in ops:
        raise SystemExit("%s: BatchNormalization nodes were fused away" % path)
    return ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(REPO, "build", "scenes"))
    ap.add_argument("--epochs", type=int, default=11)
    ap.add_argument("--max-lr", type=float, default=3e-3)
    ap.add_argument("--limit", type=int, help="train on this many scenes per epoch")
    ap.add_argument("--out", default=os.path.join(REPO, "models", "scenes_cnn.onnx"))
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    t0 = time.time()
    if not os.path.exists(os.path.join(args.data, "train-labels.npy")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_scenes.py"), args.data],
                       check=True)
    xtr = np.load(os.path.join(args.data, "train-images.npy"), mmap_mode="r")
    ytr = torch.from_numpy(np.load(os.path.join(args.data, "train-labels.npy")))
    test = load_test(args.data)
    print("data: %d training scenes, %d test scenes (%.0f s)" %
          (len(xtr), len(test[2]), time.time() - t0), flush=True)

    model = ScenesResNet()
    print("ScenesResNet: %d parameters" % sum(p.numel() for p in model.parameters()))
    seconds = train(model, xtr, ytr, test, args.epochs, args.max_lr, args.limit)
    print("training time %.0f s (%.1f min); with data %.1f min" %
          (seconds, seconds / 60, (time.time() - t0) / 60))
    acc = accuracy(model, test[0], test[2])
    acc_back = accuracy(model, test[1], test[2])
    n = len(test[2])
    print("test accuracy %.4f (%d/%d); without the object %.4f (%d/%d; chance 0.1)" %
          (acc, round(acc * n), n, acc_back, round(acc_back * n), n))
    if not args.no_export:
        ops = export(model, args.out)
        print("wrote %s (%d bytes); ops: %s" % (args.out, os.path.getsize(args.out), " ".join(ops)))


if __name__ == "__main__":
    main()
