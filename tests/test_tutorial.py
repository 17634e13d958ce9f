"""The tutorial notebook (docs/tutorial.ipynb): committed without outputs, run top to bottom on the real data;
and the notebook summaries of the networks (ConvNet._repr_html_, Stack._repr_html_)."""

from __future__ import annotations

import json
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import skip_or_fail

from scratchcnn import ConvNet, from_spec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
CELL_TIMEOUT = 300  # seconds; the slowest cell (training) takes ~10 s on 2 busy cores
FIGURE_CELLS = ("record", "surface", "fig-accuracy", "fig-kernels", "fig-convolved", "fig-pooled", "fig-weights",
                "fig-confusion", "tune", "overtrain", "lenet-figure")


# ---- the committed file ------------------------------------------------------------------------------


def test_committed_notebook_has_no_outputs_or_execution_counts() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    dirty = [f"cell {n} (id {cell.get('id')!r}): {len(cell.get('outputs', []))} outputs, "
             f"execution_count {cell.get('execution_count')}"
             for n, cell in enumerate(cells)
             if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, ("docs/tutorial.ipynb must be committed without outputs (JupyterLab: Edit → Clear Outputs "
                       "of All Cells, then save): " + "; ".join(dirty))


def test_notebook_cells_have_unique_ids_and_python3_kernel() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    ids = [cell["id"] for cell in notebook["cells"]]
    assert len(ids) == len(set(ids)), "duplicate cell ids"
    assert set(FIGURE_CELLS) <= set(ids), "a cell these tests look at was renamed or removed"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


# ---- running it ----------------------------------------------------------------------------------------


def _nbclient() -> Any:
    try:
        import nbclient
        import nbformat
    except ImportError:
        skip_or_fail("executing the tutorial needs nbclient, nbformat and ipykernel: pip install -e '.[test]'")
    return nbclient, nbformat


def _execute(notebook: Any, cwd: Path) -> None:
    """Run every cell in a kernel of this interpreter (not whatever "python3" kernelspec the user has)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    nbclient, _ = _nbclient()
    # No kernel folders: "python3" is then ipykernel's own spec, which runs sys.executable.
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    client = nbclient.NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT, startup_timeout=120,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(cleanup_kc=True)  # shut the kernel down at the end: nbclient does not, for a manager passed in


def _kernel_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: Path) -> None:
    monkeypatch.setenv("SCRATCHCNN_DATA", str(data))
    monkeypatch.setenv("SCRATCHCNN_OFFLINE", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # the user's profile and startup files stay out
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's standard folders, without its warning


def _cell(notebook: Any, cell_id: str) -> Any:
    return next(cell for cell in notebook.cells if cell.get("id") == cell_id)


def _text(cell: Any) -> str:
    """Everything a cell printed or showed as text or HTML."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts += [output.data.get("text/plain", ""), output.data.get("text/html", "")]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tutorial, run top to bottom in a fresh kernel on the shared data, offline, from an empty folder."""
    _, nbformat = _nbclient()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)", id="test-interpreter"))
    cwd = tmp_path_factory.mktemp("tutorial")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _kernel_environment(monkeypatch, cwd, data_dir)
        start = time.perf_counter()
        _execute(notebook, cwd)
        seconds = time.perf_counter() - start
    print(f"\ndocs/tutorial.ipynb executed in {seconds:.1f} s (kernel start included)")
    notebook.metadata["seconds"] = seconds
    return notebook


def test_tutorial_runs_in_this_interpreter_without_errors_or_warnings(executed: Any) -> None:
    assert _text(_cell(executed, "test-interpreter")).strip() == sys.executable
    errors = [(cell.id, output.get("text", ""))[:2] for cell in executed.cells if cell.cell_type == "code"
              for output in cell.outputs
              if output.output_type == "error" or (output.output_type == "stream" and output.name == "stderr")]
    assert not errors, f"cells wrote to stderr or failed: {errors}"
    assert "ran in" in _text(_cell(executed, "end"))


def test_tutorial_pixel_by_hand_equals_feature_maps(executed: Any) -> None:
    text = _text(_cell(executed, "pixel"))
    assert "equal: True" in text, text


def test_tutorial_trains_the_seed_network_and_lenet(executed: Any) -> None:
    trained = re.search(r"test accuracy (\d\.\d+)", _text(_cell(executed, "train")))
    assert trained and float(trained.group(1)) >= 0.85, _text(_cell(executed, "train"))
    assert "dataset: mnist" in _text(_cell(executed, "train"))  # the table of the trained network
    lenet = re.search(r"lenet: test accuracy (\d\.\d+)", _text(_cell(executed, "lenet-train")))
    assert lenet and float(lenet.group(1)) >= 0.85, _text(_cell(executed, "lenet-train"))


def test_tutorial_shows_its_figures_tables_and_explorer(executed: Any) -> None:
    without = [cell_id for cell_id in FIGURE_CELLS
               if not any("image/png" in output.get("data", {}) for output in _cell(executed, cell_id).outputs)]
    assert not without, f"cells that show no figure: {without}"
    assert "<table>" in _text(_cell(executed, "network")) and "<table>" in _text(_cell(executed, "lenet-network"))
    explorer = _text(_cell(executed, "explorer"))
    assert '<iframe sandbox="allow-scripts" srcdoc="' in explorer and "&lt;!DOCTYPE html&gt;" in explorer


def test_tutorial_experiments_and_gradient_check(executed: Any) -> None:
    assert "best: η = " in _text(_cell(executed, "tune"))
    assert re.search(r"training accuracy 100 % from epoch \d+", _text(_cell(executed, "overtrain")))
    checks = _text(_cell(executed, "gradcheck-by-hand"))
    assert checks.count("passed: True") == 2 and "passed: False" not in checks, checks
    if any(cell.get("id") == "gradcheck-all" for cell in executed.cells):
        assert "passed: True" in _text(_cell(executed, "gradcheck-all"))


def test_tutorial_without_mnist_stops_with_one_line_saying_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline and no copy anywhere: the data cell fails with the package's message, not a long traceback."""
    nbclient, nbformat = _nbclient()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    ids = [cell.get("id") for cell in notebook.cells]
    notebook.cells = notebook.cells[: ids.index("data") + 1]
    _kernel_environment(monkeypatch, tmp_path, tmp_path / "empty")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/scratchcnn
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        _execute(notebook, tmp_path)
    error = next(output for output in _cell(notebook, "data").outputs if output.output_type == "error")
    assert error.ename == "DataError"
    assert error.evalue.startswith("this notebook needs MNIST: dataset mnist not found in ")
    assert "SCRATCHCNN_DATA" in error.evalue and "\n" not in error.evalue


# ---- the networks' tables in a notebook ----------------------------------------------------------------


class _Table(HTMLParser):
    """The rows of an HTML table as lists of cell texts, and its caption."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.caption, self._in = "", ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
        self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in == "caption":
            self.caption += data
        elif self._in in ("td", "th"):
            self.rows[-1][-1] += data


def test_convnet_html_lists_each_step_with_shapes_and_parameters() -> None:
    net = ConvNet(filters=4, kernel_size=5, activation="relu", pool="max", bias=True, seed=0)
    table = _Table(net._repr_html_())
    assert table.rows[0] == ["step", "output shape", "parameters"]
    assert [row[1] for row in table.rows[1:]] == ["28×28", "4×28×28", "4×28×28", "4×14×14", "10", "10"]
    counts = [int(row[2].replace(",", "")) for row in table.rows[1:]]
    assert counts == [0, 4 * 5 * 5, 0, 0, 10 * 4 * 14 * 14 + 10, 0]
    total = sum(p.size for p in net.parameters().values())
    assert table.caption == f"ConvNet: {total:,} parameters, float32, dataset: not recorded"


def test_convnet_html_of_the_seed_network_and_its_dataset_escaped() -> None:
    net = ConvNet(seed=0)
    net.dataset = "<script>mnist</script>"
    html = net._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;mnist&lt;/script&gt;" in html
    table = _Table(html)
    assert [row[0] for row in table.rows[1:]] == ["input X", "convolution f: 3 filters 3×3 → Y",
                                                  "pooling (decimate) → Z", "dense W Z → A", "softmax → P"]
    assert table.caption.startswith("ConvNet: 5,907 parameters")


def test_stack_html_lists_every_layer_with_its_output_shape_and_parameters() -> None:
    net = from_spec("lenet", seed=0)
    net.dataset = "a&b"
    html = net._repr_html_()
    table = _Table(html)
    assert table.rows[0] == ["layer", "spec", "output shape", "parameters"]
    assert len(table.rows) == 2 + len(net.layers)  # header, input, one row per layer
    assert table.rows[1][1:3] == ["input X", "1×28×28"]
    assert table.rows[5] == ["4", "conv:16x5:valid", "16×10×10", "2,416"]  # 16·6·5·5 weights + 16 biases
    counts = [int(row[3].replace(",", "")) for row in table.rows[1:]]
    assert sum(counts) == sum(p.size for p in net.parameters().values()) == 61_706
    assert table.caption == "Stack: 12 layers, 61,706 parameters, float32, dataset: a&b"
    assert "a&amp;b" in html


def test_html_tables_of_a_network_and_its_stack_agree_on_the_parameter_count() -> None:
    convnet = ConvNet(seed=0)
    stack = from_spec("conv:3x3-b,pool:decimate,flatten,dense:16,relu,dense", seed=0)
    for net in (convnet, stack):
        total = sum(int(np.prod(p.shape)) for p in net.parameters().values())
        assert f"{total:,} parameters" in _Table(net._repr_html_()).caption
