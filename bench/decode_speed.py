"""Decoder speed and memory: native size, 2048x2048 and 8192x8192.

    python -m bench.decode_speed --image ../shared/data/kodak/kodim01.png --out bench/results/decode-<date>
    python -m bench.decode_speed --image ../shared/data/kodak/kodim01.png --out bench/results/decode-<date> \
        --tree /path/to/checkout-A --tree /path/to/checkout-B --rounds 5 --sizes native --bpps 0.5,1.0 \
        --efforts fast,default
    python -m bench.decode_speed --images ../shared/data/kodak --limit-images 12 --sizes native \
        --bpps 0.5,1.0 --out bench/results/decode-<date> --keep-cocos /tmp/cocos
    python -m bench.decode_speed --cocos /tmp/cocos --sizes native --tree A --tree B --rounds 3 \
        --out bench/results/decode-<date>b

Encodes the image once per rate and effort (`--efforts`, default "default":
decode cost depends on the architecture, which differs between efforts
(`--effort fast` files carry a narrower context model), and on how many
latents are non-zero, which grows with the rate; `--iterations` shortens
the fits, for tests), then decodes each size in
a fresh child process so peak RSS (ru_maxrss) belongs to that decode alone;
each child reports its first decode (what a command-line decode costs
after the imports: caches filled, first calls) and then its best of
`--repeats` decodes. With several `--tree`s
(source checkouts, put first on PYTHONPATH) the same file is decoded by each
tree in turn, A B A B ... for `--rounds` rounds, so a drift in the machine's
speed hits every tree alike; the table gives each tree's median over the
rounds, and the pixels' MD5 shows whether the trees agree. With `--images`
every image of a folder is encoded and timed the same way, and decode.md
adds the mean and the slowest image per setting. `--keep-cocos` saves the
encoded files, and `--cocos` decodes such a folder instead of encoding
(the encodes of a Kodak run take most of its time: comparing decoders
again on the same files then takes minutes). Writes decode.csv and
decode.md into the output folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .results import coco_name, env_with_tree, machine
from .run import find_images

SIZES = ("native", "2048x2048", "8192x8192")

CHILD = r"""
import hashlib, json, resource, sys, time
import inrcodec.api  # the API's imports (torch's, in trees before 2026-12-05) before the first decode's timer
import inrcodec
data = open(sys.argv[1], "rb").read()
size = None if sys.argv[2] == "native" else sys.argv[2]
t0 = time.perf_counter()
inrcodec.decode_array(data, size=size)  # the first decode pays the first-call costs (not the imports)
first = time.perf_counter() - t0
best = float("inf")
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    pixels = inrcodec.decode_array(data, size=size)
    best = min(best, time.perf_counter() - t0)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": best, "first_seconds": first, "peak_rss_mb": rss_mb, "width": pixels.shape[1], "height": pixels.shape[0],
                  "pixels_md5": hashlib.md5(pixels.tobytes()).hexdigest()}))
"""


def measure(coco: Path, size: str, threads: int, repeats: int, tree: Path | None = None) -> dict[str, float]:
    """Decode in a child process (with `tree` first on its path); return its best time and peak RSS."""
    # The thread count through the environment: torch (trees before
    # 2026-12-05's numpy decoder) and OpenBLAS (numpy) both read it at start.
    env = {**env_with_tree(tree), "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    # Started in the temporary folder: `python -c` puts the working folder
    # first on sys.path, which would shadow the tree's checkout.
    out = subprocess.run([sys.executable, "-c", CHILD, str(coco), size, str(threads), str(repeats)],
                         check=True, capture_output=True, text=True, env=env, cwd=coco.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def encode_all(files: Iterable[tuple[Path, str, float]], folder: Path, iterations: int | None,
               keep: Path | None) -> dict[tuple[Path, str, float], Path]:
    """Encode each (image, effort, rate) into `folder` (and a copy into `keep`)."""
    import inrcodec

    cocos = {}
    for image, effort, bpp in files:
        coco = cocos[image, effort, bpp] = folder / coco_name(image, effort, bpp)
        result, _ = inrcodec.encode_with_report(image, bpp=bpp, effort=effort, device="cpu", iterations=iterations)
        coco.write_bytes(result.data)
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / coco.name).write_bytes(result.data)
        print(f"encoded {image.name} {effort} {bpp} bpp: {len(result.data)} bytes", file=sys.stderr, flush=True)
    return cocos


def kept_cocos(folder: Path) -> dict[tuple[Path, str, float], Path]:
    """The files of `folder` named by `coco_name`, by (image, effort, rate), in name order."""
    cocos = {}
    for coco in sorted(folder.glob("*.coco")):
        image, effort, bpp = coco.stem.rsplit("-", 2)
        cocos[Path(image), effort, float(bpp)] = coco
    if not cocos:
        raise SystemExit(f"no .coco files in {folder}")
    return cocos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path)
    source.add_argument("--images", type=Path, help="a folder: every image in it (`--limit-images` first ones)")
    source.add_argument("--cocos", type=Path,
                        help="a folder of files an earlier run kept (`--keep-cocos`): decode those, encode nothing")
    parser.add_argument("--keep-cocos", type=Path, default=None, help="save the encoded files in this folder")
    parser.add_argument("--limit-images", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=[],
                        help="a source checkout to time (repeatable; default: the installed inrcodec)")
    parser.add_argument("--rounds", type=int, default=1, help="trees alternate this many times")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--bpps", default="0.5", help="comma-separated rates to encode the image at (default 0.5)")
    parser.add_argument("--efforts", default="default",
                        help="comma-separated efforts to encode the image with (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training steps of each encode instead of the effort's (tests)")
    args = parser.parse_args(argv)
    import inrcodec

    trees: list[Path | None] = list(args.tree) or [None]
    sizes = [size for size in args.sizes.split(",") if size]
    bpps = [float(b) for b in args.bpps.split(",") if b]
    efforts = [effort for effort in args.efforts.split(",") if effort]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.cocos:
            cocos = kept_cocos(args.cocos)
            images = sorted({image for image, _, _ in cocos}, key=lambda image: image.name)
        else:
            images = [args.image] if args.image else find_images(args.images, args.limit_images)
            cocos = encode_all(itertools.product(images, efforts, bpps), Path(tmp), args.iterations, args.keep_cocos)
        files = list(cocos)
        for round_, tree, (image, effort, bpp), size in itertools.product(range(args.rounds), trees, files, sizes):
            repeats = args.repeats if size != "8192x8192" else 1
            coco = cocos[image, effort, bpp]
            r = measure(coco, size, args.threads, repeats, tree)
            rows.append({"image": image.name, "tree": str(tree or "installed"), "round": round_,
                         "effort": effort, "bpp": bpp, "file_bytes": coco.stat().st_size, "size": size,
                         "width": r["width"], "height": r["height"],
                         "seconds": round(r["seconds"], 4), "first_seconds": round(r["first_seconds"], 4),
                         "peak_rss_mb": round(r["peak_rss_mb"], 1),
                         "pixels_md5": r["pixels_md5"], "threads": args.threads,
                         "machine": machine(),
                         "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         "inrcodec": inrcodec.__version__})
    with open(args.out / "decode.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Decode speed and memory", "",
             f"Generated by `python -m bench.decode_speed {' '.join(argv or sys.argv[1:])}`.", "",
             "| image | tree | effort | requested bpp (file bytes) | size | seconds (median of rounds' best) "
             "| peak RSS (MiB) | threads | pixels MD5 | first decode (s, median) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    # per (tree, effort, bpp, size): each image's (median seconds, median first decode)
    per_image: dict[tuple[str, str, float, str], list[tuple[float, float]]] = {}
    for (image, effort, bpp), size, tree in itertools.product(files, sizes, trees):
        tree_name = str(tree or "installed")
        mine = [r for r in rows if r["tree"] == tree_name and r["size"] == size
                and (r["image"], r["effort"], r["bpp"]) == (image.name, effort, bpp)]
        median = statistics.median(r["seconds"] for r in mine)
        first = statistics.median(r["first_seconds"] for r in mine)
        per_image.setdefault((tree_name, effort, bpp, size), []).append((median, first))
        lines.append(f"| {image.name} | {tree_name} | {effort} | {bpp} ({mine[0]['file_bytes']}) "
                     f"| {mine[0]['width']}x{mine[0]['height']} "
                     f"| {median:.3f} "
                     f"| {statistics.median(r['peak_rss_mb'] for r in mine):.1f} | {args.threads} "
                     f"| {', '.join(sorted({r['pixels_md5'][:12] for r in mine}))} | {first:.3f} |")
    if len(images) > 1:
        lines += ["", f"Over the {len(images)} images:", "",
                  "| tree | effort | requested bpp | size | mean seconds | slowest image (s) | mean first decode (s) |",
                  "|---|---|---|---|---|---|---|"]
        for (tree_name, effort, bpp, size), timings in per_image.items():
            seconds, firsts = zip(*timings)
            lines.append(f"| {tree_name} | {effort} | {bpp} | {size} | {statistics.fmean(seconds):.3f} "
                         f"| {max(seconds):.3f} | {statistics.fmean(firsts):.3f} |")
    lines += ["", f"Machine: {rows[0]['machine']}; rows dated {rows[0]['date']} to {rows[-1]['date']}; "
              f"{args.rounds} round(s), best of {args.repeats} decodes per child (1 at 8192x8192).",
              "Peak RSS is the whole child process (Python, the decoder and, in trees before 2026-12-05, torch)."]
    (args.out / "decode.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
