#!/usr/bin/python3
"""Resumable, deterministic explain runs and their index (issue 21).

On 12 Fashion-MNIST test images (t10k, written as PNG files; 6 under
EVMAP_QUICK=1, with only the efficient method and saliency in part 1) and
the shipped fashion_cnn model:
  1. determinism: every map (NPY) and picture (PNG) of a run with one
     thread equals, byte for byte, those of three --shard runs into one
     folder with two threads, for exact PDA, the efficient method,
     saliency, integrated gradients and SmoothGrad; for PDA and the
     efficient method batch 7 agrees with batch 16 within 1e-5 of the map's
     range (BLAS sums in an order that follows the matrix shapes, so --batch
     may change the last bits; gradient maps may jump at a kink instead);
  2. SIGKILL and --resume: an efficient run killed while it writes (once a
     quarter of the images have their JSON), then rerun with --resume, ends
     with exactly the uninterrupted run's files and no temporary file; a
     second --resume skips every image;
  3. evmap index: complete after the resumed run (exit 0, one CSV row and
     one JSON entry per image, classes, probabilities and seconds equal to
     the images' JSON); with shard 1 of 3 never run, exit 1 and exactly its
     images, by name, missing, a torn last line in a part skipped; a folder
     without parts, exit 2 with one line and nothing written;
  4. what --resume redoes: nothing for another --threads or the same
     sampler file under another name; exactly the images with a corrupted
     JSON, a truncated NPY or a deleted PNG; every image for another sampler
     file, --seed or --batch;
  5. evmap evaluate --shard I/N in three runs, then --merge: the table,
     evaluate.json (every number but the timings) and evaluate.csv equal a
     single run's; a missing shard is one line and exit 2 naming it;
     --shard without --out is a usage error.
Prints one "ok"/"FAIL" line per check and "N passed, N failed".
"""
import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "fashion_cnn.onnx")
T10K = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
QUICK = os.environ.get("EVMAP_QUICK") == "1"  # the sanitized pass of make test
N_IMAGES = 6 if QUICK else 12

passed = failed = 0


def report(ok, what, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + str(detail)}"[:3000],
          flush=True)


def write_images(folder):
    """The first N_IMAGES t10k images as 8-bit PNG files."""
    with gzip.open(T10K, "rb") as f:
        data = f.read()
    pixels = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)
    os.makedirs(folder)
    for i in range(N_IMAGES):
        Image.fromarray(pixels[i]).save(os.path.join(folder, f"t{i:03d}.png"))


def explain(images, out, args, *extra, check=True):
    r = subprocess.run([EVMAP, "explain", "--model", MODEL, "--out", out, "--quiet", *args,
                        *extra, images], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise RuntimeError(f"explain {args} {extra}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def outputs(folder):
    """{name: bytes} of the maps and pictures."""
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))
            if f.endswith((".npy", ".png"))}


def json_names(folder, method):
    return sorted(f for f in os.listdir(folder) if f.endswith(f".{method}.json"))


def determinism(tmp, images, methods):
    for name, args in methods:
        one = os.path.join(tmp, f"det-{name}-one")
        explain(images, one, args, "--threads", "1", "--batch", "16")
        sharded = os.path.join(tmp, f"det-{name}-sharded")
        for i in range(3):
            explain(images, sharded, args, "--threads", "2", "--batch", "16", "--shard", f"{i}/3")
        a, b = outputs(one), outputs(sharded)
        same = sorted(a) == sorted(b) and all(a[f] == b[f] for f in a)
        differ = [f for f in a if f in b and a[f] != b[f]][:3]
        report(len(a) == 3 * N_IMAGES and same,
               f"{name}: one run with 1 thread = 3 shards with 2 threads, byte for byte "
               f"({len(a)} files)", f"{len(a)} vs {len(b)} files; differ: {differ}")
        # Another batch size may change the last bits (BLAS summation order
        # follows the matrix shapes), never more: for maps built from forward
        # passes only. A gradient jumps where a Relu input within rounding of
        # 0 changes side, which another CPU's kernels may do at any batch.
        if name not in ("pda", "efficient"):
            continue
        seven = os.path.join(tmp, f"det-{name}-batch7")
        explain(images, seven, args, "--threads", "2", "--batch", "7")
        worst = 0.0
        for f in a:
            if f.endswith(".npy"):
                x = np.load(os.path.join(one, f))
                y = np.load(os.path.join(seven, f))
                worst = max(worst, float(np.nanmax(np.abs(x - y)) / max(np.nanmax(np.abs(x)),
                                                                          1e-30)))
        report(worst <= 1e-5, f"{name}: batch 7 = batch 16 within 1e-5 of the map's range "
               f"(worst {worst:.1e})", worst)


def kill_and_resume(tmp, images, args):
    """An efficient run killed with SIGKILL part way, then --resume."""
    full = os.path.join(tmp, "full")
    explain(images, full, args)
    killed = os.path.join(tmp, "killed")
    cmd = [EVMAP, "explain", "--model", MODEL, "--out", killed, "--quiet", "--threads", "1",
           *args, images]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if os.path.isdir(killed) and len(json_names(killed, "efficient")) >= N_IMAGES // 4:
            break
        time.sleep(0.001)
    running = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = len(json_names(killed, "efficient"))
    report(running and before < N_IMAGES,
           f"the run was killed part way ({before} of {N_IMAGES} images had their JSON)",
           f"still running: {running}")
    r = explain(images, killed, args, "--resume", check=False)
    a, b = outputs(full), outputs(killed)
    left = [f for f in os.listdir(killed) if ".tmp." in f]
    report(r.returncode == 0 and sorted(a) == sorted(b) and all(a[f] == b[f] for f in a)
           and not left and len(json_names(killed, "efficient")) == N_IMAGES,
           "killed with SIGKILL, then --resume: exactly the uninterrupted run's files, no "
           "temporary file left", f"exit {r.returncode} {r.stderr.strip()}; files {len(a)} vs "
           f"{len(b)}; left {left}")
    r = subprocess.run([EVMAP, "explain", "--model", MODEL, "--out", killed, *args, "--resume",
                        images], capture_output=True, text=True)
    report(r.returncode == 0 and f"{N_IMAGES} image(s) already complete" in r.stderr
           and "wrote 0 image(s)" in r.stderr, "a second --resume skips every image", r.stderr)
    return killed


def redone(out, images, args, *extra):
    """How many images a --resume run explained again (its closing line)."""
    r = subprocess.run([EVMAP, "explain", "--model", MODEL, "--out", out, *args, "--resume",
                        *extra, images], capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if line.startswith("evmap: wrote "):
            return int(line.split()[2])
    return f"exit {r.returncode}: {r.stderr.strip()}"


def what_resume_redoes(tmp, out, images, args, sampler):
    n = redone(out, images, args, "--threads", "2")
    report(n == 0, "--resume with another --threads redoes nothing", n)
    files = sorted(os.listdir(out))
    victims = ["t001.efficient.json"] + [
        next((f for f in files if f.startswith(stem) and f.endswith(ext)), stem + ext)
        for stem, ext in (("t003.efficient.c", ".npy"), ("t005.efficient.c", ".png"))]
    missing = [v for v in victims if not os.path.exists(os.path.join(out, v))]
    if not missing:
        with open(os.path.join(out, victims[0]), "r+b") as f:
            f.truncate(40)
        with open(os.path.join(out, victims[1]), "r+b") as f:
            f.truncate(200)
        os.remove(os.path.join(out, victims[2]))
    n = redone(out, images, args)
    report(not missing and n == 3, "--resume redoes exactly the images with a corrupted JSON, a "
           "truncated NPY and a deleted PNG", f"{n} redone; names not found: {missing}")
    copy = os.path.join(tmp, "k4-copy.evs")
    open(copy, "wb").write(open(sampler, "rb").read())
    changed = [a if a != sampler else copy for a in args]
    n = redone(out, images, changed)
    report(n == 0, "--resume with the same sampler under another name redoes nothing", n)
    other = os.path.join(tmp, "k4-other.evs")
    subprocess.run([EVMAP, "fit-sampler", "--model", MODEL, "--window", "4", "--patches",
                    "1500", "-o", other, images], check=True, capture_output=True)
    n = redone(out, images, [a if a != sampler else other for a in args])
    report(n == N_IMAGES, "--resume with another sampler file redoes every image", n)
    n = redone(out, images, args, "--seed", "5")
    report(n == N_IMAGES, "--resume with another --seed redoes every image", n)
    n = redone(out, images, args, "--batch", "5")
    report(n == N_IMAGES, "--resume with another --batch redoes every image", n)


def read_index(out):
    with open(os.path.join(out, "index.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(out, "index.json")) as f:
        doc = json.load(f)
    return rows, doc


def index_checks(tmp, out, images, args):
    r = subprocess.run([EVMAP, "index", out], capture_output=True, text=True)
    rows, doc = read_index(out)
    want = {}
    for name in json_names(out, "efficient"):
        d = json.load(open(os.path.join(out, name)))
        want[d["stem"]] = (d["classes"][0]["class"], d["classes"][0]["prob"], d["seconds"])
    got = {row["stem"]: (int(row["class"]), float(row["prob"]), float(row["seconds"]))
           for row in rows if row["status"] == "done"}
    close = sorted(got) == sorted(want) and all(
        got[k][0] == want[k][0] and abs(got[k][1] - want[k][1]) <= 1e-8 * max(1, want[k][1])
        and abs(got[k][2] - want[k][2]) <= 1e-5 * max(1, want[k][2]) for k in want)
    report(r.returncode == 0 and len(rows) == N_IMAGES and close and doc["complete"]
           and doc["methods"][0]["done"] == N_IMAGES and len(doc["images"]) == N_IMAGES,
           "evmap index on the resumed run: complete, one row per image, classes, "
           "probabilities and seconds = the images' JSON", f"exit {r.returncode} "
           f"{r.stderr.strip()}; {len(rows)} rows; {sorted(set(want) ^ set(got))[:4]}")
    # Shards 0 and 2 of 3 ran, shard 1 never did.
    part = os.path.join(tmp, "partial")
    for i in (0, 2):
        explain(images, part, args, "--shard", f"{i}/3")
    with open(os.path.join(part, "index-efficient.part-0-of-3.jsonl"), "a") as f:
        f.write('{"index": 3, "stem": "t003", "sta')  # a line torn by a kill
    r = subprocess.run([EVMAP, "index", part], capture_output=True, text=True)
    rows, doc = read_index(part)
    missing = sorted(row["stem"] for row in rows if row["status"] == "missing")
    report(r.returncode == 1 and missing == [f"t{i:03d}" for i in range(1, N_IMAGES, 3)]
           and not doc["complete"] and doc["methods"][0]["missing"] == N_IMAGES // 3
           and "missing" in r.stderr,
           "evmap index with shard 1/3 never run: exit 1, exactly its images missing, a torn "
           "line skipped", f"exit {r.returncode} {r.stderr.strip()}; missing {missing}")
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    r = subprocess.run([EVMAP, "index", empty], capture_output=True, text=True)
    report(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
           and not os.path.exists(os.path.join(empty, "index.csv")),
           "evmap index on a folder without parts: one line, exit 2, nothing written",
           f"exit {r.returncode}: {r.stderr.strip()}")


def same_json(a, b, path=""):
    """Paths where two evaluate.json documents differ, timings and the
    command's --out aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a if k != "command" for d in same_json(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same_json(x, y, f"{path}[{i}]")]
    return [] if a == b or "seconds" in path else [f"{path}: {a} vs {b}"]


def evaluate_shards(tmp, images, sampler):
    args = [EVMAP, "evaluate", "--model", MODEL, "--methods", "saliency,efficient",
            "--sampler-file", sampler, "--pda-samples", "4", "--steps", "10",
            "--sensitivity-samples", "3", "--quiet", images]
    one, parts = os.path.join(tmp, "eval-one"), os.path.join(tmp, "eval-parts")
    single = subprocess.run(args + ["--out", one], capture_output=True, text=True)
    ok = single.returncode == 0
    for i in range(3):
        r = subprocess.run(args + ["--out", parts, "--shard", f"{i}/3"], capture_output=True,
                           text=True)
        ok = ok and r.returncode == 0
    r = subprocess.run([EVMAP, "evaluate", "--merge", parts], capture_output=True, text=True)
    ok = ok and r.returncode == 0
    if not ok:
        report(False, "evaluate --shard and --merge ran", f"{single.stderr} {r.stderr}")
        return

    def table(text):  # the seconds/image column varies from run to run
        return [line.rsplit("  ", 2)[0] if "±" in line else line for line in text.splitlines()
                if "seconds" not in line]
    a = json.load(open(os.path.join(one, "evaluate.json")))
    b = json.load(open(os.path.join(parts, "evaluate.json")))
    differ = same_json(a, b)
    rows = [list(csv.reader(open(os.path.join(d, "evaluate.csv")))) for d in (one, parts)]
    seconds = [i for i, h in enumerate(rows[0][0]) if h.startswith("seconds")]
    strip = [[[c for i, c in enumerate(row) if i not in seconds] for row in t] for t in rows]
    report(not differ and strip[0] == strip[1] and a["images"] == N_IMAGES
           and table(single.stdout) == table(r.stdout),
           f"evaluate: 3 shards merged = one run ({a['images']} images; table, evaluate.json "
           "and evaluate.csv but timings)", differ[:5])
    os.remove(os.path.join(parts, "evaluate.part-1-of-3.json"))
    r = subprocess.run([EVMAP, "evaluate", "--merge", parts], capture_output=True, text=True)
    report(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
           and "shard 1/3 is missing" in r.stderr,
           "evaluate --merge without shard 1/3: one line naming it, exit 2", r.stderr)
    r = subprocess.run(args[:-1] + ["--shard", "0/2", images], capture_output=True, text=True)
    report(r.returncode == 2 and "--out" in r.stderr, "evaluate --shard without --out: usage "
           "error", r.stderr)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        images = os.path.join(tmp, "images")
        write_images(images)
        sampler = os.path.join(tmp, "k4.evs")
        subprocess.run([EVMAP, "fit-sampler", "--model", MODEL, "--window", "4", "--patches",
                        "2000", "-o", sampler, images], check=True, capture_output=True)
        pda = ["--method", "pda", "--sampler-file", sampler, "--samples", "3"]
        efficient = ["--method", "efficient", "--sampler-file", sampler, "--samples", "4"]
        methods = [("pda", pda), ("efficient", efficient), ("saliency", ["--method", "saliency"]),
                   ("ig", ["--method", "ig", "--steps", "20"]),
                   ("smoothgrad", ["--method", "smoothgrad", "--samples", "20"])]
        determinism(tmp, images, methods[1:3] if QUICK else methods)
        out = kill_and_resume(tmp, images, efficient)
        index_checks(tmp, out, images, efficient)
        what_resume_redoes(tmp, out, images, efficient, sampler)
        evaluate_shards(tmp, images, sampler)
        print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
