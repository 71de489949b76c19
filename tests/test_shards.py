#!/usr/bin/python3
"""`evmap explain --shard I/N` (issue 21, first step): N runs over the same
images with --shard 0/N .. N-1/N write, together, exactly the files of one
run without it, byte for byte (maps, pictures), for a gradient method,
exact PDA and the efficient method on the ten demo images; each shard
explains the images i with i mod N = I; a bad --shard is one line and
exit 2.
"""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "fashion_cnn.onnx")
DEMO = os.path.join(ROOT, "data", "demo")

passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


def explain(out, method_args, *extra):
    return subprocess.run([EVMAP, "explain", "--model", MODEL, "--out", out, "--quiet",
                           *method_args, *extra, DEMO], capture_output=True, text=True)


def outputs(folder):
    """{file name: bytes} of the maps and pictures (JSON records timings)."""
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))
            if f.endswith((".npy", ".png"))}


def main():
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(DEMO) if f.endswith(".png"))
    with tempfile.TemporaryDirectory() as tmp:
        sampler = os.path.join(tmp, "k4.evs")
        subprocess.run([EVMAP, "fit-sampler", "--model", MODEL, "--window", "4", "--patches",
                        "2000", "-o", sampler, DEMO], check=True, capture_output=True)
        methods = [("saliency", ["--method", "saliency"]),
                   ("pda", ["--method", "pda", "--sampler-file", sampler, "--samples", "3"]),
                   ("efficient", ["--method", "efficient", "--sampler-file", sampler,
                                  "--samples", "3"])]
        for name, args in methods:
            full = os.path.join(tmp, name + "-full")
            parts = os.path.join(tmp, name + "-parts")
            r = explain(full, args)
            ok = r.returncode == 0
            for i in range(3):
                shard = os.path.join(tmp, f"{name}-shard{i}")
                r = explain(shard, args, "--shard", f"{i}/3")
                ok = ok and r.returncode == 0
                got = sorted({f.split(".")[0] for f in os.listdir(shard) if f.endswith(".npy")})
                report(r.returncode == 0 and got == stems[i::3],
                       f"{name} --shard {i}/3 explains images {i}, {i + 3}, ... ({got})")
                r = explain(parts, args, "--shard", f"{i}/3")
            want, have = outputs(full), outputs(parts)
            report(ok and want and want == have,
                   f"{name}: shards 0/3, 1/3, 2/3 together = one run, byte for byte "
                   f"({len(have)} of {len(want)} files)")
        for bad in ("3/3", "1/0", "-1/2", "a/b", "1"):
            r = explain(os.path.join(tmp, "bad"), ["--method", "saliency"], "--shard", bad)
            lines = r.stderr.strip().splitlines()
            report(r.returncode == 2 and len(lines) == 1 and "--shard" in lines[0],
                   f"--shard {bad}: exit {r.returncode}, {lines}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
