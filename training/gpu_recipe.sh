#!/usr/bin/env bash
# The training recipe on one GPU machine, inside a fixed wall-clock budget: the teacher,
# then (STUDENTS=1) the four rows of the ablation (hard / soft / soft + adversarial /
# AB + soft + adversarial) and a longer AB + soft + adversarial student, side by side.
#
#   python -m training.compact_data --out .gpu/data --split train dev --quality 80   # 47 MB: fits a 64 MiB upload
#   TEXTFILTER_DATA_ROOT=.gpu/data FONTS=.gpu/fonts OUT=gpu-out bash training/gpu_recipe.sh
#   TEACHER_TIME=185 TEACHER_EPOCHS=200 STUDENTS=0 ... bash training/gpu_recipe.sh   # teacher only, 185 s
#
# Each stage runs under `timeout`, so the script ends inside BUDGET seconds; a stage cut
# short still leaves its weights (the last epoch's checkpoint, optimiser state dropped).
# Results go to $OUT: teacher.pt, <row>.pt, long.pt and logs.tar.gz (logs, AB-stage
# checkpoints). Evaluate on the real dev set here afterwards (MODEL.md):
#   python -m training.evaluate --checkpoint <teacher.pt>
#   python -m training.ablation --no_train --out_dir <dir with the row checkpoints>
#
# Measured on an H200 machine (16 cores, 2026-11-28): the data, not the GPU, sets the pace.
# Decoding + augmentation reached ~100 img/s per training process with DataLoader worker
# processes (14 workers or 2 alike) and ~190 img/s with 14 threads (LOADER=thread), against
# ~150 img/s for one core of the 2-core development machine. A width-0.5 teacher got 11
# epochs in 185 s; plan budgets from those rates.
set -u
BUDGET=${BUDGET:-500}            # seconds for everything
DEVICE=${DEVICE:-cuda}
TEACHER_WIDTH=${TEACHER_WIDTH:-0.5}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-36}
TEACHER_BUDGET=${TEACHER_BUDGET:-200}
ROW_EPOCHS=${ROW_EPOCHS:-18}     # student epochs per ablation row (AB epochs included)
LONG_EPOCHS=${LONG_EPOCHS:-48}   # the longer AB + KD student (AB epochs included)
AB_EPOCHS=${AB_EPOCHS:-2}
TEACHER_TIME=${TEACHER_TIME:-0}  # > 0: train the teacher for this many seconds (lr schedule on time; epochs = a cap)
LOADER=${LOADER:-thread}         # data workers: threads (processes were capped at ~100 img/s each on an H200 machine)
STUDENTS=${STUDENTS:-1}          # 0: teacher only
EXTRA=${EXTRA:-}                 # more flags for every stage (e.g. --epoch_size 64 for a smoke test)
OUT=${OUT:-gpu-out}
PY=${PYTHON:-python3}
RUNS=${RUNS:-.gpu/runs}
FONT_ARGS=${FONTS:+--synth.font_dirs $FONTS}

mkdir -p "$OUT" "$RUNS/logs"
export PYTHONUNBUFFERED=1
left() { echo $((BUDGET - SECONDS)); }

weights_only() {  # training checkpoint -> model checkpoint (no optimiser state)
  "$PY" -c 'import sys; from model.registry import weights_only_copy; weights_only_copy(*sys.argv[1:])' "$1" "$2"
}

collect() {  # $1 = final checkpoint, $2 = its last.pt, $3 = name under $OUT
  if [ -f "$1" ]; then cp "$1" "$OUT/$3"; elif [ -f "$2" ]; then weights_only "$2" "$OUT/$3" && echo "$3: cut short, last epoch kept"; fi
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"
nproc

# 1. Teacher (all workers).
timeout "$TEACHER_BUDGET" "$PY" -m training.train_teacher --device "$DEVICE" --num_workers 14 --num_threads 2 \
  --loader "$LOADER" --time_budget "$TEACHER_TIME" \
  --batch_size 32 --model_config "width=$TEACHER_WIDTH" --epochs "$TEACHER_EPOCHS" --eval_every 10 \
  --out_dir "$RUNS/teacher" --out "$RUNS/teacher.pt" $FONT_ARGS $EXTRA >"$RUNS/logs/teacher.log" 2>&1
echo "teacher: exit $? at ${SECONDS}s"; grep "epoch .*/" "$RUNS/logs/teacher.log" | tail -3
collect "$RUNS/teacher.pt" "$RUNS/teacher/last.pt" teacher.pt
[ -f "$OUT/teacher.pt" ] || { tail -30 "$RUNS/logs/teacher.log"; exit 1; }
TEACHER=$OUT/teacher.pt
[ "$STUDENTS" = 1 ] || { tar czf "$OUT/logs.tar.gz" "$RUNS/logs"; ls -la "$OUT"; exit 0; }

# 2. Students, in parallel: the four ablation rows (2 loader workers each) and a longer
#    AB + KD run (6 workers), every one until the budget is spent.
STUDENT="--device $DEVICE --num_threads 1 --eval_every 3 --loader $LOADER $FONT_ARGS $EXTRA"
T=$(($(left) - 15))
for row in hard soft soft_adv full; do
  timeout "$T" "$PY" -m training.ablation --rows "$row" --epochs "$ROW_EPOCHS" --ab_epochs "$AB_EPOCHS" \
    --out_dir "$RUNS/ablation" --teacher "$TEACHER" --num_workers 2 $STUDENT >"$RUNS/logs/$row.log" 2>&1 &
done
( timeout "$T" "$PY" -m training.distill --stage ab --teacher "$TEACHER" --epochs "$AB_EPOCHS" --num_workers 6 \
    --out_dir "$RUNS/long_ab" --out "$RUNS/long_ab.pt" $STUDENT >"$RUNS/logs/long.log" 2>&1 &&
  timeout "$(($(left) - 15))" "$PY" -m training.distill --stage kd --teacher "$TEACHER" --init "$RUNS/long_ab.pt" \
    --epochs "$((LONG_EPOCHS - AB_EPOCHS))" --num_workers 6 --out_dir "$RUNS/long" --out "$RUNS/long.pt" \
    $STUDENT >>"$RUNS/logs/long.log" 2>&1 ) &
wait
echo "students done at ${SECONDS}s"

for row in hard soft soft_adv full; do
  collect "$RUNS/ablation/$row.pt" "$RUNS/ablation/$row/last.pt" "$row.pt"
  grep "epoch .*/" "$RUNS/logs/$row.log" | tail -1
done
collect "$RUNS/long.pt" "$RUNS/long/last.pt" long.pt
grep "epoch .*/" "$RUNS/logs/long.log" | tail -1
cat "$RUNS/ablation/ablation.md" 2>/dev/null
tar czf "$OUT/logs.tar.gz" "$RUNS/logs" $(ls "$RUNS"/ablation/*_ab.pt "$RUNS"/long_ab.pt "$RUNS"/ablation/*.json 2>/dev/null)
ls -la "$OUT"
