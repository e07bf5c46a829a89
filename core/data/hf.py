"""`datasets` sources for ``--data``: a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``,
or a Hub data set id (``lmms-lab/RefCOCO``) read from the local ``datasets`` cache, always offline.

Rows come out as ``(where, row)`` pairs like :func:`perception_r1.tasks.rows.parquet_rows`, ``where`` being
``<source>[<split>]:row <n>`` (1-based), so a bad row is named the same way as in a file. Image columns are
handed over undecoded (``{"bytes", "path"}`` as in parquet): a loader decodes only what it keeps. Arrow
tables are memory-mapped, so a large data set is not read into memory (no streaming needed: nothing is
downloaded, and a Hub stream would download).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from perception_r1.errors import UserError


def is_saved_dataset(root: Path) -> bool:
    """A ``save_to_disk`` directory (of a Dataset or a DatasetDict)."""
    return root.is_dir() and any((root / f).is_file() for f in ("dataset_dict.json", "state.json"))


def _datasets():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read at import: nothing is ever downloaded
    import datasets

    datasets.config.HF_HUB_OFFLINE = True
    datasets.utils.logging.disable_progress_bar()
    return datasets


def cached_hub_dataset(source: str) -> bool:
    """``source`` names a Hub data set (``owner/name`` or ``name``) that the local ``datasets`` cache holds."""
    if Path(source).exists() or not source or source.count("/") > 1 or source.startswith((".", "/")):
        return False
    datasets = _datasets()
    from datasets.naming import camelcase_to_snakecase

    parts = source.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    return (Path(datasets.config.HF_DATASETS_CACHE) / "___".join(parts)).is_dir()


def is_dataset_source(path: str | Path) -> bool:
    return is_saved_dataset(Path(path)) or cached_hub_dataset(str(path))


def open_split(source: str | Path, names: list[str]) -> tuple[Any, str]:
    """The first split of ``names`` the source has, as a ``datasets.Dataset`` with undecoded images."""
    datasets = _datasets()
    root = Path(source)
    try:
        if is_saved_dataset(root):
            loaded = datasets.load_from_disk(str(root))
        else:
            loaded = datasets.load_dataset(str(source))
    except (OSError, ValueError, ConnectionError) as exc:  # corrupt arrow files, missing cache entries
        raise UserError(f"--data {source}: cannot load it with datasets ({exc})".replace("\n", " ")) from exc
    if isinstance(loaded, datasets.DatasetDict):
        split = next((n for n in names if n in loaded), None)
        if split is None:
            raise UserError(f"--data {source}: no split {' or '.join(names)} (has: {', '.join(loaded)})")
        loaded = loaded[split]
    else:
        split = names[0]
    for column, feature in loaded.features.items():
        if isinstance(feature, datasets.Image):
            loaded = loaded.cast_column(column, datasets.Image(decode=False))
    return loaded, split


def named_rows(table: Any, source: str | Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``source[split]:row n``, row) for every row of an opened split (1-based, as in a file)."""
    for n, row in enumerate(table, 1):
        yield f"{source}[{split}]:row {n}", row


def dataset_rows(source: str | Path, names: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``source[split]:row n``, row) for every row of the first split of ``names`` the source has."""
    table, split = open_split(source, names)
    yield from named_rows(table, source, split)
