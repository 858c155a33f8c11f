#!/bin/bash
# alternate old (main, /tmp/wt0) and new (firm landing and seed pair from 0.1 bpp, /tmp/wt4) image by image at 0.15 bpp, the whole pair encode
run() { # tree out cocos NN
  cd $1 && PYTHONPATH=$1 /work/main/.venv/bin/python -m bench rd --images /tmp/k1/$4 --out $2 --codecs inrcodec \
    --inrcodec-bpps 0.15 --inrcodec-efforts default --jobs 1 --no-sheet --keep-cocos $3 > /dev/null 2>>/tmp/alt015.err
}
for NN in 01 02 03 04 05 06 07 08 09 10 11 12; do
  if [ $((10#$NN % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
  for which in $order; do
    if [ $which = old ]; then run /tmp/wt0 /tmp/r015-old /tmp/c015-old $NN; else run /tmp/wt4 /tmp/r015-new /tmp/c015-new $NN; fi
    echo "$(date -u +%H:%M:%S) kodim$NN $which done" >> /tmp/alt015-order.log
  done
done
echo ALLDONE >> /tmp/alt015-order.log
