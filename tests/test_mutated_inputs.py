#!/usr/bin/python3
"""Mutated files never crash the CLI.

Takes one valid file of each kind evmap reads — an ONNX model
(models/fashion_cnn.onnx), the demo PNGs, a small JPEG made from a demo image,
a 20-image IDX slice of Fashion-MNIST (plain and gzip), a sampler file
fitted by evmap and the class-names file (models/fashion_mnist.labels) — mutates it with a fixed seed (bit flips, truncation, byte
insertions and deletions, chunk duplication, overwritten header fields) and
runs `evmap classify` (models, images, IDX, `--labels`) or `evmap explain
--sampler-file` (samplers) on every mutant. Each run must:
  - end normally (no signal) within the time limit;
  - exit 0 or 2; exit 1 (runtime failure) only for an out-of-memory message;
  - on exit 2, print exactly one line on stderr;
  - leave no temporary or partial file in the output folder (explain), and
    no output at all when it failed.
Sampler mutants get their checksum recomputed half of the time, PNG mutants
their chunk CRCs, so that mutations reach the checks behind them. Failing inputs are kept in
$BUILD/mutated-failures/ for replay.

Usage: test_mutated_inputs.py [--count N] [--seed S] [--kinds k1,k2]
The default is the issue's 1000 mutants per kind: about 55 s on two idle
cores (80 s with the ASan build); --count 200 for a quick run.
"""
import argparse
import concurrent.futures
import gzip
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
MODEL = "models/fashion_cnn.onnx"
DEMO = "data/demo"
T10K = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TIMEOUT = 120  # seconds per run; a hang fails

# ------------------------------------------------------------------ mutation


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def fix_png_crcs(data):
    """Recomputes the CRC of every whole chunk, so mutants pass libpng's CRC check."""
    out = bytearray(data)
    p = 8
    while p + 12 <= len(out):
        length = struct.unpack(">I", out[p:p + 4])[0]
        end = p + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[p + 4:end]) & 0xFFFFFFFF)
        p = end + 4
    return bytes(out)


def position(rng, n, head):
    """A byte position: half of them in the first `head` bytes (headers)."""
    if n == 0:
        return 0
    if head and rng.random() < 0.5:
        return rng.randrange(min(n, head))
    return rng.randrange(n)


def mutate_once(rng, data, head):
    """One random mutation of data (bytes); returns (bytes, description)."""
    n = len(data)
    op = rng.choice(["flip", "truncate", "insert", "delete", "duplicate", "overwrite"])
    if n == 0:
        op = "insert"
    if op == "flip":
        out = bytearray(data)
        flips = rng.randint(1, 8)
        for _ in range(flips):
            p = position(rng, n, head)
            out[p] ^= 1 << rng.randrange(8)
        return bytes(out), f"flip {flips} bits"
    if op == "truncate":
        cut = position(rng, n, head)
        return data[:cut], f"truncate to {cut}"
    if op == "insert":
        p = position(rng, n, head)
        k = rng.choice([1, 2, 4, 8, rng.randint(1, 256)])
        return data[:p] + bytes(rng.randrange(256) for _ in range(k)) + data[p:], f"insert {k} at {p}"
    if op == "delete":
        p = position(rng, n, head)
        k = min(n - p, rng.choice([1, 2, 4, 8, rng.randint(1, 4096)]))
        return data[:p] + data[p + k:], f"delete {k} at {p}"
    if op == "duplicate":
        p = position(rng, n, head)
        k = min(n - p, rng.randint(1, 4096))
        q = position(rng, n, head)
        return data[:q] + data[p:p + k] + data[q:], f"duplicate {k} from {p} to {q}"
    # overwrite: a header-sized field with an extreme value
    p = position(rng, n, head)
    width = rng.choice([1, 2, 4, 8])
    value = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                        0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF])
    field = (value & ((1 << (8 * width)) - 1)).to_bytes(width, rng.choice(["little", "big"]))
    out = bytearray(data)
    out[p:p + width] = field
    return bytes(out), f"overwrite {width} bytes at {p} with {value:#x}"


def mutate(rng, data, head):
    """One to three mutations in a row."""
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data, what = mutate_once(rng, data, head)
        steps.append(what)
    return data, "; ".join(steps)


# ------------------------------------------------------------------ the files


def make_bases(tmp):
    """Valid files of each kind: {kind: (bytes, file suffix, header bytes)}."""
    bases = {}
    with open(MODEL, "rb") as f:
        bases["onnx"] = (f.read(), ".onnx", 4096)
    pngs = sorted(p for p in os.listdir(DEMO) if p.endswith(".png"))
    bases["png"] = [(open(os.path.join(DEMO, p), "rb").read(), ".png", 256) for p in pngs]
    from PIL import Image
    jpeg = os.path.join(tmp, "base.jpg")
    Image.open(os.path.join(DEMO, pngs[0])).convert("L").save(jpeg, quality=85)
    bases["jpeg"] = (open(jpeg, "rb").read(), ".jpg", 1024)
    with gzip.open(T10K, "rb") as f:
        head = f.read(16)
        body = f.read(20 * 28 * 28)
    idx = struct.pack(">BBBBIII", 0, 0, 8, 3, 20, 28, 28) + body
    assert head[:4] == idx[:4]
    bases["idx"] = (idx, "-idx3-ubyte", 16)
    bases["idx.gz"] = (idx, "-idx3-ubyte.gz", 16)  # mutated, then compressed (or not)
    idx_gz = os.path.join(tmp, "base-idx3-ubyte.gz")
    with open(idx_gz, "wb") as f:
        f.write(gzip.compress(idx, mtime=0))
    sampler = os.path.join(tmp, "base.evms")
    subprocess.run([EVMAP, "fit-sampler", "--quiet", "--model", MODEL, "--window", "4",
                    "--pad", "2", "--patches", "2000", "-o", sampler, idx_gz], check=True)
    bases["sampler"] = (open(sampler, "rb").read(), ".evms", 64)
    bases["labels"] = (open("models/fashion_mnist.labels", "rb").read(), ".labels", 16)
    return bases


def command(kind, path, out_dir):
    if kind == "sampler":
        return [EVMAP, "explain", "--quiet", "--model", MODEL, "--out", out_dir,
                "--sampler-file", path, "--window", "4", "--pad", "2", "--samples", "2",
                "--stride", "6", "--threads", "1", os.path.join(DEMO, "0_tshirt.png")]
    if kind == "onnx":
        return [EVMAP, "classify", "--threads", "1", "--model", path,
                os.path.join(DEMO, "0_tshirt.png")]
    if kind == "labels":
        return [EVMAP, "classify", "--threads", "1", "--model", MODEL, "--labels", path,
                "--json", os.path.join(DEMO, "0_tshirt.png")]
    return [EVMAP, "classify", "--threads", "1", "--model", MODEL, path]


def check_run(kind, path, out_dir):
    """Runs one file; returns (exit code, None when the run behaved, else the reason)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        # strict decoding of stdout: the JSON must be UTF-8 whatever the labels hold
        r = subprocess.run(command(kind, path, out_dir), capture_output=True, timeout=TIMEOUT,
                           env=env)
        r.stderr = r.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return None, f"no answer within {TIMEOUT} s"
    problem = judge(r, out_dir)
    if problem is None and kind == "labels" and r.returncode == 0:
        problem = strict_json_lines(r.stdout)
    return r.returncode, problem


def strict_json_lines(out):
    """None when out (bytes) is UTF-8 and every line JSON (mutated labels end
    up in the output)."""
    try:
        for line in out.decode("utf-8").splitlines():
            json.loads(line)
    except ValueError as e:
        return f"output is not valid JSON: {e}"
    return None


def judge(r, out_dir):
    err = r.stderr
    lines = err.splitlines()
    if r.returncode < 0:
        return f"killed by signal {-r.returncode}: {err[-500:]!r}"
    if r.returncode == 1 and "out of memory" not in err:
        return f"exit 1 (runtime failure) on bad input: {err[-500:]!r}"
    if r.returncode not in (0, 1, 2):
        return f"exit {r.returncode}: {err[-500:]!r}"
    if r.returncode == 2 and (len(lines) != 1 or not lines[0].strip()):
        return f"exit 2 with {len(lines)} lines on stderr: {err[-500:]!r}"
    if os.path.isdir(out_dir):
        files = os.listdir(out_dir)
        partial = [f for f in files if ".tmp" in f]
        if partial:
            return f"partial files left: {partial}"
        if r.returncode != 0 and files:
            return f"exit {r.returncode} but output files were written: {files}"
    return None


def run_one(job):
    kind, index, data, suffix, what, work = job
    path = os.path.join(work, f"{kind.replace('.', '_')}_{index}{suffix}")
    out_dir = os.path.join(work, f"out_{kind.replace('.', '_')}_{index}")
    with open(path, "wb") as f:
        f.write(data)
    code, problem = check_run(kind, path, out_dir)
    if problem:
        keep = os.path.join(BUILD, "mutated-failures")
        os.makedirs(keep, exist_ok=True)
        shutil.copy(path, keep)
    os.remove(path)
    shutil.rmtree(out_dir, ignore_errors=True)
    return kind, index, what, code, problem


def jobs_for(kind, base, count, seed, work):
    rng = random.Random(f"{seed}-{kind}")
    choices = base if isinstance(base, list) else [base]
    for i in range(count):
        data, suffix, head = rng.choice(choices)
        data, what = mutate(rng, data, head)
        if kind == "idx.gz":
            if rng.random() < 0.5:
                data = gzip.compress(data, mtime=0)
            else:  # corrupt the compressed stream itself
                data, more = mutate(rng, gzip.compress(data, mtime=0), 32)
                what += "; gzip then " + more
        if kind == "png" and rng.random() < 0.5:
            data = fix_png_crcs(data)
            what += "; CRCs fixed"
        if kind == "sampler" and len(data) >= 52 and rng.random() < 0.5:
            data = data[:-8] + struct.pack("<Q", fnv1a(data[:-8]))
            what += "; checksum fixed"
        yield (kind, i, data, suffix, what, work)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("EVMAP_QUICK") == "1"  # the sanitized pass of make test
    ap.add_argument("--count", type=int, default=300 if quick else 1000,
                    help="mutants per kind (default 1000; 300 with EVMAP_QUICK=1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default="onnx,png,jpeg,idx,idx.gz,sampler,labels")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    passed = failed = 0
    for need in (EVMAP, MODEL, DEMO, T10K):
        if not os.path.exists(need):
            print(f"missing {need}; build evmap and check the data")
            print("0 passed, 1 failed")
            return 1
    with tempfile.TemporaryDirectory() as work:
        bases = make_bases(work)
        kinds = args.kinds.split(",")
        # The unmutated files must work, or the mutants test nothing.
        for kind in kinds:
            base = bases[kind][0] if isinstance(bases[kind], list) else bases[kind]
            data = gzip.compress(base[0], mtime=0) if kind == "idx.gz" else base[0]
            _, _, _, code, problem = run_one((kind, "base", data, base[1], "unmutated", work))
            if problem is None and code == 0:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {kind}: the unmutated file gives exit {code} ({problem})")
        results = {k: [] for k in kinds}
        all_jobs = [j for k in kinds for j in jobs_for(k, bases[k], args.count, args.seed, work)]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for kind, index, what, code, problem in pool.map(run_one, all_jobs):
                results[kind].append((index, what, problem, code))
        for kind in kinds:
            bad = [(i, w, p) for i, w, p, _ in results[kind] if p]
            n = len(results[kind])
            exits = {}
            for *_, code in results[kind]:
                exits[code] = exits.get(code, 0) + 1
            codes = f"{n} mutants, exit codes {dict(sorted(exits.items(), key=str))}"
            if bad:
                failed += 1
                print(f"FAIL {kind}: {len(bad)} misbehaved ({codes})")
                for i, w, p in bad[:10]:
                    print(f"  mutant {i} ({w}): {p}")
            else:
                passed += 1
                print(f"ok   {kind}: {codes}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
