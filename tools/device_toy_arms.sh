#!/usr/bin/env bash
# Train toy-model variants ("arms") side by side on one GPU, judge each, and run the default-budget
# edit-quality suite on each, all inside fixed time boxes; pack what came out for the trip back.
#
#   bash tools/device_toy_arms.sh OUT TRAIN_S EVAL_S
#
# Run from the repository root on a machine with CUDA. Without videop2p installed, it runs from
# src/ and takes extra packages from .whl/ (see the device notes in the README). Each arm's phase-2
# training (UNet and text encoder from scratch on the bundled VAE) gets TRAIN_S seconds in all
# (`toy train --time-budget`: its schedule is shortened to the steps that fit, so the learning rate
# still decays to its end); a run that overstays is killed a minute later and exported from its
# last checkpoint. Each arm is then judged (`toy eval`) while the suite runs on it; the suite is
# stopped after EVAL_S seconds and its tables then hold the cases finished by then (every shard
# writes every kept case).
# OUT gets results.tgz (logs, quality JSON, tables), the best arm's model in full precision
# (best_model_ARM.tar.part-*) and the others' in float16 (ARM_model_fp16.tar), without the VAE and
# tokenizer, which are the bundled ones.
set -u
OUT=${1:?OUT folder}
TRAIN_S=${2:-200}
EVAL_S=${3:-240}
SHARDS=${SHARDS:-5}  # suite processes per arm
WORKERS=${WORKERS:-4}  # processes rendering each arm's dataset
STEPS=${STEPS:-3000}
BATCH=${BATCH:-64}
DATASET=${DATASET:-20000}
DEVICE=${DEVICE:-cuda}
EVAL_ARGS=${EVAL_ARGS:-}  # e.g. "--cases 2 --tune-steps 2 --steps 3" for a smoke run
ARMS=${ARMS:-"bag_tok bag clip_tok"}
declare -A FLAGS=(
  [bag_tok]="--text-layers 0 --token-weight 0.3"
  [bag_tok01]="--text-layers 0 --token-weight 0.1"
  [bag]="--text-layers 0"
  [clip_tok]="--text-layers 2 --token-weight 0.3"
  [clip]="--text-layers 2"
)
METHODS=()
IFS=, read -ra names <<<"${METHODS_LIST:-Video-P2P,Video-P2P + frame-attention control,fast,Tune-A-Video}"
for m in "${names[@]}"; do METHODS+=(--method "$m"); done
BUNDLED=src/videop2p/data/toy_model
RUNS=${RUNS:-/tmp/arms}
mkdir -p "$OUT" "$RUNS"

if ! python3 -c "import videop2p" 2>/dev/null; then
  if [ -d .whl ]; then  # e.g. diffusers' wheel, fetched here with pip download (device notes)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  if ! python3 -c "import av" 2>/dev/null; then  # no PyAV there, and its wheel is too big to carry:
    mkdir -p /tmp/avstub/av                     # an empty module lets videop2p import; the suite and
    : >/tmp/avstub/av/__init__.py               # the toy commands read and write no video
    export PYTHONPATH=/tmp/avstub${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=10
VP=(python3 -m videop2p.cli)
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; } | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers, transformers; print(torch.__version__, diffusers.__version__, transformers.__version__)" | tee -a "$OUT/gpu.txt"

t0=$SECONDS
for arm in $ARMS; do
  (
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=2 timeout $((TRAIN_S + 60)) "${VP[@]}" toy train "$RUNS/$arm" --unet-steps "$STEPS" \
      --batch-size "$BATCH" --dataset-size "$DATASET" --vae-from "$BUNDLED" --device "$DEVICE" --workers "$WORKERS" \
      --time-budget "$TRAIN_S" ${FLAGS[$arm]} >"$RUNS/train_$arm.log" 2>&1
    [ -d "$RUNS/$arm/model" ] || "${VP[@]}" toy export "$RUNS/$arm" "$RUNS/$arm/model" >>"$RUNS/train_$arm.log" 2>&1
  ) &
done
wait
echo "trained in $((SECONDS - t0)) s"
for arm in $ARMS; do echo "== $arm"; tail -c 600 "$RUNS/train_$arm.log"; done

t1=$SECONDS
for arm in $ARMS; do
  OMP_NUM_THREADS=1 timeout "$EVAL_S" "${VP[@]}" toy eval --model "$RUNS/$arm/model" --seeds 1 --steps 25 \
    --device "$DEVICE" --json "$RUNS/quality_$arm.json" >"$RUNS/quality_$arm.log" 2>&1 &
  for k in $(seq 0 $((SHARDS - 1))); do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 timeout "$EVAL_S" "${VP[@]}" eval --out "$RUNS/eval_$arm" --model "$RUNS/$arm/model" \
      --device "$DEVICE" --shard "$k/$SHARDS" "${METHODS[@]}" $EVAL_ARGS >"$RUNS/eval_${arm}_$k.log" 2>&1 &
  done
done
wait
echo "judged and suite ran $((SECONDS - t1)) s"
for arm in $ARMS; do echo "== $arm"; cat "$RUNS/quality_$arm.log"; done

best="" best_score=-1
for arm in $ARMS; do
  echo "== $arm: $(ls "$RUNS/eval_$arm/cases" 2>/dev/null | wc -l) cases kept"
  cat "$RUNS/eval_$arm/summary.md" 2>/dev/null
  score=$(python3 -c "
import json, math, sys
s = json.load(open(sys.argv[1]))['summary'].get('Video-P2P', {})
v = s.get('colour_swap_success', float('nan')) + 0.01 * s.get('edit_success', 0)
print(-1 if math.isnan(v) else v)" "$RUNS/eval_$arm/summary.json" 2>/dev/null || echo -1)
  if python3 -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$score" "$best_score"; then
    best=$arm best_score=$score
  fi
done
echo "best arm: ${best:-none} ($best_score)"

tar czf "$OUT/results.tgz" -C "$RUNS" --exclude='*/model' --exclude='*/ckpt' --exclude='*.png' .
for arm in $ARMS; do
  m="$RUNS/$arm/model"
  [ -d "$m" ] || continue
  if [ "$arm" = "$best" ]; then
    tar cf - -C "$RUNS/$arm" --exclude=model/vae --exclude=model/tokenizer model | split -b 15M - "$OUT/best_model_$arm.tar.part-"
  else
    python3 - "$m" "$RUNS/${arm}_fp16" <<'EOF'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(src, dst / "model", ignore=shutil.ignore_patterns("vae", "tokenizer"))
for f in (dst / "model").rglob("*.safetensors"):
    save_file({k: v.half() if v.is_floating_point() else v for k, v in load_file(f).items()}, f)
EOF
    tar cf "$OUT/${arm}_model_fp16.tar" -C "$RUNS/${arm}_fp16" model
  fi
done
ls -la "$OUT"
