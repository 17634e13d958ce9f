#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh venv, and run train, explore and report from
# that install, outside the source tree: a file missing from the wheel (e.g. the explorer's page assets)
# fails here. Usage: tools/wheel_check.sh PYTHON (a Python with `build` installed). Needs the MNIST data
# in $SCRATCHCNN_DATA (CI sets it to ../shared/data).
set -euo pipefail
python="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir "$work/source"  # build from a copy: the build leaves build/ and *.egg-info beside the sources
cp -r "$root/pyproject.toml" "$root/README.md" "$root/src" "$work/source/"
"$python" -m build --wheel --no-isolation --outdir "$work/dist" "$work/source" > "$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
wheel=("$work"/dist/scratchcnn-*.whl)
"$python" -m venv "$work/venv"
# The dependencies (numpy, numba, ...) come from the build venv, listed after the new venv's own
# site-packages; a path added by a .pth file gets no .pth processing, so its editable scratchcnn is not seen.
deps="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | xargs -I{} sh -c "echo '$deps' > '{}/build-deps.pth'"
"$work/venv/bin/python" -m pip install --quiet --no-deps "${wheel[0]}"

cd "$work"  # away from src/: only the installed wheel can be imported
bin="$work/venv/bin"
"$bin/python" -c "import scratchcnn, sys; assert '/site-packages/' in scratchcnn.__file__, scratchcnn.__file__"
"$bin/scratchcnn" train --epochs 1 --out run --no-download
"$bin/scratchcnn" explore run/model.npz
"$bin/scratchcnn" report run
test -s run/explorer.html && grep -q 'id="model-data"' run/explorer.html && grep -q 'data:image/png;base64' run/report.html
echo "wheel check: ${wheel[0]##*/} installed; train, explore and report ran from it"
