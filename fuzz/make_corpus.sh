#!/bin/sh
# Builds the seed corpora of the fuzz harnesses in build-fuzz/corpus/<harness>/
# (generated, not committed) from real files on this machine and hand-made
# edge cases. Needs build/evmap (for the sampler seeds) and /usr/bin/python3
# with numpy, PIL, torch and onnx (derived images and small models); seeds
# whose tools are missing are skipped with a note.
# Usage: sh fuzz/make_corpus.sh [OUT]   (default build-fuzz/corpus)
set -eu
OUT=${1:-build-fuzz/corpus}
PY=${PYTHON:-/usr/bin/python3}
EVMAP=${EVMAP:-build/evmap}
SKIMAGE=/usr/lib/python3/dist-packages/skimage/data
ONNXDATA=/usr/share/libonnx-testdata
FMNIST=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT/onnx" "$OUT/png" "$OUT/jpeg" "$OUT/idx" "$OUT/sampler"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- ONNX: every conformance model, the repo's models, small classifiers
# (PyTorch exports; fuzz/make_weight_seeds.py for non-float32 weights).
if [ -d "$ONNXDATA" ]; then
    find "$ONNXDATA" -name '*.onnx' -size -1024k | while read -r f; do
        # The test name keeps seeds apart: every conformance model is model.onnx.
        name=$(echo "${f#"$ONNXDATA"/}" | tr '/' '_')
        cp "$f" "$OUT/onnx/$name"
    done
fi
for f in models/*.onnx; do
    [ -f "$f" ] && cp "$f" "$OUT/onnx/repo_$(basename "$f")"
done
"$PY" -W ignore - "$OUT/onnx" <<'PYEOF' || echo "make_corpus: small ONNX classifiers skipped (python3 lacks torch/onnx)"
import os, sys, io
import torch, torch.nn as nn
out = sys.argv[1]
torch.manual_seed(0)

class Tiny(nn.Module):  # Conv, BN, ReLU, MaxPool, Flatten, Gemm, Softmax
    def __init__(s, c=1, bn=True, soft=True):
        super().__init__()
        s.f = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4) if bn else nn.Identity(),
                            nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, stride=2, groups=2),
                            nn.LeakyReLU(0.1))
        s.fc = nn.Linear(4, 3)
        s.soft = soft
    def forward(s, x):
        y = s.fc(torch.flatten(s.f(x), 1))
        return torch.softmax(y, 1) if s.soft else y

class Branchy(nn.Module):  # Concat, Add, AvgPool, GlobalAvgPool, Reshape via Shape/Gather, Sigmoid, Clip
    def __init__(s):
        super().__init__()
        s.a = nn.Conv2d(3, 2, 1); s.b = nn.Conv2d(3, 2, 3, padding=1, dilation=1)
        s.d = nn.Conv2d(3, 4, 3, padding=1, groups=1)
        s.fc = nn.Linear(4, 2)
    def forward(s, x):
        y = torch.cat([s.a(x), torch.sigmoid(s.b(x))], 1) + torch.clamp(s.d(x), 0, 6)
        y = nn.functional.avg_pool2d(y, 2, ceil_mode=True)
        y = nn.functional.adaptive_avg_pool2d(y, 1)
        y = y.reshape(y.shape[0], -1)
        return s.fc(torch.tanh(y))

for name, m, shape in [("tiny_gray.onnx", Tiny(), (1, 1, 8, 8)),
                       ("tiny_logits.onnx", Tiny(bn=False, soft=False), (1, 1, 6, 6)),
                       ("tiny_rgb.onnx", Tiny(c=3), (1, 3, 8, 8)),
                       ("branchy_rgb.onnx", Branchy(), (1, 3, 7, 7))]:
    m.eval()
    for opset in (11, 13):
        torch.onnx.export(m, torch.rand(shape), os.path.join(out, f"gen{opset}_{name}"),
                          opset_version=opset, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
PYEOF
# Weights stored as float16 (raw and int32_data, special values, a Constant
# node), bfloat16 and float64, and two refused variants.
"$PY" fuzz/make_weight_seeds.py "$OUT/onnx" ||
    echo "make_corpus: float16/bfloat16/float64 weight seeds skipped (python3 lacks onnx)"
# Hand-made edge cases: empty, one byte, a protobuf tag with a huge length.
: >"$OUT/onnx/edge_empty"
printf '\010' >"$OUT/onnx/edge_one_byte"
printf '\072\377\377\377\377\017' >"$OUT/onnx/edge_huge_length"

# ---- PNG: skimage's small images (palette, 16-bit, indexed), the demo
# images, derived variants of every colour type, edge cases.
for f in "$SKIMAGE"/*.png; do
    [ -f "$f" ] || continue
    [ "$(wc -c <"$f")" -le 65536 ] && cp "$f" "$OUT/png/skimage_$(basename "$f")"
done
for f in data/demo/*.png; do
    [ -f "$f" ] && cp "$f" "$OUT/png/demo_$(basename "$f")"
done
# ---- JPEG: skimage's truncated.jpg and small variants of its photos.
[ -f "$SKIMAGE/truncated.jpg" ] && cp "$SKIMAGE/truncated.jpg" "$OUT/jpeg/skimage_truncated.jpg"
"$PY" - "$OUT" "$SKIMAGE" <<'PYEOF' || echo "make_corpus: derived PNG/JPEG seeds skipped (python3 lacks PIL)"
import os, sys, glob
from PIL import Image
out, sk = sys.argv[1], sys.argv[2]
srcs = [p for p in [os.path.join(sk, "chelsea.png"), os.path.join(sk, "rocket.jpg"),
                    os.path.join(sk, "camera.png")] if os.path.exists(p)]
srcs += sorted(glob.glob("data/demo/*.png"))[:1]
for i, p in enumerate(srcs):
    im = Image.open(p)
    im.load()
    rgb = im.convert("RGB").resize((13, 11))
    gray = rgb.convert("L")
    png = lambda im, n, **kw: im.save(os.path.join(out, "png", f"gen{i}_{n}.png"), **kw)
    png(rgb, "rgb"); png(gray, "gray"); png(rgb.convert("RGBA"), "rgba")
    png(gray.convert("LA"), "gray_alpha"); png(gray.convert("1"), "bilevel")
    png(rgb.convert("P", palette=Image.ADAPTIVE, colors=5), "palette4")
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=16)
    png(pal, "palette_trns", transparency=0)
    png(gray.convert("I;16"), "gray16")
    png(rgb, "interlaced", optimize=False)
    jpg = lambda im, n, **kw: im.save(os.path.join(out, "jpeg", f"gen{i}_{n}.jpg"), **kw)
    big = im.convert("RGB").resize((37, 29))
    jpg(big, "baseline", quality=75); jpg(big.convert("L"), "gray", quality=90)
    jpg(big, "progressive", progressive=True, quality=60)
    jpg(big, "s444", subsampling=0); jpg(big, "s422", subsampling=1)
    jpg(big, "q5", quality=5); jpg(big.convert("CMYK"), "cmyk")
    jpg(big, "optimized", optimize=True)
    jpg(big.resize((1, 1)), "one_pixel")
PYEOF
printf '\211PNG\r\n\032\n' >"$OUT/png/edge_signature_only"
: >"$OUT/png/edge_empty"
printf '\377\330\377' >"$OUT/jpeg/edge_soi_only"
printf '\377\330\377\331' >"$OUT/jpeg/edge_soi_eoi"

# ---- IDX: slices of Fashion-MNIST, plain and gzip, images and labels.
if [ -f "$FMNIST/t10k-images-idx3-ubyte.gz" ]; then
    "$PY" - "$OUT/idx" "$FMNIST" <<'PYEOF'
import gzip, struct, sys, os
out, src = sys.argv[1], sys.argv[2]
imgs = gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read()
labs = gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).read()
def images(n, rows=28, cols=28):
    body = imgs[16:16 + n * 784]
    if (rows, cols) != (28, 28):
        body = bytes(body[i % len(body)] for i in range(n * rows * cols))
    return struct.pack(">BBBBIII", 0, 0, 8, 3, n, rows, cols) + body
def labels(n):
    return struct.pack(">BBBBI", 0, 0, 8, 1, n) + labs[8:8 + n]
def put(name, data, gz=True):
    open(os.path.join(out, name), "wb").write(data)
    if gz:
        open(os.path.join(out, name + ".gz"), "wb").write(gzip.compress(data, mtime=0))
put("images20-idx3-ubyte", images(20)); put("images1-idx3-ubyte", images(1))
put("images3x5x7-idx3-ubyte", images(3, 5, 7)); put("labels20-idx1-ubyte", labels(20))
put("images0-idx3-ubyte", images(0)); put("labels0-idx1-ubyte", labels(0), gz=False)
put("type_float-idx3-ubyte", struct.pack(">BBBBIII", 0, 0, 0x0D, 3, 1, 1, 1) + b"\0" * 4, gz=False)
put("header_only-idx3-ubyte", struct.pack(">BBBBIII", 0, 0, 8, 3, 1000, 28, 28), gz=False)
PYEOF
else
    echo "make_corpus: $FMNIST missing; IDX seeds are hand-made only"
    printf '\000\000\010\001\000\000\000\002\001\002' >"$OUT/idx/labels2"
fi

# ---- Sampler files: fitted by evmap itself.
if [ -x "$EVMAP" ] && [ -f "$FMNIST/t10k-images-idx3-ubyte.gz" ]; then
    "$EVMAP" fit-sampler --quiet --size 28x28 --window 4 --pad 2 -o "$OUT/sampler/w4p2.evms" \
        "$FMNIST/t10k-images-idx3-ubyte.gz"
    "$EVMAP" fit-sampler --quiet --size 28x28 --window 2 --pad 1 --patches 500 \
        -o "$OUT/sampler/w2p1.evms" "$FMNIST/t10k-images-idx3-ubyte.gz"
    "$EVMAP" fit-sampler --quiet --size 28x28 --window 1 --pad 0 --patches 100 \
        -o "$OUT/sampler/w1p0.evms" "$FMNIST/t10k-images-idx3-ubyte.gz"
    if ls "$OUT"/png/gen0_rgb.png >/dev/null 2>&1; then
        "$EVMAP" fit-sampler --quiet --size 13x11 --window 2 --pad 1 --joint-channels \
            --patches 200 -o "$OUT/sampler/rgb_joint.evms" "$OUT"/png/gen*_rgb.png
        "$EVMAP" fit-sampler --quiet --size 13x11 --window 2 --pad 1 --patches 200 \
            -o "$OUT/sampler/rgb.evms" "$OUT"/png/gen*_rgb.png
    fi
else
    echo "make_corpus: $EVMAP or Fashion-MNIST missing; no sampler seeds fitted"
fi
printf 'EVMSAMPL' >"$OUT/sampler/edge_magic_only"

for h in onnx png jpeg idx sampler; do
    echo "make_corpus: $h: $(ls "$OUT/$h" | wc -l) seeds"
done
