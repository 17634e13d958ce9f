"""``scratchcnn download``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scratchcnn.cli.options import add_json_option, show_progress
from scratchcnn.options import DOWNLOADABLE, RunOptions

if TYPE_CHECKING:
    from scratchcnn.data.download import FileResult


def add_commands(commands: Any) -> None:
    add_download_command(commands)


def add_download_command(commands: Any) -> None:
    parser = commands.add_parser(
        "download", help="download and verify MNIST / Fashion-MNIST",
        description="Download a dataset's four files from the first mirror that delivers them, verify each "
        "against its published size and digests, and put them in DIR/<dataset>/ (default DIR: "
        "~/.cache/scratchcnn). Files already there and verified are kept. Offline? Copy the four files "
        "into DIR/<dataset>/ yourself and pass --data-dir DIR or set SCRATCHCNN_DATA=DIR.",
    )
    parser.add_argument("--dataset", choices=(*DOWNLOADABLE, "all"), default=RunOptions.dataset,
                        help="(default: %(default)s)")
    parser.add_argument("--data-dir", metavar="DIR", type=Path, help="where to put DIR/<dataset>/")
    parser.add_argument("--mirror", action="append", metavar="URL", default=[],
                        help="a mirror to try first (repeatable; also $SCRATCHCNN_MIRROR); {name} in it "
                        "stands for the dataset name")
    add_json_option(parser)
    parser.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    from scratchcnn.data.download import DownloadError, download_dataset  # (here: `--help` stays quick)

    try:
        results = download_dataset(args.dataset, args.data_dir, mirrors=args.mirror,
                                   progress=show_progress(args))
    except DownloadError as error:
        if args.json:  # scripts get their JSON object on failure too: the error and what is in place
            print(json.dumps({"dataset": args.dataset, "files": _files(error.results), "error": str(error)}))
        raise  # main prints the one line on stderr and exits 2
    files = _files(results)
    if args.json:
        print(json.dumps({"dataset": args.dataset, "files": files}))
        return 0
    for f in files:
        print(f"{f['path']}  {'verified' if f['verified'] else 'NOT verified'}  from {f['source']}")
    return 0


def _files(results: list[FileResult]) -> list[dict[str, Any]]:
    """The JSON description of files in place: path, sha256, verified, source ("cache" or a URL)."""
    return [{"path": str(r.path), "sha256": r.sha256, "verified": r.verified, "source": r.source} for r in results]
