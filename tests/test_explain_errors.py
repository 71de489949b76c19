#!/usr/bin/python3
"""Bad input to `evmap explain` and `evmap fit-sampler`: exit code 2, one clear
line on stderr, and nothing written into the output folder. Also checks that
the joint-channel conditional sampler runs on a 3-channel model, and that an
interrupted run (SIGINT) stops with a message and leaves no partial files.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_errors  # noqa: E402  (tiny model and PNG helpers)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
EVMAP = os.path.join(BUILD, "evmap")
CNN = os.path.join(ROOT, "models", "fashion_cnn.onnx")
BOOT = os.path.join(ROOT, "data", "demo", "9_ankle_boot.png")
TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def write_png_rgb(path, w, h, seed):
    import struct
    import zlib
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + pix[y].tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def outputs_in(folder):
    if not os.path.isdir(folder):
        return []
    return [f for f in os.listdir(folder) if not f.endswith(".evs")]


def main():
    tmp = tempfile.mkdtemp()
    p = lambda name: os.path.join(tmp, name)  # noqa: E731
    os.makedirs(p("refs2"))
    for i in range(2):
        test_errors.write_png_gray(p(f"refs2/r{i}.png"), 28, 28)
    onnx.save(test_errors.tiny_model(input_shape=(1, 3, 8, 8)), p("rgb8.onnx"))
    os.makedirs(p("rgbrefs"))
    for i in range(30):
        write_png_rgb(p(f"rgbrefs/r{i:02d}.png"), 8, 8, i)
    fit = [EVMAP, "fit-sampler", "--quiet"]
    subprocess.run(fit + ["--window", "3", "-o", p("k3.evs"), TRAIN], check=True)
    subprocess.run(fit + ["--window", "4", "--pad", "1", "-o", p("p1.evs"), TRAIN], check=True)
    subprocess.run(fit + ["--window", "4", "--mean", "0.5", "-o", p("mean.evs"), TRAIN],
                   check=True)
    subprocess.run(fit + ["--model", p("rgb8.onnx"), "--window", "2", "--pad", "1",
                          "--patches", "2000", "-o", p("rgb.evs"), p("rgbrefs")], check=True)

    base = ["explain", "--model", CNN, "--quiet"]
    cases = [
        ("sampler for another window", ["--sampler-file", p("k3.evs"), "--window", "4"],
         ["k3.evs", "window"]),
        ("sampler for another pad", ["--sampler-file", p("p1.evs"), "--pad", "2"], ["pad"]),
        ("sampler for other preprocessing", ["--sampler-file", p("mean.evs")], ["mean.evs"]),
        ("sampler for another channel count", ["--sampler-file", p("rgb.evs")], ["rgb.evs"]),
        ("fewer references than samples", ["--sampler", "marginal", "--reference", p("refs2"),
                                           "--samples", "10"], ["10", "2"]),
        ("conditional without references", [], ["--reference"]),
        ("window larger than the image", ["--sampler", "constant", "--window", "40"],
         ["40", "28"]),
        ("roi outside the image", ["--sampler", "constant", "--roi", "20,20,20,20"], ["--roi"]),
        ("class out of range", ["--sampler", "constant", "--class", "12"], ["12", "9"]),
        ("unknown layer", ["--sampler", "constant", "--target", "nope:0"], ["nope"]),
        ("channel out of range", ["--sampler", "constant", "--target",
                                  "/conv3/Conv_output_0:999"], ["999"]),
        ("bad stride", ["--sampler", "constant", "--stride", "0"], ["--stride"]),
        ("missing sampler file", ["--sampler-file", p("none.evs")], ["none.evs"]),
        ("corrupt sampler file", ["--sampler-file", BOOT], ["9_ankle_boot.png"]),
        # The forward plan at batch 16 fits in 20 MiB, its gradients do not.
        ("gradients over --max-memory", ["--method", "ig", "--max-memory", "20M"],
         ["backward pass", "--max-memory"]),
        ("PDA batch over --max-memory", ["--sampler", "constant", "--max-memory", "5M"],
         ["--batch", "--max-memory"]),
    ]
    passed = failed = 0

    def judge(desc, problems, detail):
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {desc}: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"ok   {desc}: {detail}")

    for i, (desc, args, words) in enumerate(cases):
        out = p(f"out{i}")
        r = subprocess.run([EVMAP, *base, "--out", out, *args, BOOT], capture_output=True,
                           text=True)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        problems = []
        if r.returncode != 2:
            problems.append(f"exit code {r.returncode}, expected 2")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr: {r.stderr!r}")
        missing = [w for w in words if w not in r.stderr]
        if missing:
            problems.append(f"message lacks {missing}: {r.stderr.strip()!r}")
        if outputs_in(out):
            problems.append(f"left files behind: {outputs_in(out)}")
        judge(desc, problems, lines[0] if lines else "")

    # Joint-channel conditional sampler on a 3-channel model.
    out = p("rgb_out")
    subprocess.run(fit + ["--model", p("rgb8.onnx"), "--window", "2", "--pad", "1",
                          "--joint-channels", "--patches", "2000", "-o", p("rgbj.evs"),
                          p("rgbrefs")], check=True)
    r = subprocess.run([EVMAP, "explain", "--model", p("rgb8.onnx"), "--quiet", "--out", out,
                        "--sampler-file", p("rgbj.evs"), p("rgbrefs/r00.png")],
                       capture_output=True, text=True)
    problems = [] if r.returncode == 0 else [f"exit {r.returncode}: {r.stderr.strip()}"]
    if not problems:
        m = np.load(os.path.join(out, [f for f in outputs_in(out) if f.endswith(".npy")][0]))
        if m.shape != (8, 8) or not np.isfinite(m).all():
            problems.append(f"map shape {m.shape}, finite {np.isfinite(m).all()}")
    judge("joint-channel sampler on a 3-channel model", problems, "8x8 finite map")

    # Ctrl-C: stops with a message, exit 130, no partial files. The signal
    # goes once the first progress line (10 % of the windows) shows that the
    # run is under way with its handler installed, not after a fixed sleep;
    # it must then stop within one batch, long before the other 90 %, which
    # take a minute or more: STOP_BOUND is generous for a loaded machine.
    STOP_BOUND = 30.0
    out = p("interrupted")
    proc = subprocess.Popen([EVMAP, "explain", "--model", CNN, "--out", out, "--sampler",
                             "marginal", "--reference", TRAIN, "--samples", "200", BOOT],
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "% (" in line:  # "9_ankle_boot: 10% (63/625 windows, ...)"
            break
    problems = []
    if not seen or "% (" not in seen[-1]:
        problems.append(f"no progress line before the run ended: {''.join(seen)[-200:]!r}")
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        _, rest = proc.communicate(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, rest = proc.communicate()
    waited = time.monotonic() - t0
    err = "".join(seen) + (rest or "")
    if proc.returncode != 130:
        problems.append(f"exit {proc.returncode}, expected 130")
    if waited >= STOP_BOUND:
        problems.append(f"still running {waited:.1f} s after SIGINT")
    if "interrupted" not in err:
        problems.append(f"no message: {err[-200:]!r}")
    if outputs_in(out):
        problems.append(f"left files behind: {outputs_in(out)}")
    judge("Ctrl-C", problems, f"stopped {waited:.1f} s after SIGINT with exit 130, no files")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
