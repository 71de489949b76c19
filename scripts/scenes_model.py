"""The scenes model: a narrow ResNet-18 for 224x224 RGB scenes
(scripts/make_scenes.py), shared by scripts/train_scenes.py and the tests.

Input: N x 3 x 224 x 224, pixel / 255 normalised with the ImageNet mean and
std (to_input); output: 10 logits (Fashion-MNIST classes).
from_onnx() rebuilds the torch model from models/scenes_cnn.onnx's
initializers, so tests compare evmap with PyTorch without .pt files.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ScenesResNet(nn.Module):
    """ResNet-18's shape (4 stages of 2 basic blocks) at a quarter of its
    width: stem conv5x5/2 + maxpool/2 (224 -> 56), stages 16/32/64/128
    channels at 56/28/14/7, global average pool, fc 128 -> 10."""

    def __init__(self, widths=(16, 32, 64, 128), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 5, 2, 2, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(2))
        blocks, cin = [], widths[0]
        for i, c in enumerate(widths):
            blocks += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def to_input(batch_u8):
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W."""
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).float().div_(255)
    x = (x - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    return x.permute(0, 3, 1, 2).contiguous()


def from_onnx(path):
    """ScenesResNet with the weights of an exported .onnx file (initializer
    names are the state_dict names; the export keeps them)."""
    import onnx
    from onnx import numpy_helper
    model = ScenesResNet()
    proto = onnx.load(path)
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
               for t in proto.graph.initializer}
    # The exporter keeps one copy of bit-identical initializers (a block's
    # bn2.bias and its shortcut BN's bias get the same gradients) and names
    # the others by Identity nodes.
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights.setdefault(node.output[0], weights[node.input[0]])
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError("%s lacks %s" % (path, ", ".join(missing[:4])))
    model.load_state_dict({k: weights.get(k, v) for k, v in state.items()})
    return model.eval()
