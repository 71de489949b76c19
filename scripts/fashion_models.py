"""Fashion-MNIST models shipped with evmap, plus helpers shared by the
training script and the tests.

* FashionCNN     -- VGG-style: 2 x (conv3x3-ReLU-conv3x3-ReLU-maxpool2),
                    dropout, fc 64*7*7 -> 128 -> 10.
* FashionResNet  -- small ResNet: conv-BN-ReLU stem, three residual blocks
                    (16, 32/2, 64/2 channels; 1x1 conv+BN projection
                    shortcut where the shape changes), global average
                    pooling, fc 64 -> 10.

Both take a float tensor N x 1 x 28 x 28 with pixel values in [0, 1]
(pixel / 255, no further normalisation) and return raw logits (no softmax).

read_idx() reads the (gzipped) IDX files of the Fashion-MNIST distribution.
torch_model_from_onnx() rebuilds the torch model from an exported .onnx
file (weights from the ONNX initializers), so tests can compare a C engine
with PyTorch without shipping .pt files.

Needs torch and numpy; torch_model_from_onnx() also needs the onnx package.
"""

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 10
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
SHORT_NAMES = [
    "tshirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]

DATASET_DIR = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class FashionCNN(nn.Module):
    """VGG-style CNN for 1x28x28 inputs in [0, 1]; outputs 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)            # 32 x 14 x 14
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = F.max_pool2d(x, 2)            # 64 x 7 x 7
        x = self.dropout(x)
        x = torch.flatten(x, 1)           # exports as ONNX Flatten
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU.  The shortcut is the
    identity, or a 1x1 conv (stride s, with bias) when the shape changes.

    (No BN on the projection: its bias would get exactly the same gradients
    as bn2's bias, stay bit-identical to it, and torch's ONNX exporter would
    then deduplicate the two initializers through an Identity node.)"""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(y + s)


class FashionResNet(nn.Module):
    """Small ResNet for 1x28x28 inputs in [0, 1]; outputs 10 logits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16, 1)   # 16 x 28 x 28
        self.layer2 = BasicBlock(16, 32, 2)   # 32 x 14 x 14
        self.layer3 = BasicBlock(32, 64, 2)   # 64 x 7 x 7
        self.pool = nn.AdaptiveAvgPool2d(1)   # exports as GlobalAveragePool
        self.fc = nn.Linear(64, NUM_CLASSES)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.pool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


MODELS = {"cnn": FashionCNN, "resnet": FashionResNet}


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

_IDX_TYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read an IDX file (gzipped if the name ends in .gz) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES:
        raise ValueError("%s: not an IDX file" % path)
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    dtype = _IDX_TYPES[dtype_code]
    count = int(np.prod(dims)) if ndim else 1
    offset = 4 + 4 * ndim
    if len(data) != offset + count * dtype.itemsize:
        raise ValueError("%s: size does not match header" % path)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(dims).astype(dtype.newbyteorder("="))


def load_split(split, root=DATASET_DIR):
    """Return (images uint8 N x 28 x 28, labels int64 N) for split
    'train' or 't10k'."""
    images = read_idx(os.path.join(root, "%s-images-idx3-ubyte.gz" % split))
    labels = read_idx(os.path.join(root, "%s-labels-idx1-ubyte.gz" % split))
    if images.shape[0] != labels.shape[0]:
        raise ValueError("image/label count mismatch in %s" % split)
    return images, labels.astype(np.int64)


def to_input(images):
    """uint8 N x 28 x 28 -> float32 tensor N x 1 x 28 x 28 in [0, 1]."""
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


# --------------------------------------------------------------------------
# ONNX -> torch
# --------------------------------------------------------------------------

def torch_model_from_onnx(path):
    """Rebuild the torch model for an exported evmap Fashion-MNIST .onnx file
    and load its weights from the ONNX initializers.  The exporter (with
    do_constant_folding=False) keeps the state_dict names as initializer
    names.  Returns the model in eval mode."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    # torch's exporter replaces bit-identical initializers by one copy plus
    # Identity nodes (output named after the dropped one); follow those.
    for node in proto.graph.node:
        if (node.op_type == "Identity" and node.input[0] in inits
                and node.output[0] not in inits):
            inits[node.output[0]] = inits[node.input[0]]
    ops = {n.op_type for n in proto.graph.node}
    model = FashionResNet() if "BatchNormalization" in ops else FashionCNN()

    state = model.state_dict()
    new_state = {}
    for name, ref in state.items():
        if name.endswith("num_batches_tracked"):
            new_state[name] = ref          # not exported, not used in eval
            continue
        if name not in inits:
            raise ValueError("%s: initializer %r missing (not a %s export?)"
                             % (path, name, type(model).__name__))
        arr = inits[name]
        if tuple(arr.shape) != tuple(ref.shape):
            raise ValueError("%s: initializer %r has shape %s, expected %s"
                             % (path, name, arr.shape, tuple(ref.shape)))
        new_state[name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    model.load_state_dict(new_state)
    model.eval()
    return model
