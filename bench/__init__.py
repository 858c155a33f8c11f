"""Rate-distortion benchmark harness for inrcodec and classical image codecs.

Usage, from the repository root::

    python -m bench rd --images ../shared/data/kodak --out bench/results/kodak-<date> \\
        [--codecs jpeg420,jpeg444,webp,avif,jp2,inrcodec] [--inrcodec-bpps 0.25,0.5,0.75,1.0] \\
        [--inrcodec-efforts default] [--jobs N] [--limit-images K]
    python -m bench summary <results-dir>    # summary CSVs and report.md from rd.csv alone
    python -m bench plot <results-dir>       # RD plots, visual sheet (unless --no-sheet) and report.md

``rd`` appends one row per (codec, setting, image) to ``<out>/rd.csv`` and skips rows already there, so an
interrupted sweep continues where it stopped; it ends by running ``summary`` and ``plot``.

Modules: `bench.codecs` (codecs under test), `bench.metrics` (PSNR, MS-SSIM, time and memory),
`bench.results` (the CSV and run log), `bench.run` (the sweep), `bench.summary` (curves, fixed rates,
BD-rates), `bench.plot` and `bench.report`.
"""
