#!/usr/bin/env bash
# mypy over the import package as Python sees it: core/ is perception_r1, registry/ and tasks/ its subpackages
# (pyproject's package-dir). mypy cannot follow setuptools' editable finder, so a link farm in a temp dir
# lays the folders out as the package; settings are in pyproject.toml ([tool.mypy]).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
farm="$(mktemp -d)"
trap 'rm -rf "$farm"' EXIT
mkdir "$farm/perception_r1"
for entry in "$root"/core/*; do ln -s "$entry" "$farm/perception_r1/"; done
ln -s "$root/registry" "$farm/perception_r1/registry"
ln -s "$root/tasks" "$farm/perception_r1/tasks"
cd "$farm"
python -m mypy --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache" -p perception_r1 "$@"
