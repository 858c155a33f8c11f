"""The sweep: every selected codec at each of its settings on every image, resumable and in parallel."""

from __future__ import annotations

import multiprocessing
import shlex
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.codecs import CODECS, Codec, InrCodec, Setting, setting_key
from bench.metrics import measure, ms_ssim, msssim_db, psnr
from bench.results import RD_CSV, RowKey, RowWriter, append_run, coco_name, machine, read_rows, row_key, utc_now

IMAGE_SUFFIXES = frozenset({".png", ".ppm", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Task:
    """One row to produce: a codec at one setting on one image.

    keep: a folder to save the file in (inrcodec's only), or None.
    """

    codec: str
    setting: Setting
    image: Path
    keep: Path | None = None

    @property
    def key(self) -> RowKey:
        return (self.codec, setting_key(self.setting), self.image.name)


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Lossless images in ``folder`` (not recursive), sorted by name, at most ``limit`` of them."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        msg = f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}"
        raise FileNotFoundError(msg)
    return images[:limit]


def plan(sweeps: dict[str, Sequence[Setting]], images: Sequence[Path], done: set[RowKey],
         keep: Path | None = None) -> list[Task]:
    """The tasks of a sweep whose rows aren't in ``done`` yet, codec by codec, image by image."""
    tasks = (
        Task(codec, setting, image, keep)
        for codec, settings in sweeps.items() for image in images for setting in settings
    )
    return [task for task in tasks if task.key not in done]


_codecs: dict[str, Codec] = {}  # one instance per codec and process


def run_task(task: Task) -> dict[str, Any]:
    """Encode and decode one image at one setting and measure it.

    Returns:
        A row with the keys of `bench.results.COLUMNS`.
    """
    import torch

    codec = _codecs.setdefault(task.codec, CODECS[task.codec]())
    with Image.open(task.image) as src:
        img = src.convert("RGB")  # an alpha channel would not be coded by every codec, so drop it
    data, enc = measure(lambda: codec.encode(img, task.setting))
    if task.keep is not None and task.codec == InrCodec.name:
        (task.keep / coco_name(task.image, task.setting["effort"], float(task.setting["bpp"]))).write_bytes(data)
    rec, dec = measure(lambda: codec.decode(data))
    ref, out = np.asarray(img), np.asarray(rec)
    if out.shape != ref.shape:
        msg = f"{task.codec} decoded {out.shape}, expected {ref.shape}"
        raise ValueError(msg)
    msssim = ms_ssim(ref, out)
    codec_name, setting, image = task.key
    return {
        "codec": codec_name,
        "codec_version": codec.version(),
        "setting": setting,
        "image": image,
        "width": img.width,
        "height": img.height,
        "bytes": len(data),
        "bpp": len(data) * 8 / (img.width * img.height),
        "psnr": psnr(ref, out),
        "msssim": msssim,
        "msssim_db": msssim_db(msssim),
        "encode_s": enc.seconds,
        "decode_s": dec.seconds,
        "encode_peak_mb": enc.peak_mb,
        "decode_peak_mb": dec.peak_mb,
        "torch_threads": torch.get_num_threads(),
        "machine": machine(),
        "date": utc_now(),
    }


def _try_task(task: Task) -> tuple[Task, dict[str, Any] | None, str | None]:
    # A failing codec must not end a sweep of hours: report it, write no row, and a rerun retries it.
    try:
        return task, run_task(task), None
    except Exception:
        return task, None, traceback.format_exc()


def _init_worker() -> None:
    # With several processes sharing the cores, torch's own thread pool would only oversubscribe them.
    import torch

    torch.set_num_threads(1)


def execute(tasks: Sequence[Task], csv_path: Path, jobs: int, done: int = 0) -> int:
    """Run tasks, appending each row to ``csv_path`` as it finishes, with a progress bar on stderr.

    Args:
        tasks: Rows to produce.
        csv_path: The ``rd.csv`` to append to (created with a header if missing).
        jobs: Worker processes; 1 runs in this process, with torch's default threads.
        done: Rows of the sweep finished earlier, so the bar shows the whole sweep.

    Returns:
        The number of tasks that failed (their tracebacks go to stderr).
    """
    failed = 0
    with RowWriter(csv_path) as writer, tqdm(total=done + len(tasks), initial=done, unit="row") as bar:

        def consume(results: Iterable[tuple[Task, dict[str, Any] | None, str | None]]) -> None:
            nonlocal failed
            for task, row, error in results:
                if row is not None:
                    writer.write(row)
                else:
                    failed += 1
                    bar.write(f"FAILED {task.key}:\n{error}")
                bar.update()

        if jobs == 1:
            consume(map(_try_task, tasks))
        else:
            # spawn, not fork: forking a process that has torch's thread pools running can deadlock.
            with multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
                consume(pool.imap_unordered(_try_task, tasks))
    return failed


def rd(
    images_dir: Path,
    out: Path,
    sweeps: dict[str, Sequence[Setting]],
    jobs: int = 1,
    limit_images: int | None = None,
    argv: Sequence[str] = (),
    keep_cocos: Path | None = None,
) -> int:
    """Run a rate-distortion sweep into ``out/rd.csv``, skipping rows that are already there.

    Args:
        images_dir: Folder of source images.
        out: Results folder (created if missing).
        sweeps: Settings to run, per codec name.
        jobs: Worker processes.
        limit_images: Use only the first images (by name).
        argv: The command line, logged to ``out/runs.jsonl`` for the report.
        keep_cocos: A folder to save inrcodec's files in (as `bench.decode_speed --cocos` reads them).

    Returns:
        The number of failed tasks.
    """
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / RD_CSV
    images = find_images(images_dir, limit_images)
    before = read_rows(csv_path)
    if keep_cocos is not None:
        keep_cocos.mkdir(parents=True, exist_ok=True)
    tasks = plan(sweeps, images, {row_key(row) for row in before}, keep_cocos)
    started, start = utc_now(), time.perf_counter()
    planned = len(images) * sum(map(len, sweeps.values()))
    failed: int | None = None
    try:
        failed = execute(tasks, csv_path, jobs, done=planned - len(tasks))
        return failed
    finally:  # log interrupted runs too (rows_failed None): their rows are in the CSV
        append_run(
            out,
            {
                "command": shlex.join(["python", "-m", "bench", *argv]),
                "images": str(images_dir.resolve()),
                "started": started,
                "wall_s": round(time.perf_counter() - start, 1),
                "rows_written": len(read_rows(csv_path)) - len(before),
                "rows_failed": failed,
                "jobs": jobs,
                "machine": machine(),
                "options": {name: CODECS[name].options for name in sweeps},
            },
        )
