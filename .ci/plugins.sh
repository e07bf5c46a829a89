#!/usr/bin/env bash
# Install every plugins/* distribution into the current environment (editable) and run its own tests.
# Exits non-zero if any plugin fails to install or any of its tests fail; the others still run.
# PIP_EXTRA="..." adds pip flags (dependencies are assumed present: perception-r1 brings them).
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=${PIP_ROOT_USER_ACTION:-ignore} PIP_DISABLE_PIP_VERSION_CHECK=1
failed=()
for dir in plugins/*/; do
  dir=${dir%/}
  [ -f "$dir/pyproject.toml" ] || continue
  echo "== $dir"
  # shellcheck disable=SC2086
  if ! python -m pip install --quiet --no-deps --no-build-isolation ${PIP_EXTRA:-} -e "$dir"; then
    failed+=("$dir (install)")
    continue
  fi
  # run from the plugin's own directory: its pyproject holds its pytest settings
  if ! (cd "$dir" && python -m pytest -q -p no:cacheprovider); then
    failed+=("$dir (tests)")
  fi
done
# core tests that need an installed plugin (they skip in the first pass, before the plugins are installed)
if ! python -m pytest -q -p no:cacheprovider tests/test_integrations_trl.py -k text_spotting; then
  failed+=("tests/test_integrations_trl.py with text-spotting installed")
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf 'plugins failed: %s\n' "${failed[*]}" >&2
  exit 1
fi
echo "all plugins passed"
