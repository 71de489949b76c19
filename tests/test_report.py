#!/usr/bin/python3
"""`evmap report` (issue 22) in a real browser: headless Chromium (Debian's
chromium, from scripts/install-deps).

A run of the shipped fashion_cnn model on four demo images (saliency, and
the efficient method for the top two classes) and an `evmap evaluate` into
the same folder become one report. Loaded from disk with no network:
  - the DOM (--dump-dom) has a card for every image, a figure for every map
    with its method and class, the input picture, the image table and the
    evaluation table with every method;
  - the value read out under a pixel (#probe=STEM|MAP|X|Y, which calls the
    pointer's read-out code) equals the NPY file's value there, for every
    map of two images at three pixels each (one under EVMAP_QUICK=1);
  - #sort=prob:desc orders the table by the probabilities of the JSON files;
  - the console shows no message at all (no error, no warning);
  - a screenshot is not blank (many distinct colours);
  - explain --report writes the page too;
  - an empty folder and a folder with a damaged JSON give one line and exit
    2, and leave no report behind.
Skipped (counted) only when chromium is not installed.
Prints one "ok"/"FAIL" line per check and "N passed, N failed, N skipped".
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

BUILD = os.environ.get("BUILD", "build")
EVMAP = os.path.join(BUILD, "evmap")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "fashion_cnn.onnx")
LABELS = os.path.join(ROOT, "models", "fashion_mnist.labels")
DEMO = os.path.join(ROOT, "data", "demo")
IMAGES = ["0_tshirt.png", "3_dress.png", "5_sandal.png", "8_bag.png"]
# Pixels probed per map (one Chromium start each); fewer in the sanitized pass.
PIXELS = [(13, 7)] if os.environ.get("EVMAP_QUICK") == "1" else [(0, 0), (13, 7), (27, 27)]

passed = failed = 0


def report(ok, what, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + str(detail)}"[:3000],
          flush=True)


def chromium(url, *extra):
    """(dump of the DOM, console lines) of a page loaded in headless Chromium."""
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--enable-logging=stderr", "--v=0", *extra, url],
                       capture_output=True, text=True, timeout=120)
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    return r.stdout, console


def run(*args):
    r = subprocess.run([EVMAP, *args], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"evmap {' '.join(args)}: exit {r.returncode}: {r.stderr}")


def make_run(out):
    images = [os.path.join(DEMO, f) for f in IMAGES]
    sampler = os.path.join(os.path.dirname(out), "k4.evs")
    run("fit-sampler", "--model", MODEL, "--window", "4", "--patches", "2000", "-o", sampler,
        DEMO)
    common = ["--model", MODEL, "--labels", LABELS, "--quiet", "--out", out]
    run("explain", *common, "--method", "saliency", *images)
    run("explain", *common, "--method", "efficient", "--sampler-file", sampler, "--samples",
        "4", "--top", "2", *images)
    run("evaluate", "--model", MODEL, "--methods", "saliency,gradxinput", "--steps", "5",
        "--sensitivity-samples", "2", "--quiet", "--out", out, *images)


def maps_of(out):
    """{stem: [(method, class, npy), ...]} in the report's order (methods
    sorted by name, classes in the JSON's order)."""
    result = {}
    for path in sorted(glob.glob(os.path.join(out, "*.*.json"))):
        doc = json.load(open(path))
        if "classes" not in doc:
            continue
        result.setdefault(doc["stem"], []).extend(
            (doc["method"], c["class"], c["npy"], c["prob"]) for c in doc["classes"])
    for stem in result:
        result[stem].sort(key=lambda m: m[0])  # stable: classes keep their order
    return result


def main():
    if shutil.which("chromium") is None:
        print("skip: chromium is not installed (scripts/install-deps installs it)")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        make_run(out)
        r = subprocess.run([EVMAP, "report", out], capture_output=True, text=True)
        page = os.path.join(out, "report.html")
        report(r.returncode == 0 and os.path.exists(page), "evmap report wrote the page",
               r.stderr)
        html = open(page).read()
        report(not re.search(r"(src|href)=[\"']?(https?:)?//", html) and "http://" not in
               html.replace("http://www.w3.org/2000/svg", ""),
               "the page loads nothing from the network")
        maps = maps_of(out)
        url = "file://" + page
        dom, console = chromium(url, "--dump-dom")
        stems = [os.path.splitext(f)[0] for f in IMAGES]
        report(all(f'id="image-{s}"' in dom for s in stems) and
               dom.count("<figure>") == sum(len(v) for v in maps.values()) + len(stems) and
               dom.count('<img class="input" src="data:image/png;base64,') == len(stems),
               f"a card per image with the input and every map ({sum(map(len, maps.values()))} "
               "maps)", f"{dom.count('<figure>')} figures")
        metrics = re.search(r'<table id="metrics">(.*?)</table>', dom, re.S)
        report(metrics and all(f"<td>{m}</td>" in metrics.group(1)
                               for m in ("saliency", "gradxinput")),
               "the evaluation table lists every evaluated method")
        report(not console, "the console is silent", console[:5])

        worst, probes = 0.0, 0
        for stem in stems[:2]:
            for k, (method, cls, npy, _) in enumerate(maps[stem]):
                values = np.load(os.path.join(out, npy))
                for x, y in PIXELS:
                    dom, _ = chromium(f"{url}#probe={stem}|{k}|{x}|{y}", "--dump-dom")
                    m = re.search(r'<output id="probe">([^<]*)</output>', dom)
                    got = m.group(1) if m else ""
                    want_prefix = f"{stem} {method} c{cls} ({x}, {y}): "
                    ok = got.startswith(want_prefix)
                    if ok:
                        v = float(got[len(want_prefix):].split()[0])
                        worst = max(worst, abs(v - float(values[y, x])) /
                                    max(abs(float(values[y, x])), 1e-30))
                    probes += ok
        report(probes == len(PIXELS) * sum(len(maps[s]) for s in stems[:2]) and worst <= 1e-5,
               f"the read-out under {probes} pixels = the NPY files' values (worst relative "
               f"difference {worst:.1e})", f"{probes} read-outs, worst {worst}")

        dom, _ = chromium(url + "#sort=prob:desc", "--dump-dom")
        body = re.search(r'<table id="images">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
        order = re.findall(r'href="#image-([^"]+)"', body)
        top_prob = {s: maps[s][0][3] for s in stems}  # the efficient map's top class
        report(order == sorted(stems, key=lambda s: -top_prob[s]),
               "#sort=prob:desc orders the table by probability", order)

        shot = os.path.join(tmp, "shot.png")
        chromium(url, f"--screenshot={shot}", "--window-size=1200,1400", "--hide-scrollbars")
        colours = len(set(Image.open(shot).convert("RGB").getdata())) if os.path.exists(
            shot) else 0
        report(colours > 200, f"a screenshot is not blank ({colours} colours)")

        flag = os.path.join(tmp, "flag")
        r = subprocess.run([EVMAP, "explain", "--model", MODEL, "--method", "saliency", "--quiet",
                            "--report", "--out", flag, os.path.join(DEMO, IMAGES[0])],
                           capture_output=True, text=True)
        report(r.returncode == 0 and 'id="data"' in open(os.path.join(flag, "report.html")).read(),
               "explain --report writes the folder's report", r.stderr)
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        r = subprocess.run([EVMAP, "report", empty], capture_output=True, text=True)
        report(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
               and not os.path.exists(os.path.join(empty, "report.html")),
               "an empty folder: one line, exit 2, no page", r.stderr)
        bad = os.path.join(tmp, "bad")
        shutil.copytree(out, bad)
        os.remove(os.path.join(bad, "report.html"))
        victim = os.path.join(bad, "3_dress.saliency.json")
        with open(victim, "r+") as f:
            f.truncate(100)
        r = subprocess.run([EVMAP, "report", bad], capture_output=True, text=True)
        report(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
               and "3_dress.saliency.json" in r.stderr
               and not os.path.exists(os.path.join(bad, "report.html")),
               "a damaged JSON: one line naming it, exit 2, no page", r.stderr)
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
