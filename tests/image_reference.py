#!/usr/bin/python3
"""Writes the inputs and reference outputs of tests/unit/test_image.c.

    /usr/bin/python3 tests/image_reference.py OUT_DIR

Everything goes to OUT_DIR (a temporary folder the C test removes); nothing
here is committed. References are raw little-endian float32, planar
channel x height x width, and come from an independent decoder (PIL, or
the source array itself for PNGs this script encodes byte by byte) and from
torchvision for preprocessing. OUT_DIR/cases.txt lists the decode cases:

    decode FILE WIDTH HEIGHT CHANNELS REF.f32
    fail FILE STATUS            (STATUS: bad_file, unsupported, io, limit)

Photographs come from scikit-image's data folder when python3-skimage is
installed; otherwise a deterministic synthetic photograph is used.
"""

import gzip
import os
import struct
import sys
import zlib

import numpy as np

try:
    from PIL import Image
except ImportError:  # pragma: no cover - PIL is part of python3-torchvision's deps
    Image = None

FASHION = "/usr/share/datasets/fashion-mnist"
SKIMAGE_DIRS = ["/usr/lib/python3/dist-packages/skimage/data",
                "/usr/share/scikit-image/data"]
FMNIST_INDICES = [0, 1, 1234, 9999]


# ---------------------------------------------------------------- PNG writer

def _chunk(tag, data):
    return (struct.pack(">I", len(data)) + tag + data +
            struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))


def _pack_rows(samples, depth):
    """samples: (h, w*channels) ints -> list of packed row bytes."""
    rows = []
    for row in samples:
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            padded = np.zeros(((len(row) + per - 1) // per) * per, np.uint8)
            padded[:len(row)] = row
            groups = padded.reshape(-1, per)
            packed = np.zeros(len(groups), np.uint8)
            for k in range(per):
                packed |= (groups[:, k] << (8 - depth * (k + 1))).astype(np.uint8)
            rows.append(packed.tobytes())
    return rows


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_encode(samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, channels) ints as stored in the file."""
    h, w, ch = samples.shape
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for xs, ys, dx, dy in passes:
        sub = samples[ys::dy, xs::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for r in _pack_rows(sub.reshape(sub.shape[0], -1), depth):
            raw += b"\x00" + r
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                       1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    out += _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    return out


# ------------------------------------------------------------------ helpers

class Out:
    def __init__(self, root):
        self.root = root
        self.lines = []

    def path(self, name):
        return os.path.join(self.root, name)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)

    def ref(self, name, planar):
        np.ascontiguousarray(planar, dtype="<f4").tofile(self.path(name))

    def decode(self, name, planar):
        """planar: (c, h, w) float32 expected pixels."""
        c, h, w = planar.shape
        self.ref(name + ".f32", planar)
        self.lines.append(f"decode {name} {w} {h} {c} {name}.f32")

    def fail(self, name, status):
        self.lines.append(f"fail {name} {status}")


def planar(hwc, maxval):
    a = np.asarray(hwc, np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.transpose(a, (2, 0, 1)) / np.float32(maxval)


def pil_pixels(path):
    """Independent decode: PIL, alpha dropped, palette expanded."""
    im = Image.open(path)
    im.load()
    if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("LA", "1") else "RGB")
    return planar(np.asarray(im), 255)


def synthetic_photo(h, w, seed):
    """Smooth shading, edges and texture: what a photograph exercises."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * (x / w) * (y / h) + 40 * (((x // 31) + (y // 29)) % 2)
    b = 200 - 150 * np.hypot(x - w / 3, y - h / 2) / max(h, w)
    img = np.stack([r, g, b], axis=2) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def photos():
    """(rgb HxWx3, gray HxW, source description)."""
    # EVMAP_TEST_SYNTHETIC=1 checks the fallback where scikit-image is installed
    for d in [] if os.environ.get("EVMAP_TEST_SYNTHETIC") else SKIMAGE_DIRS:
        rgb_path, gray_path = os.path.join(d, "chelsea.png"), os.path.join(d, "camera.png")
        if os.path.exists(rgb_path) and os.path.exists(gray_path):
            rgb = np.asarray(Image.open(rgb_path).convert("RGB"))
            gray = np.asarray(Image.open(gray_path).convert("L"))
            # camera is square; a portrait crop under 256 px exercises upscaling
            return rgb, np.ascontiguousarray(gray[40:373, 100:300]), d
    rgb = synthetic_photo(300, 449, 1)
    gray = synthetic_photo(333, 200, 2)[:, :, 1]
    return rgb, gray, "synthetic"


# ----------------------------------------------------------------- sections

def png_cases(out, rgb, gray):
    rng = np.random.default_rng(7)
    Image.fromarray(rgb).save(out.path("photo_rgb.png"))
    out.decode("photo_rgb.png", pil_pixels(out.path("photo_rgb.png")))
    Image.fromarray(gray).save(out.path("photo_gray.png"))
    out.decode("photo_gray.png", pil_pixels(out.path("photo_gray.png")))

    small = rgb[50:73, 60:97]  # 23 x 37, odd sizes for interlacing
    alpha = rng.integers(0, 256, small.shape[:2], dtype=np.uint8)
    g_small = gray[10:33, 20:57]
    Image.fromarray(np.dstack([small, alpha]), "RGBA").save(out.path("rgba8.png"))
    out.decode("rgba8.png", pil_pixels(out.path("rgba8.png")))
    Image.fromarray(np.dstack([g_small, alpha]), "LA").save(out.path("la8.png"))
    out.decode("la8.png", pil_pixels(out.path("la8.png")))

    for depth in (1, 2, 4):
        v = rng.integers(0, 1 << depth, (13, 11, 1))
        name = f"gray{depth}.png"
        out.write(name, png_encode(v, 0, depth))
        out.decode(name, planar(v, (1 << depth) - 1))
        name = f"gray{depth}_interlaced.png"
        out.write(name, png_encode(v, 0, depth, interlace=True))
        out.decode(name, planar(v, (1 << depth) - 1))

    for depth in (1, 2, 4, 8):
        n = 1 << depth
        pal = rng.integers(0, 256, (n, 3))
        idx = rng.integers(0, n, (9, 14, 1))
        trns = bytes(rng.integers(0, 256, n // 2 + 1, dtype=np.uint8)) if depth == 4 else None
        name = f"palette{depth}.png"
        out.write(name, png_encode(idx, 3, depth, palette=pal, trns=trns,
                                   interlace=depth == 2))
        out.decode(name, planar(pal[idx[:, :, 0]], 255))
    # PIL's own palette writer, checked with PIL's reader
    Image.fromarray(small).quantize(64).save(out.path("palette_pil.png"))
    out.decode("palette_pil.png", pil_pixels(out.path("palette_pil.png")))

    v16 = rng.integers(0, 65536, (17, 10, 4))
    for ct, ch, name in ((0, 1, "gray16"), (4, 2, "la16"), (2, 3, "rgb16"), (6, 4, "rgba16")):
        data = v16[:, :, :ch]
        keep = data[:, :, :1] if ch <= 2 else data[:, :, :3]
        out.write(name + ".png", png_encode(data, ct, 16))
        out.decode(name + ".png", planar(keep, 65535))
        out.write(name + "_interlaced.png", png_encode(data, ct, 16, interlace=True))
        out.decode(name + "_interlaced.png", planar(keep, 65535))

    out.write("rgb8_interlaced.png", png_encode(small, 2, 8, interlace=True))
    out.decode("rgb8_interlaced.png", planar(small, 255))
    one = np.array([[[200, 10, 99]]])
    out.write("one_interlaced.png", png_encode(one, 2, 8, interlace=True))
    out.decode("one_interlaced.png", planar(one, 255))
    # tRNS transparency is alpha too, and dropped like it
    out.write("gray_trns.png", png_encode(g_small[:, :, None], 0, 8, trns=b"\x00\x10"))
    out.decode("gray_trns.png", planar(g_small, 255))
    v = rng.integers(0, 4, (7, 9, 1))
    out.write("gray2_trns.png", png_encode(v, 0, 2, trns=b"\x00\x01"))
    out.decode("gray2_trns.png", planar(v, 3))
    out.write("rgb8_trns.png", png_encode(small, 2, 8, trns=b"".join(struct.pack(">H", v) for v in small[0, 0])))
    out.decode("rgb8_trns.png", planar(small, 255))


def jpeg_cases(out, rgb, gray):
    im = Image.fromarray(rgb)
    im.save(out.path("photo_420.jpg"), quality=90)
    im.save(out.path("photo_444.jpg"), quality=95, subsampling=0)
    im.save(out.path("photo_progressive.jpeg"), quality=85, progressive=True)
    Image.fromarray(gray).save(out.path("photo_gray.jpg"), quality=90)
    for name in ("photo_420.jpg", "photo_444.jpg", "photo_progressive.jpeg", "photo_gray.jpg"):
        out.decode(name, pil_pixels(out.path(name)))


def failure_cases(out, rgb):
    png = open(out.path("photo_rgb.png"), "rb").read()
    jpg = open(out.path("photo_420.jpg"), "rb").read()
    out.write("truncated.png", png[:len(png) * 3 // 5])
    out.fail("truncated.png", "bad_file")
    out.write("truncated.jpg", jpg[:len(jpg) * 3 // 5])
    out.fail("truncated.jpg", "bad_file")
    out.write("header_only.jpg", jpg[:200])
    out.fail("header_only.jpg", "bad_file")
    bad = bytearray(png)
    at = png.index(b"IDAT") + 40
    bad[at] ^= 0x55  # the chunk CRC no longer matches
    out.write("bad_crc.png", bytes(bad))
    out.fail("bad_crc.png", "bad_file")
    out.write("not_an_image.txt", b"hello, this is text and not a picture\n")
    out.fail("not_an_image.txt", "bad_file")
    out.write("empty.png", b"")
    out.fail("empty.png", "bad_file")
    Image.fromarray(rgb[:8, :8]).save(out.path("photo.gif"))
    out.fail("photo.gif", "unsupported")
    Image.fromarray(rgb[:16, :16]).convert("CMYK").save(out.path("cmyk.jpg"))
    out.fail("cmyk.jpg", "unsupported")
    tiny = np.zeros((1, 1, 1), np.uint8)
    for name, w, h in (("too_wide.png", 70000, 1), ("too_many_pixels.png", 20000, 20000)):
        data = bytearray(png_encode(tiny, 0, 8))
        data[16:24] = struct.pack(">II", w, h)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
        out.write(name, bytes(data))
        out.fail(name, "limit")
    sof = jpg.index(b"\xff\xc0")
    big = bytearray(jpg)
    big[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    out.write("too_many_pixels.jpg", bytes(big))
    out.fail("too_many_pixels.jpg", "limit")
    twelve = bytearray(jpg)
    twelve[sof + 4] = 12  # sample precision
    out.write("twelve_bit.jpg", bytes(twelve))
    out.fail("twelve_bit.jpg", "unsupported")
    out.fail("does_not_exist.png", "io")


def idx_bytes(dims, data, type_code=0x08):
    head = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(data)


def idx_cases(out):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    out.write("small.idx3", idx_bytes([3, 5, 4], imgs.tobytes()))
    out.write("small-idx3-ubyte.gz", gzip.compress(idx_bytes([3, 5, 4], imgs.tobytes())))
    out.ref("small_idx.f32", imgs / np.float32(255))
    out.write("short.idx", idx_bytes([5, 28, 28], bytes(2 * 28 * 28)))
    out.write("short.idx.gz", gzip.compress(idx_bytes([5, 28, 28], bytes(2 * 28 * 28))))
    out.write("huge_header.idx", idx_bytes([0xFFFFFFFF, 0xFFFF, 0xFFFF], bytes(100)))
    out.write("long.idx", idx_bytes([1, 2, 2], bytes(5)))
    out.write("float.idx", idx_bytes([1, 2, 2], bytes(16), 0x0D))
    z = gzip.compress(idx_bytes([3, 5, 4], imgs.tobytes()))
    out.write("truncated.idx.gz", z[:len(z) - 12])
    out.write("labels.idx1", idx_bytes([6], [1, 2, 3, 250, 0, 9]))

    images = os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")
    with gzip.open(images) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    out.ref("fmnist_images.f32", data[FMNIST_INDICES] / np.float32(255))
    with gzip.open(labels) as f:
        out.write("fmnist_labels.u8", f.read()[8:])


def folder_cases(out, rgb):
    d = out.path("folder")
    os.makedirs(os.path.join(d, "sub.png"))
    img = Image.fromarray(rgb[:6, :5])
    for name in ("b.PNG", "A2.png", "sub.png/inner.png", ".hidden.png"):
        img.save(os.path.join(d, name), format="PNG")
    for name in ("a.jpg", "c.jpeg"):
        img.save(os.path.join(d, name), format="JPEG")
    out.write("folder/notes.txt", b"not an image")
    os.makedirs(out.path("no_images"))
    out.write("no_images/readme.txt", b"nothing here")
    os.makedirs(out.path("bad_folder"))
    img.save(out.path("bad_folder/good.png"))
    out.write("bad_folder/zz_fake.png", b"not a png at all")


def preprocess_cases(out):
    import torch
    import torchvision.transforms as T

    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    imagenet = T.Compose([T.Resize(256, antialias=True), T.CenterCrop(224), norm])
    rgb = torch.from_numpy(pil_pixels(out.path("photo_rgb.png")))
    gray = torch.from_numpy(pil_pixels(out.path("photo_gray.png")))
    out.ref("imagenet_rgb.f32", imagenet(rgb).numpy())
    out.ref("imagenet_gray.f32", imagenet(gray.expand(3, -1, -1)).numpy())
    # 400 x 300 resizes to 341 x 256: CenterCrop's offset round(58.5) is 58
    # (Python rounds half to even), a case where rounding half up differs
    out.ref("imagenet_rgb400.f32", imagenet(rgb[:, :, :400]).numpy())
    # the common uint8 pipeline: read_image -> Resize (rounds to uint8) -> float
    u8 = torch.from_numpy(np.transpose(np.asarray(Image.open(out.path("photo_rgb.png"))),
                                       (2, 0, 1)).copy())
    u8 = T.CenterCrop(224)(T.Resize(256, antialias=True)(u8))
    out.ref("imagenet_rgb_u8.f32", norm(u8.float() / 255).numpy())
    # PIL pipeline: Resize on the PIL image (PIL's own antialiased bilinear)
    pil = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    out.ref("imagenet_rgb_pil.f32", pil(Image.open(out.path("photo_rgb.png"))).numpy())

    custom = T.Compose([T.Resize([48, 64], antialias=True),
                        T.Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))])
    out.ref("custom_rgb.f32", custom(rgb).numpy())
    small = rgb[:, 50:59, 60:73]  # 13 x 9: upscaling on both axes
    out.ref("custom_small.f32", T.Resize([31, 40], antialias=True)(small).numpy())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if Image is None:
        sys.exit("image_reference.py: PIL is missing; install python3-pil")
    out = Out(sys.argv[1])
    rgb, gray, source = photos()
    png_cases(out, rgb, gray)
    jpeg_cases(out, rgb, gray)
    failure_cases(out, rgb)
    idx_cases(out)
    folder_cases(out, rgb)
    preprocess_cases(out)
    with open(out.path("cases.txt"), "w") as f:
        f.write("\n".join(out.lines) + "\n")
    with open(out.path("photo_source.txt"), "w") as f:
        f.write(f"{source} {rgb.shape[1]}x{rgb.shape[0]} {gray.shape[1]}x{gray.shape[0]}\n")


if __name__ == "__main__":
    main()
