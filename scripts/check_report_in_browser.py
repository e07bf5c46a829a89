"""Open a report in headless Chromium, screenshot it, and check the page rendered.

    python scripts/check_report_in_browser.py [RUN_DIR] [--out shot.png]

Without RUN_DIR it builds a fixture directory: synthetic held-out grounding, counting and detection
samples whose "answers" are the ground truth rendered by the task (reward at the maximum) or the same
shifted by 12 pixels (lower reward), plus a few lines of step logs, so the boxes must appear where
the shapes are (green truth on the shape, magenta prediction on it or 12 px off). The script checks
that Chromium exits cleanly, that the screenshot is not blank, and that both drawing colours are in it.
Needs `chromium` (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from perception_r1.data import io
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.evaluate.evaluation import record_of
from perception_r1.evaluate.report import PREDICTION, TRUTH, write_report
from perception_r1.registry import get_registry

SHIFT = 12.0


def shifted(sample: dict, dx: float) -> dict:
    """A copy of ``sample`` whose ground-truth geometry moved right by ``dx`` pixels."""
    out = json.loads(io.dumps({k: v for k, v in sample.items() if k != "image"}))
    solution = out["solution"]
    w = out["image_size"][0]
    for key in ("bbox",):
        if key in solution:
            b = solution[key]
            solution[key] = [min(b[0] + dx, w - 1), b[1], min(b[2] + dx, w), b[3]]
    for key in ("boxes",):
        solution[key] = [[min(b[0] + dx, w - 1), b[1], min(b[2] + dx, w), b[3]] for b in solution.get(key, [])]
    if "points" in solution:
        solution["points"] = [[min(p[0] + dx, w - 1), p[1]] for p in solution["points"]]
    return out


def build_fixture(root: Path) -> Path:
    registry = get_registry()
    records = []
    for name in ("grounding", "counting", "detection"):
        task = registry.task(name)
        for i, sample in enumerate(synthetic_samples(task, "val", 6, seed=0)):
            sample["coords"] = "norm1000"  # what the embedded Qwen2-VL-style model answers in
            answer = sample if i % 2 == 0 else shifted(sample, SHIFT)
            records.append(record_of(sample, task.render(answer), task))
    io.write_jsonl(root / "eval_after.jsonl", records)
    steps = [{"step": s, "reward": 0.3 + 0.05 * s, "reward_std": 0.1, "kl": 0.001 * s, "zero_std_groups": 0.5 / s,
              "completion_length": 30 - s, "loss": 0.1 / s, "clip_fraction": 0.0,
              "rewards/format": min(1.0, 0.5 + 0.1 * s), "rewards/iou": 0.2 + 0.03 * s} for s in range(1, 11)]
    io.write_jsonl(root / "metrics.jsonl", steps)
    io.atomic_write_text(root / "eval.json", json.dumps({"before": {"acc@0.5": 0.1}, "after": {"acc@0.5": 0.5}}))
    return root


def colour_share(image: Image.Image, colour: tuple[int, int, int]) -> float:
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    return float(np.mean(np.all(np.abs(pixels - np.asarray(colour)) <= 8, axis=1)))


def screenshot(html: Path, out: Path, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found (apt-get install chromium)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size=1300,{height}", f"--screenshot={out}", html.resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not out.is_file():
        sys.exit(f"chromium failed ({result.returncode}): {result.stderr[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="run or eval directory (default: a fixture)")
    parser.add_argument("--out", default="report-screenshot.png", help="screenshot file")
    parser.add_argument("--height", type=int, default=2400, help="window height in pixels")
    args = parser.parse_args()
    run_dir = Path(args.run_dir) if args.run_dir else build_fixture(Path(tempfile.mkdtemp(prefix="report-check-")))
    html = write_report(run_dir)
    out = Path(args.out)
    screenshot(html, out, args.height)
    shot = Image.open(out)
    grey = np.asarray(shot.convert("L"), dtype=float)
    truth, pred = colour_share(shot, TRUTH), colour_share(shot, PREDICTION)
    print(f"report {html} ({html.stat().st_size / 1024:.0f} KiB) -> screenshot {out} {shot.size[0]}x{shot.size[1]}")
    print(f"pixel std {grey.std():.1f}; truth-green share {truth:.4%}; prediction-magenta share {pred:.4%}")
    if grey.std() < 5 or truth == 0 or pred == 0 or not math.isfinite(grey.std()):
        sys.exit("the screenshot looks blank or has no drawn boxes")
    print("ok")


if __name__ == "__main__":
    main()
