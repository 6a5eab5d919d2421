#!/usr/bin/env bash
# vicreg_worker end to end on one GPU (real loader + on-device two-view augmentation + trainer):
# vit_small at 96 px, bf16, on a synthetic CIFAR-10-format dataset (10000 images), STEPS steps.
# Prints the trainer's log lines (img/s, data wait) and one JSON line
# {"bench":"worker",...}; exits non-zero when a logged loss is non-finite or a step was skipped, or
# the loss did not go down (mean of the last 3 logged steps >= mean of the first 3).
#   deploy/gpu/worker_throughput.sh BUILD_DIR OUT_DIR [BATCH=256] [STEPS=80]
# Overrides (tests/gpu/run_on_device.sh --dry-run uses them for a tiny CPU job):
#   WT_DEVICE=cuda WT_PRECISION=bf16 WT_MODEL_YAML='{backbone_name: vit_small_patch16_224, image_size: 96}'
set -eu
B=$1; OUT=$2; BATCH=${3:-256}; STEPS=${4:-80}
PY=${PY:-python3}
DEVICE=${WT_DEVICE:-cuda}
PRECISION=${WT_PRECISION:-bf16}
MODEL_YAML=${WT_MODEL_YAML:-"{backbone_name: vit_small_patch16_224, image_size: 96}"}
D=$OUT/thr; mkdir -p "$D"; rm -rf "$D/run"
"$PY" - "$D" <<'PY'
import sys, numpy as np
d = sys.argv[1]; rng = np.random.default_rng(0)
for b in range(1, 6):
    lab = rng.integers(0, 10, 2000, dtype=np.uint8)[:, None]
    img = rng.integers(0, 256, (2000, 3072), dtype=np.uint8)
    open(f"{d}/data_batch_{b}.bin", "wb").write(np.concatenate([lab, img], 1).tobytes())
PY
EPOCHS=$(( (STEPS * BATCH + 9999) / 10000 + 1 ))
LOG_EVERY=$(( STEPS >= 40 ? STEPS / 20 : 1 ))
cat > "$D/job.yaml" <<YAML
name: gpu_throughput
resources: {ranks: 1, device: $DEVICE}
data: {dataset: cifar10, data_dir: $D, num_workers: 4, prefetch_batches: 4}
model: $MODEL_YAML
train: {batch_size: $BATCH, num_epochs: $EPOCHS, warmup_epochs: 1, log_every: $LOG_EVERY, precision: $PRECISION}
checkpoint: {every_epochs: $EPOCHS}
metrics: {enabled: false}
YAML
rc=0
timeout 150 "$B/worker/vicreg_worker" --job "$D/job.yaml" --run-dir "$D/run" --max-steps "$STEPS" > "$D/worker.log" 2>&1 || rc=$?
grep -E "step [0-9]+/|finished|model:|non-finite" "$D/worker.log" || true
if [[ $rc != 0 ]]; then tail -20 "$D/worker.log"; echo "vicreg_worker exited $rc"; exit "$rc"; fi
"$PY" - "$D/run/metrics.jsonl" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" "$LOG_EVERY" <<'PY'
import json, math, sys
path, batch, steps, device, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
log_every = int(sys.argv[6])
rows = [json.loads(l) for l in open(path) if l.strip()]
loss = [r["loss"] for r in rows]
finite = all(v is not None and math.isfinite(v) for v in loss) and not any(r.get("skipped") for r in rows)
half = rows[len(rows) // 2:] or rows
ips = sorted(r["images_per_s"] for r in half if r.get("images_per_s"))
wait = sum(r.get("data_wait_s") or 0 for r in half) / max(1e-9, sum(r.get("step_s") or 0 for r in half))
first, last = loss[:3], loss[-3:]
down = finite and len(loss) >= 6 and sum(last) / len(last) < sum(first) / len(first)
print(json.dumps({"bench": "worker", "device": device, "precision": precision, "batch_size": batch,
                  "steps": rows[-1]["step"] if rows else 0, "logged_steps": len(rows),
                  "images_per_s_median": ips[len(ips) // 2] if ips else None, "data_wait_frac": wait,
                  "loss_first": loss[0] if loss else None, "loss_last": loss[-1] if loss else None,
                  "all_finite": finite, "loss_went_down": down}))
sys.exit(0 if finite and down and rows and rows[-1]["step"] > steps - log_every else 1)
PY
