#!/usr/bin/python3
"""The Python package (issue 20), tested as installed: `make install
DESTDIR=<temporary folder>`, then `import evmap` in a child interpreter run
from another folder with only that folder on its path (the suite never
touches the machine's /usr/local); `make uninstall` removes every file.

In the child, on fashion_cnn and a demo image:
1. classify equals `evmap classify --json` (printed with 9 digits: float32
   exactly);
2. explain equals the CLI's NPY file bit for bit for every method (pda and
   efficient with a sampler file from `evmap fit-sampler`, occlusion, the
   gradient family), the same options on both sides;
3. a torch.nn.Module (the Fashion CNN rebuilt in PyTorch from the ONNX
   file's weights) gives the ONNX file's saliency map and probabilities;
4. bad input raises ValueError / OSError / MemoryError with evmap's message;
5. a progress callback raising KeyboardInterrupt cancels with
   KeyboardInterrupt, and the next call gives the uncancelled result;
6. two threads explaining with two models give the results of one after the
   other;
7. Model.evaluate gives evmap evaluate's numbers (curves, AUCs, AOPC,
   max-sensitivity and, against masks, the localisation metrics);
and docs/python.md's worked example runs verbatim.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
BUILD = os.environ.get("BUILD", "build")
PYTHON = "/usr/bin/python3"
MODEL = os.path.abspath(os.path.join(ROOT, "models", "fashion_cnn.onnx"))
IMAGE = os.path.abspath(os.path.join(ROOT, "data", "demo", "9_ankle_boot.png"))
CLS = 9

passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)


# ------------------------------------------------------------ the child side

def cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # see sanitizer_env
    return subprocess.run([os.environ["EVMAP_CLI"], *args], check=True, capture_output=True,
                          text=True, env=env)


def cli_map(tmp, method, *extra):
    out = os.path.join(tmp, method)
    cli("explain", "--model", MODEL, "--out", out, "--method", method, "--class", str(CLS),
        "--quiet", *extra, IMAGE)
    import numpy as np
    return np.load(os.path.join(out, f"9_ankle_boot.{method}.c{CLS}.npy"))


def child():
    import numpy as np
    import evmap
    report(os.path.dirname(evmap.__file__).startswith(os.environ["EVMAP_SITE"]),
           f"evmap imported from the installed copy ({evmap.__file__})")
    model = evmap.Model(MODEL)
    probs = model.classify(IMAGE)
    line = json.loads(cli("classify", "--model", MODEL, "--json", IMAGE).stdout)
    report(np.array_equal(probs[0], np.asarray(line["probs"], np.float32)),
           "classify = evmap classify --json, exactly")

    with tempfile.TemporaryDirectory() as tmp:
        sampler_file = os.path.join(tmp, "s.evs")
        cli("fit-sampler", "--model", MODEL, "--window", "4", "--patches", "2000", "-o",
            sampler_file, os.path.join(ROOT, "data", "demo"))
        sampler = evmap.Sampler.load(sampler_file)
        coarse_file = os.path.join(tmp, "s8.evs")
        cli("fit-sampler", "--model", MODEL, "--window", "8", "--patches", "2000", "-o",
            coarse_file, os.path.join(ROOT, "data", "demo"))
        refs = model.prepare(sorted(os.path.join(ROOT, "data", "demo", f)
                                    for f in os.listdir(os.path.join(ROOT, "data", "demo"))))
        marginal = evmap.Sampler.marginal(refs[:3], 4)
        cases = [
            ("saliency", [], {}),
            ("gradxinput", [], {}),
            ("ig", ["--steps", "8"], {"steps": 8}),
            ("smoothgrad", ["--samples", "4", "--seed", "3"], {"smoothgrad_samples": 4, "seed": 3}),
            ("gradcam", [], {}),
            ("guided", [], {}),
            ("occlusion", ["--window", "4"], {"window": 4}),
            ("pda", ["--sampler-file", sampler_file, "--samples", "3", "--seed", "5"],
             {"sampler": sampler, "samples": 3, "seed": 5}),
            ("efficient", ["--sampler-file", sampler_file, "--samples", "3", "--seed", "5"],
             {"sampler": sampler, "samples": 3, "seed": 5}),
            ("efficient", ["--sampler-file", sampler_file, "--samples", "3", "--refine", "0.5",
                           "--coarse-sampler-file", coarse_file],
             {"sampler": sampler, "samples": 3, "refine": 0.5,
              "coarse_sampler": evmap.Sampler.load(coarse_file)}),
            ("pda", ["--sampler", "marginal", "--reference", os.path.join(ROOT, "data", "demo"),
                     "--samples", "3", "--window", "4"],
             {"sampler": marginal, "samples": 3}),
        ]
        for method, args, kw in cases:
            want = cli_map(tmp, method, *args)
            got = model.explain(IMAGE, method, classes=[CLS], progress=False, **kw).maps[0, 0]
            same = got.shape == want.shape and np.array_equal(got, want, equal_nan=True)
            report(same, f"explain {method} {' '.join(args[2:] if args else [])} = the CLI's "
                   f"NPY bit for bit "
                   f"(max |diff| {np.nanmax(np.abs(got - want)) if got.shape == want.shape else '?'})")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t")
        cli("explain", "--model", MODEL, "--out", out, "--method", "saliency", "--target",
            "/Relu_3_output_0:5", "--quiet", IMAGE)
        npy = [f for f in os.listdir(out) if f.endswith(".npy")]
        want = np.load(os.path.join(out, npy[0])) if len(npy) == 1 else None
        got = model.explain(IMAGE, "saliency", target="/Relu_3_output_0:5", progress=False).maps
        report(want is not None and np.array_equal(got[0, 0], want, equal_nan=True),
               f"a hidden-unit target (target='LAYER:CH') = the CLI's --target ({npy})")

    evaluate_checks(evmap, np)

    import torch
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import fashion_models
    module = fashion_models.torch_model_from_onnx(MODEL)
    from_module = evmap.Model(module, torch.zeros(1, 1, 28, 28))
    a = from_module.explain(IMAGE, "saliency", classes=[CLS], progress=False).maps
    b = model.explain(IMAGE, "saliency", classes=[CLS], progress=False).maps
    pa, pb = from_module.classify(IMAGE), model.classify(IMAGE)
    e = float(np.abs(a - b).max() / np.abs(b).max())
    report(e <= 1e-5 and float(np.abs(pa - pb).max()) <= 1e-6,
           f"a torch.nn.Module gives its ONNX file's saliency ({e:.1e}) and probabilities")

    def raises(kind, fn, what, text=""):
        try:
            fn()
        except kind as exc:
            report(text in str(exc), f"{what}: {kind.__name__}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the wrong kind is the failure
            report(False, f"{what}: {type(exc).__name__} instead of {kind.__name__}: {exc}")
            return
        report(False, f"{what}: no exception")

    raises(OSError, lambda: evmap.Model("/nonexistent/model.onnx"), "a missing model file",
           "nonexistent")
    raises(ValueError, lambda: model.explain(IMAGE, "saliency", classes=[12]),
           "a class out of range", "out of range")
    raises(ValueError, lambda: model.classify(np.zeros((1, 3, 5, 5), np.float32)),
           "a float array of the wrong shape", "(1, 28, 28)")
    raises(ValueError, lambda: model.explain(IMAGE, "pda"), "pda without a sampler", "sampler")
    raises(ValueError, lambda: model.explain(IMAGE, "nosuch"), "an unknown method", "unknown")
    raises(MemoryError, lambda: evmap.Model(MODEL, max_memory=100000), "--max-memory's refusal",
           "memory limit")

    def cancel(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    kw = {"sampler": sampler, "samples": 3, "seed": 5, "classes": [CLS]}
    raises(KeyboardInterrupt, lambda: model.explain(IMAGE, "pda", progress=cancel, **kw),
           "Ctrl-C in the progress callback")
    again = model.explain(IMAGE, "pda", progress=False, **kw).maps
    ref = evmap.Model(MODEL).explain(IMAGE, "pda", progress=False, **kw).maps
    report(np.array_equal(again, ref, equal_nan=True),
           "after a cancelled run the same model gives the uncancelled map")

    models = [evmap.Model(MODEL, threads=1), evmap.Model(MODEL, threads=1)]
    seq = [m.explain(IMAGE, "pda", progress=False, **kw).maps for m in models]
    par = [None, None]

    def run(i):
        par[i] = models[i].explain(IMAGE, "pda", progress=False, **kw).maps

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report(all(p is not None and np.array_equal(p, s, equal_nan=True) for p, s in zip(par, seq)),
           "two threads with two models = one after the other")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def evaluate_checks(evmap, np):
    """Model.evaluate against `evmap evaluate`'s evaluate.json: the demo
    images on fashion_cnn, and two scenes with their masks (localisation)."""
    from PIL import Image
    demo = os.path.join(ROOT, "data", "demo")
    scenes = os.path.join(ROOT, "data", "scenes")
    cases = [
        ("fashion_cnn", MODEL, [], {}, demo, None, ["saliency", "occlusion"]),
        ("scenes_cnn", os.path.join(ROOT, "models", "scenes_cnn.onnx"),
         ["--preprocess", "imagenet", "--size", "224x224"],
         {"preprocess": "imagenet", "size": (224, 224)}, scenes, ["00000_ankle_boot",
                                                               "00011_sandal"], ["gradcam"]),
    ]
    for name, path, pre_args, pre_kw, folder, stems, methods in cases:
        with tempfile.TemporaryDirectory() as tmp:
            data, masks = folder, None
            if stems:
                data = os.path.join(tmp, "images")
                os.makedirs(data)
                os.makedirs(os.path.join(tmp, "masks"))
                for s in stems:
                    os.symlink(os.path.join(folder, "images", s + ".png"),
                               os.path.join(data, s + ".png"))
                    os.symlink(os.path.join(folder, "masks", s + ".png"),
                               os.path.join(tmp, "masks", s + ".png"))
                masks = np.stack([np.asarray(Image.open(os.path.join(folder, "masks", s + ".png"))
                                             .convert("L")) > 127 for s in stems])
            extra = ["--masks", os.path.join(tmp, "masks")] if stems else []
            cli("evaluate", "--model", path, *pre_args, "--methods", ",".join(methods),
                "--data", data, "--steps", "6", "--out", os.path.join(tmp, "out"), "--quiet",
                *extra)
            with open(os.path.join(tmp, "out", "evaluate.json")) as f:
                want = json.load(f)
            files = sorted(os.path.join(data, f) for f in os.listdir(data))
            got = evmap.Model(path, **pre_kw).evaluate(files, methods, steps=6, masks=masks)
            worst, checked = 0.0, 0
            for a, b in zip(got["per_image"], want["per_image"]):
                for m in methods:
                    for k, v in b["methods"][m].items():
                        if k == "seconds" or v is None:
                            continue
                        u = a["methods"][m][k]
                        pairs = zip(u, v) if isinstance(v, list) else [(u, v)]
                        for x, y in pairs:
                            worst = max(worst, abs(x - y) / max(1.0, abs(y)))
                            checked += 1
            report(len(got["per_image"]) == len(want["per_image"]) and worst <= 1e-7,
                   f"evaluate on {name} ({', '.join(methods)}) = evmap evaluate's JSON: "
                   f"{checked} numbers, max relative difference {worst:.1e} (the JSON's 9 digits)")


# ----------------------------------------------------------- the parent side

def docs_example(env):
    """docs/python.md's worked example, verbatim, in a folder that has the
    repository's models/ and data/ (it writes a sampler file there)."""
    with open(os.path.join(ROOT, "docs", "python.md")) as f:
        text = f.read()
    start = text.index("```python\n") + len("```python\n")
    code = text[start:text.index("```", start)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("models", "data"):
            os.symlink(os.path.abspath(os.path.join(ROOT, name)), os.path.join(tmp, name))
        r = subprocess.run([PYTHON, "-c", code], cwd=tmp, env=env, capture_output=True,
                           text=True)
    report(r.returncode == 0 and "top class: 9" in r.stdout and "efficient:" in r.stdout,
           f"docs/python.md's worked example runs verbatim (exit {r.returncode}"
           f"{', ' + r.stderr.strip()[-300:] if r.returncode else ''})")


def sanitizer_env(library):
    """A library built with AddressSanitizer (make asan) needs the runtime
    loaded first: preload clang's shared one into the interpreter (leak
    reports off: the interpreter itself keeps memory at exit). The CLI's
    sanitized executables carry their own runtime and run without it."""
    nm = subprocess.run(["nm", "-D", "--undefined-only", library], capture_output=True,
                        text=True)
    if "__asan_init" not in nm.stdout:
        return {}
    rt = subprocess.run(["clang", "-print-file-name=libclang_rt.asan-x86_64.so"],
                        capture_output=True, text=True).stdout.strip()
    return {"LD_PRELOAD": rt, "ASAN_OPTIONS": "detect_leaks=0"}


def installed_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def main():
    global passed, failed
    with tempfile.TemporaryDirectory() as dest:
        r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, f"BUILD={BUILD}",
                            f"DESTDIR={dest}", "install"], capture_output=True, text=True)
        files = installed_files(dest)
        names = {os.path.relpath(f, dest) for f in files}
        site = [os.path.dirname(os.path.dirname(f)) for f in files if f.endswith("evmap/_lib.py")]
        want = {"usr/local/bin/evmap", "usr/local/lib/libevmap.so", "usr/local/lib/libevmap.a",
                "usr/local/include/evmap.h", "usr/local/lib/pkgconfig/evmap.pc"}
        report(r.returncode == 0 and want <= names and site,
               f"make install DESTDIR=...: {len(files)} files ({r.stderr.strip()[-200:]})")
        if r.returncode != 0 or not site:
            print(f"{passed} passed, {failed} failed")
            sys.exit(1)
        library = os.path.join(dest, "usr/local/lib/libevmap.so")
        env = dict(os.environ, PYTHONPATH=site[0], EVMAP_SITE=site[0], EVMAP_LIBRARY=library,
                   EVMAP_CLI=os.path.abspath(os.path.join(BUILD, "evmap")),
                   **sanitizer_env(library))
        with tempfile.TemporaryDirectory() as elsewhere:
            c = subprocess.run([PYTHON, os.path.abspath(__file__), "--child"], cwd=elsewhere,
                               env=env, capture_output=True, text=True)
        print(c.stdout, end="")
        if c.returncode != 0 and "passed" not in c.stdout:
            report(False, f"the child interpreter failed: {c.stderr.strip()[-600:]}")
        for line in c.stdout.splitlines():
            if line.startswith("ok  "):
                passed += 1
            elif line.startswith("FAIL"):
                failed += 1
        docs_example(env)
        r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, f"BUILD={BUILD}",
                            f"DESTDIR={dest}", "uninstall"], capture_output=True, text=True)
        left = installed_files(dest)
        report(r.returncode == 0 and not left,
               f"make uninstall removes every installed file (left: {left[:5]})")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
