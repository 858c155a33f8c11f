"""Command line: ``python -m bench {rd,summary,plot} ...`` (see ``python -m bench --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.codecs import CLASSICAL, CODECS, InrCodec, Setting
from bench.plot import Crop, sheet_source, write_plots
from bench.report import write_report
from bench.results import RD_CSV, read_rows, read_runs
from bench.run import rd
from bench.summary import write_summary


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _codecs(text: str) -> list[str]:
    names = _list(text)
    for name in names:
        if name not in CODECS:
            msg = f"unknown codec {name!r}; known: {', '.join(CODECS)}"
            raise argparse.ArgumentTypeError(msg)
        if not CODECS[name].available():
            msg = f"codec {name!r} is not installed here"
            raise argparse.ArgumentTypeError(msg)
    return names


def _crop(text: str) -> tuple[int, int, int]:
    x, y, size = (int(v) for v in text.split(","))
    return x, y, size


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Rate-distortion benchmark of image codecs.")
    sub = parser.add_subparsers(dest="command", required=True)

    plots = argparse.ArgumentParser(add_help=False)
    default = Crop()
    plots.add_argument("--crop-image", default=default.image, help="image of the visual sheet (file name)")
    plots.add_argument(
        "--crop",
        type=_crop,
        default=(default.x, default.y, default.size),
        metavar="X,Y,SIZE",
        help="square crop of the visual sheet, in pixels (default: %(default)s)",
    )
    plots.add_argument("--crop-bpp", type=float, default=0.25, help="rate of the visual sheet (default: 0.25)")
    plots.add_argument("--max-bpp", type=float, default=2.0, help="x-axis end of the RD plots (default: 2)")
    plots.add_argument(
        "--no-sheet",
        action="store_true",
        help="skip the visual sheet (it re-encodes one image with every codec setting shown: "
        "~8 min for an --effort max sweep; `plot` can draw it later)",
    )

    run = sub.add_parser("rd", parents=[plots], help="run codecs over images into OUT/rd.csv, then summarise")
    run.add_argument("--images", type=Path, required=True, help="folder of source images")
    run.add_argument("--out", type=Path, required=True, help="results folder; existing rows are kept and skipped")
    run.add_argument(
        "--codecs",
        type=_codecs,
        default=CLASSICAL,
        help=f"comma-separated, from {', '.join(CODECS)} (default: {','.join(CLASSICAL)})",
    )
    run.add_argument("--inrcodec-bpps", type=lambda t: [float(v) for v in _list(t)], default=[0.25, 0.5, 0.75, 1.0])
    run.add_argument("--inrcodec-efforts", type=_list, default=["default"])
    run.add_argument(
        "--inrcodec-device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="where inrcodec trains (default: cpu; cuda rows carry device=cuda in their setting)",
    )
    run.add_argument("--jobs", type=int, default=1, help="worker processes (each with 1 torch thread if > 1)")
    run.add_argument("--limit-images", type=int, help="use only the first K images by name")
    run.add_argument("--keep-cocos", type=Path,
                     help="save inrcodec's files in this folder, named as `bench.decode_speed --cocos` reads them")

    summary = sub.add_parser("summary", help="recompute summary CSVs and report.md from rd.csv")
    summary.add_argument("results", type=Path)

    plot = sub.add_parser("plot", parents=[plots], help="draw RD plots and the visual sheet from rd.csv")
    plot.add_argument("results", type=Path)
    plot.add_argument("--images", type=Path, help="source images for the visual sheet (default: from runs.jsonl)")
    return parser


def _finish(results: Path, images: Path | None, args: argparse.Namespace | None) -> None:
    """Rewrite the summary CSVs, the plots (unless ``args`` is None) and ``report.md`` from ``rd.csv``."""
    rows = read_rows(results / RD_CSV)
    summary = write_summary(results, rows)
    if args is not None:
        crop = Crop(args.crop_image, *args.crop)
        write_plots(results, summary, rows, None if args.no_sheet else images, crop, args.crop_bpp, args.max_bpp)
    write_report(results, summary, rows, read_runs(results))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (1 if any sweep task failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "rd":
        sweeps: dict[str, Sequence[Setting]] = {name: CODECS[name].sweep for name in args.codecs}
        if InrCodec.name in sweeps:
            sweeps[InrCodec.name] = InrCodec.make_sweep(args.inrcodec_bpps, args.inrcodec_efforts, args.inrcodec_device)
            # Only for runs.jsonl's record of the options: the workers read the device from the settings.
            InrCodec.options = {**InrCodec.options, "device": args.inrcodec_device}
        failed = rd(args.images, args.out, sweeps, args.jobs, args.limit_images, argv, args.keep_cocos)
        _finish(args.out, args.images, args)
        return 1 if failed else 0
    if not (args.results / RD_CSV).exists():
        print(f"no {RD_CSV} in {args.results}", file=sys.stderr)
        return 2
    if args.command == "summary":
        _finish(args.results, None, None)
    else:
        _finish(args.results, args.images or sheet_source(read_runs(args.results)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
