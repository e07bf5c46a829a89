"""A self-contained HTML report of a run or an eval directory: curves, metrics, a gallery of answers.

Reads what the trainer and `eval` write (every file optional, at least one needed):
``metrics.jsonl`` (per-step training logs: curves), ``eval.json`` (before/after metrics),
``metrics.json`` (an `eval --out` summary with the paper's numbers), ``eval_after.jsonl`` /
``predictions.jsonl`` / ``eval_before.jsonl`` (scored records: the gallery), ``completions.jsonl``
(sampled training completions: a second gallery of the last logged step) and ``config.yaml``.

Images are not stored with the records. The gallery gets them (1) from the record's ``image_path``, or
(2) for synthetic samples, by regenerating the sample from its id ``<task>-<split>-<seed>-<index>`` with
:func:`perception_r1.data.synthetic.synthetic_samples`, accepted only if the regenerated ground truth equals the
record's (a record of the shuffled-image control is regenerated from ``shown_image_of``, the sample whose
image it was shown); (3) else the shapes are drawn on a blank canvas of ``image_size``. What to draw is the task's
to say (``draw_solution`` / ``draw_answer``, see :class:`perception_r1.contract.Shapes`); a prediction is
placed from the space the record says its completion is in (``coords``, else the task's). Ground truth is
drawn in cyan, the prediction in magenta. Charts are matplotlib PNGs (Agg backend); every picture is inlined as
base64, so the page is one file. All text from files (model output included) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from perception_r1.contract import ParseError, Shapes, Task
from perception_r1.data import io as pio
from perception_r1.data import limits
from perception_r1.data.synthetic import STREAMS, synthetic_stream

# cyan, not green: the synthetic scenes draw green shapes; no scene colour is cyan or magenta
TRUTH, PREDICTION = (0, 200, 220), (230, 0, 200)
#: gallery pictures are scaled so their longer side is this many pixels
VIEW = 256
GALLERY_SIZE = 6  # best and worst records shown each
#: a synthetic sample is regenerated for the gallery only below this index (regeneration costs its predecessors)
MAX_REGENERATED = 10_000
RECORD_FILES = ("eval_after.jsonl", "predictions.jsonl", "eval_before.jsonl")
KNOWN_FILES = ("metrics.jsonl", "eval.json", "metrics.json", "completions.jsonl", *RECORD_FILES)
CHARTS = (  # (title, metrics.jsonl keys; "rewards/*" = every reward component)
    ("Reward (mean ± std over rollouts)", ("reward",)),
    ("Reward components", ("rewards/*",)),
    ("Fraction of zero-std groups", ("zero_std_groups",)),
    ("KL to the reference", ("kl",)),
    ("Completion length (tokens)", ("completion_length",)),
    ("Loss and clip fraction", ("loss", "clip_fraction")),
)
_SYNTHETIC_ID = re.compile(rf"^(?P<task>.+)-(?P<stream>{'|'.join(STREAMS.values())})-(?P<seed>\d+)-(?P<index>\d+)$")


# -- reading ---------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    return pio.read_json_object(path)  # not a JSON object: one line naming the file


def _rows(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in pio.read_jsonl(path)] if path.is_file() else []


def _task(name: str | None) -> Task | None:
    from perception_r1.registry import get_registry

    registry = get_registry()
    return registry.tasks.get(name) if name else None


# -- shapes of answers and ground truths (the task says what they are) ----------------------------
def truth_shapes(task: Task, record: Mapping[str, Any]) -> tuple[Shapes, str]:
    """The record's ground truth as shapes in pixels, and a note when it cannot be drawn."""
    try:
        return task.draw_solution(record), ""
    except (KeyError, TypeError, ValueError) as exc:
        return Shapes(), f"truth not drawable ({type(exc).__name__}: {exc})"


def prediction_shapes(task: Task, record: Mapping[str, Any]) -> tuple[Shapes, str]:
    """The parsed completion as shapes in pixels, and a note when it cannot be drawn."""
    try:
        answer = task.parse(record.get("completion") or "")
    except ParseError as exc:
        return Shapes(), f"does not parse: {exc.reason}"
    try:
        return task.draw_answer(answer, record), ""
    except (KeyError, TypeError, ValueError) as exc:
        return Shapes(), f"prediction not drawable ({exc})"


# -- images ----------------------------------------------------------------------------------------
class Images:
    """Original images of records: from ``image_path`` (only inside ``roots``: the run directory and the
    directories the caller trusts, see :func:`perception_r1.data.limits.image_allowed`) or regenerated synthetic
    samples (cached; an index past :data:`MAX_REGENERATED` is not regenerated)."""

    def __init__(self, roots: Sequence[Path] = ()) -> None:
        # per (task, split, seed): the stream and the index of its next sample; samples are regenerated one at
        # a time and only those asked for are kept, so memory stays bounded whatever index a record names
        self._streams: dict[tuple[str, str, int], tuple[Iterator[dict[str, Any]], int]] = {}
        self._kept: dict[tuple[str, str, int, int], dict[str, Any]] = {}
        self.roots = tuple(roots)

    def _synthetic(self, task: Task, split: str, seed: int, index: int) -> dict[str, Any]:
        key = (task.name, split, seed)
        if (*key, index) not in self._kept:
            stream, position = self._streams.get(key, (None, 0))
            if stream is None or position > index:  # behind: start the stream again
                stream, position = synthetic_stream(task, split, seed), 0
            for sample in stream:
                position += 1
                if position - 1 == index:
                    self._kept[(*key, index)] = sample
                    break
            self._streams[key] = (stream, position)
        return self._kept[(*key, index)]

    def _from_file(self, path: str) -> tuple[Image.Image | None, str]:
        if not limits.image_allowed(path, self.roots):
            return None, f"image outside the run and data directories: not embedded (report --data DIR, or {limits.ENV_IMAGE_ROOTS})"
        try:
            with Image.open(path) as im:
                if problem := limits.pixels_problem(im):
                    return None, problem
                im.draft("RGB", (VIEW, VIEW))
                return limits.decode_capped(im), ""
        except (OSError, Image.DecompressionBombError):
            return None, f"cannot open {path}"

    def get(self, task: Task, record: Mapping[str, Any], sample_id: str) -> tuple[Image.Image | None, str]:
        path = record.get("image_path")
        if isinstance(path, str) and _is_file(path):
            return self._from_file(path)
        shown = record.get("shown_image_of")  # the shuffled-image control showed another sample's image
        match = _SYNTHETIC_ID.match(str(shown or sample_id or ""))
        if not match or match["task"] != task.name:
            return None, "image not stored"
        if int(match["index"]) >= MAX_REGENERATED:
            return None, f"synthetic index past {MAX_REGENERATED:,}: image not regenerated"
        split = next(s for s, stream in STREAMS.items() if stream == match["stream"])
        sample = self._synthetic(task, split, int(match["seed"]), int(match["index"]))
        if shown is None and json.loads(pio.dumps(sample["solution"])) != record.get("solution"):
            return None, "synthetic generator changed since the run: image not reproducible"
        return sample["image"].convert("RGB"), ""


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def draw(image: Image.Image | None, size: Sequence[float], truth: Shapes, pred: Shapes) -> tuple[Image.Image, float]:
    """The picture scaled to :data:`VIEW` with truth (cyan) and prediction (magenta) drawn; and the scale.

    Without an image the blank canvas is made at the view's size, never at ``size`` (which a file gives)."""
    w, h = (min(max(float(v), 1.0), limits.MAX_IMAGE_SIDE) for v in size)
    if image is None:
        fit = VIEW / max(w, h)
        view = Image.new("RGB", (max(1, round(w * fit)), max(1, round(h * fit))), (235, 235, 235))
    else:
        fit = VIEW / max(image.width, image.height)
        view = image.resize((max(1, round(image.width * fit)), max(1, round(image.height * fit))),
                            Image.Resampling.NEAREST if fit >= 1 else Image.Resampling.LANCZOS)
    scale = fit if image is None else fit * image.width / w  # shapes are in the record's pixels (w x h)
    pen = ImageDraw.Draw(view)
    for shapes, colour, width in ((truth, TRUTH, 3), (pred, PREDICTION, 1)):
        _draw_shapes(pen, shapes, scale, colour, width)
    return view, scale


def _draw_shapes(pen: ImageDraw.ImageDraw, shapes: Shapes, scale: float, colour: tuple[int, int, int],
                 width: int) -> None:
    for i, box in enumerate(shapes.boxes):
        x1, y1, x2, y2 = (v * scale for v in box)
        pen.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=width)
        if i < len(shapes.labels):
            pen.text((x1 + 2, y1 + 1), shapes.labels[i], fill=colour)
    for i, polygon in enumerate(shapes.polygons):
        corners = [(x * scale, y * scale) for x, y in polygon]
        if len(corners) >= 2:
            pen.polygon(corners, outline=colour, width=width)
        if corners and not shapes.boxes and i < len(shapes.labels):
            pen.text((min(x for x, _ in corners) + 2, min(y for _, y in corners) + 1), shapes.labels[i], fill=colour)
    for x, y in shapes.points:
        x, y, r = x * scale, y * scale, 4
        if colour == TRUTH:
            pen.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
        else:
            pen.line([x - r, y - r, x + r, y + r], fill=colour, width=2)
            pen.line([x - r, y + r, x + r, y - r], fill=colour, width=2)


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# -- charts ----------------------------------------------------------------------------------------
def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(rows, 1):
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            xs.append(float(row.get("step", i)))
            ys.append(float(value))
    return xs, ys


def _plain(label: str) -> str:
    """``label`` (a reward or component name from a plugin or a log) as plain text for matplotlib: ``$`` would
    start mathtext, whose parser fails on ``$x^{$`` and killed the report; a leading ``_`` would hide it."""
    return label.replace("$", r"\$").lstrip("_") or "?"


def charts(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(title, base64 PNG) per chart that has data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for title, keys in CHARTS:
        names = [k for k in keys if not k.endswith("*")]
        for prefix in (k[:-1] for k in keys if k.endswith("*")):
            names += sorted({k for row in rows for k in row if k.startswith(prefix)})
        series = [(name, *_series(rows, name)) for name in names]
        series = [s for s in series if s[1]]
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(4.6, 2.9), dpi=100)
        for name, xs, ys in series:
            ax.plot(xs, ys, label=_plain(name.removeprefix("rewards/")), marker="." if len(xs) < 30 else None)
            if name == "reward":
                sx, sd = _series(rows, "reward_std")
                if len(sd) == len(ys):
                    ax.fill_between(xs, np.subtract(ys, sd), np.add(ys, sd), alpha=0.2)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        out.append((title, base64.b64encode(buffer.getvalue()).decode("ascii")))
    return out


# -- HTML ------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _table(columns: Mapping[str, Mapping[str, Any]]) -> str:
    keys: list[str] = []
    for metrics in columns.values():
        keys += [k for k in metrics if k not in keys]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{_e(k)}</td>" + "".join(f"<td class=num>{_fmt(m.get(k))}</td>" for m in columns.values()) + "</tr>"
        for k in keys
    )
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


def _card(task: Task, record: Mapping[str, Any], images: Images) -> str:
    sample_id = str(record.get("id") or "")
    image, note = images.get(task, record, sample_id)
    record = dict(record)
    if "image_size" not in record and image is not None:
        record["image_size"] = [image.width, image.height]
    if limits.size_problem(record.get("image_size")):  # missing, or not a usable [w, h]
        return ""
    record.setdefault("coords", task.coord_space)
    truth, truth_note = truth_shapes(task, record)
    pred, pred_note = prediction_shapes(task, record)
    view, _ = draw(image, record["image_size"], truth, pred)
    parts = [f'<img alt="{_e(sample_id)}" src="data:image/png;base64,{_png(view)}">']
    parts.append(f"<div class=reward>reward <b>{_fmt(record.get('reward'))}</b> · {_e(sample_id)}</div>")
    components = record.get("rewards") or {}
    if components:
        parts.append("<div class=comp>" + " · ".join(f"{_e(k)} {_fmt(v)}" for k, v in components.items()) + "</div>")
    caption = task.caption(record)
    if caption:
        parts.append(f"<div class=query>{_e(caption)}</div>")
    if truth.text is not None:
        parts.append(f"<div><span class=truth>truth</span> {_e(truth.text[:300])}</div>")
    completion = str(record.get("completion") or "")
    clipped = completion[:300] + ("…" if len(completion) > 300 else "")
    parts.append(f"<div><span class=pred>answer</span> <code>{_e(clipped)}</code></div>")
    for text in (note, truth_note, pred_note):
        if text:
            parts.append(f"<div class=note>{_e(text)}</div>")
    return "<div class=card>" + "".join(parts) + "</div>"


def _gallery(task: Task, records: list[dict[str, Any]], images: Images) -> str:
    scored = sorted((r for r in records if isinstance(r.get("reward"), int | float)), key=lambda r: -r["reward"])
    k = min(GALLERY_SIZE, (len(scored) + 1) // 2)  # few records: split them, never show one twice
    best = scored[:k]
    worst = scored[k:][::-1][:GALLERY_SIZE]
    out = []
    for title, group in (("Best", best), ("Worst", worst)):
        cards = "".join(_card(task, r, images) for r in group)
        if cards:
            out.append(f"<h3>{title}</h3><div class=gallery>{cards}</div>")
    return "".join(out)


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
.charts,.gallery{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;padding:4px}
.chart div{font-size:13px;font-weight:600}
.card{width:270px;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:12px;overflow-wrap:anywhere}
.card img{display:block;margin:0 auto 4px auto;image-rendering:pixelated;max-width:256px}
.reward{font-size:13px}.comp,.query{color:#555}.note{color:#a40}
.truth{color:#00c8dc;font-weight:700}.pred{color:#e600c8;font-weight:700}
code{font-size:11px;background:#f6f6f6}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


LEGEND = ("<p class=legend>ground truth<span style='background:#00c8dc'></span>"
          "prediction<span style='background:#e600c8'></span></p>")


def _summary_sections(root: Path, summary: Mapping[str, Any], steps: list[dict[str, Any]]) -> list[str]:
    """The metrics of an `eval --out` summary (the paper's beside), before/after metrics, training curves."""
    sections = []
    if summary:
        sections.append(f"<p>{_e(summary.get('task'))} · model {_e(summary.get('model'))} · data "
                        f"{_e(summary.get('data'))} · {_e(summary.get('samples'))} samples"
                        + (f" · benchmark <b>{_e(summary['benchmark'])}</b>" if summary.get("benchmark") else "")
                        + "</p>")
        columns: dict[str, Mapping[str, Any]] = {"this model": summary.get("metrics") or {}}
        paper = summary.get("paper") or {}
        if paper:
            columns["paper base"] = {k: v.get("base") for k, v in paper.items()}
            columns["paper Perception-R1"] = {k: v.get("perception_r1") for k, v in paper.items()}
        sections.append("<h2>Metrics</h2>" + _table(columns))
        if isinstance(head := summary.get("headroom"), dict):
            sections.append(f"<h2>RL headroom: {_e(head.get('k'))} samples per prompt at temperature "
                            f"{_e(head.get('temperature'))}</h2>" + _table({"sampled": head})
                            + "<p>all_equal_share: prompts whose answers all score the same (no GRPO signal)</p>")
    if (root / "eval.json").is_file():
        results = _read_json(root / "eval.json")
        columns = {k: results[k] for k in ("before", "after") if isinstance(results.get(k), dict) and results[k]}
        if columns:
            sections.append("<h2>Held-out metrics before and after training</h2>" + _table(columns))
    if steps:
        pictures = "".join(f'<div class=chart><div>{_e(t)}</div><img alt="{_e(t)}" src="data:image/png;base64,{p}"></div>'
                           for t, p in charts(steps))
        sections.append(f"<h2>Training curves ({len(steps)} steps)</h2><div class=charts>{pictures}</div>")
    return sections


def _task_sections(task: Task, records: list[dict[str, Any]], records_name: str,
                   completions: list[dict[str, Any]], images: Images) -> list[str]:
    """One task's galleries: its evaluation records and its last logged training completions."""
    from perception_r1.evaluate.perplexity import format_big, perplexity

    sections, name = [], task.name
    mine = [r for r in records if r.get("task", name) == name]
    if mine:
        ppl = perplexity(task.objects(r["solution"]) for r in mine if isinstance(r.get("solution"), dict))
        sections.append(f"<h2>{_e(name)}: evaluation answers ({_e(records_name)}, {len(mine)} records)</h2>"
                        f"<p>perceptual perplexity of these samples: {_e(format_big(ppl['log10_mean']))}</p>"
                        + LEGEND + _gallery(task, mine, images))
    logged = [r for r in completions if r.get("task") == name]
    if logged:
        last = max(r.get("step", 0) for r in logged)
        rows = [r for r in logged if r.get("step", 0) == last]
        sections.append(f"<h2>{_e(name)}: sampled training completions (step {_e(last)})</h2>"
                        + LEGEND + _gallery(task, rows, images))
    return sections


def _config_text(path: Path) -> str:
    """``config.yaml`` as text for the page; a file too large to be a run config is left out."""
    if not path.is_file():
        return ""
    if path.stat().st_size > pio.MAX_CONFIG_BYTES:
        return f"({path.name} is larger than {pio.MAX_CONFIG_BYTES:,} bytes: not shown)"
    return path.read_text(encoding="utf-8", errors="replace")


def _image_roots(root: Path, data_dirs: Sequence[str | Path]) -> list[Path]:
    """Where the gallery may read ``image_path`` files: the run directory and the directories the caller gives
    (``report --data``; the trainer's own report: the run's ``--data``). Never a directory named by a file inside
    the directory being reported: ``config.yaml`` saying ``data: /`` would make the page embed any image on the
    machine (``PERCEPTION_R1_IMAGE_ROOTS`` adds roots, see :func:`perception_r1.data.limits.image_allowed`)."""
    return [root, *(Path(d) if Path(d).is_dir() else Path(d).parent for d in data_dirs)]


def build_report(run_dir: str | Path, data_dirs: Sequence[str | Path] = ()) -> str:
    """The report of ``run_dir`` as one HTML string; ``data_dirs``: where else the gallery may read images."""
    from perception_r1.errors import UserError

    root = Path(run_dir)
    if not root.exists():
        raise UserError(f"{root} does not exist (give a run directory, or an `eval --out` directory)")
    if not root.is_dir() or not any((root / f).is_file() for f in KNOWN_FILES):
        raise UserError(f"{root}: not a run or eval directory (none of {', '.join(KNOWN_FILES)} there)")
    config_text = _config_text(root / "config.yaml")
    summary = _read_json(root / "metrics.json") if (root / "metrics.json").is_file() else {}
    records_file = next((root / f for f in RECORD_FILES if (root / f).is_file()), None)
    records = _rows(records_file) if records_file else []
    completions = _rows(root / "completions.jsonl")
    task_names = list(dict.fromkeys([r["task"] for r in records + completions if isinstance(r.get("task"), str)]))
    if not task_names and isinstance(summary.get("task"), str):
        task_names = [summary["task"]]

    sections = [f"<h1>perception-r1 report: {_e(root.name)}</h1>"]
    sections += _summary_sections(root, summary, _rows(root / "metrics.jsonl"))
    images = Images(_image_roots(root, data_dirs))
    for name in task_names:
        task = _task(name)
        if task is None:
            sections.append(f"<p class=note>task '{_e(name)}' is not installed: no gallery</p>")
            continue
        sections += _task_sections(task, records, records_file.name if records_file else "", completions, images)
    if config_text:
        sections.append(f"<h2>Config</h2><pre>{_e(config_text)}</pre>")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>perception-r1 {_e(root.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(sections)}</body></html>")


def write_report(run_dir: str | Path, data_dirs: Sequence[str | Path] = ()) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path (``data_dirs``: see :func:`build_report`)."""
    path = Path(run_dir) / "report.html"
    pio.atomic_write_text(path, build_report(run_dir, data_dirs))
    return path
