#!/bin/bash
# alternate old (main, /tmp/wt0) and new (seed pair and the late-drop guard under time limits too, /tmp/wt3) image by image at 0.5 bpp, under $1 s
S=$1
run() { # tree out NN
  cd $1 && PYTHONPATH=$1 /work/main/.venv/bin/python -m bench.quality_vs_time --images /tmp/k1/$3 --seconds $S --bpp 0.5 \
    --effort default --out $2 > /dev/null 2>>/tmp/altqvt.err
}
for NN in 01 02 03 04 05 06 07 08 09 10 11 12; do
  if [ $((10#$NN % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    if [ $which = old ]; then run /tmp/wt0 /tmp/qvt-old $NN; else run /tmp/wt3 /tmp/qvt-new $NN; fi
    echo "$(date -u +%H:%M:%S) ${S}s kodim$NN $which done" >> /tmp/altqvt-order.log
  done
done
echo ALLDONE $S >> /tmp/altqvt-order.log
