#!/usr/bin/env bash
# Checks of inrcodec on a CUDA machine, in one run that fits a short GPU loan:
#
#   bench/gpu_check.sh IMAGES OUT [SWEEP_SECONDS]
#
# 1. the pinned sample files decode to their pinned pixels on that machine (tests/test_samples.py;
#    decoding runs on the CPU in numpy since 2026-12-05, GPU or not);
# 2. a 15-second timed encode of the first image on the GPU and on one CPU thread (steps in the
#    time show the speed of a training step on each), and the GPU-trained file decodes;
# 3. `--effort max` at 0.5 bpp: the first half of IMAGES trained on the GPU, the second half on
#    the CPU (one thread per encode), side by side, for at most SWEEP_SECONDS (default 420: an
#    interrupt then, so each sweep still logs its run); the
#    rows finished by then are copied to OUT/max-cuda-rd.csv and OUT/max-cpu-rd.csv (with the
#    sweeps' runs.jsonl beside them; the rest of the results folders stays in a temporary folder).
#
# Run from the repository root with the package importable (PYTHONPATH=. will do) and its
# dependencies installed. Everything printed also goes to OUT/gpu_check.log.
set -uo pipefail
images=$(cd "$1" && pwd)
out=$2
sweep_s=${3:-420}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1

echo "== machine ($(date -u +%FT%TZ))"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
lscpu | grep -E '^(Model name|CPU\(s\))'

echo "== 1. sample files decode to their pinned pixels"
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_samples.py

echo "== 2. timed encodes (15 s) on the GPU and on one CPU thread"
first=$(find "$images" -maxdepth 1 -name '*.png' | sort | head -1)
timeout 120 python3 -m inrcodec encode "$first" "$out/smoke-cuda.coco" --bpp 0.5 --time-limit 15 --device cuda --json
work=$(mktemp -d)
OMP_NUM_THREADS=1 timeout 120 python3 -m inrcodec encode "$first" "$work/smoke-cpu.coco" --bpp 0.5 --time-limit 15 \
    --device cpu --json
timeout 120 python3 - "$out/smoke-cuda.coco" <<'EOF'
import hashlib, sys
import inrcodec
data = open(sys.argv[1], "rb").read()
print("decoded pixels md5:", hashlib.md5(inrcodec.decode_array(data).tobytes()).hexdigest())
EOF

echo "== 3. --effort max at 0.5 bpp: GPU and CPU side by side, ${sweep_s} s at most"
halves=$work
mkdir -p "$halves/gpu" "$halves/cpu"
mapfile -t pngs < <(find "$images" -maxdepth 1 -name '*.png' | sort)
half=$(( (${#pngs[@]} + 1) / 2 ))
for i in "${!pngs[@]}"; do
    if (( i < half )); then ln -s "${pngs[$i]}" "$halves/gpu/"; else ln -s "${pngs[$i]}" "$halves/cpu/"; fi
done
common=(--codecs inrcodec --inrcodec-bpps 0.5 --inrcodec-efforts max --no-sheet)
timeout -s INT -k 30 "$sweep_s" python3 -m bench rd --images "$halves/gpu" --out "$work/max-cuda" --inrcodec-device cuda \
    --jobs "$half" "${common[@]}" &
on_gpu=$!
timeout -s INT -k 30 "$sweep_s" python3 -m bench rd --images "$halves/cpu" --out "$work/max-cpu" --jobs "$half" "${common[@]}" &
on_cpu=$!
wait "$on_gpu" "$on_cpu"  # not a bare wait: that would wait for the tee above too
for run in max-cuda max-cpu; do
    cp "$work/$run/rd.csv" "$out/$run-rd.csv"
    cp "$work/$run/runs.jsonl" "$out/$run-runs.jsonl"
done
echo "== done ($(date -u +%FT%TZ))"
