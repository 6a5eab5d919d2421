#!/usr/bin/env bash
# vicreg_worker end to end on one GPU (real loader + on-device two-view augmentation + trainer):
# vit_small at 96 px, bf16, on a synthetic CIFAR-10-format dataset. Prints the trainer's log lines
# (img/s, data wait). Usage: deploy/gpu/worker_throughput.sh BUILD_DIR OUT_DIR [BATCH]
set -eu
B=$1; OUT=$2; BATCH=${3:-256}
D=$OUT/thr; mkdir -p "$D"
python3 - "$D" <<'PY'
import sys, numpy as np
d = sys.argv[1]; rng = np.random.default_rng(0)
for b in range(1, 6):
    lab = rng.integers(0, 10, 2000, dtype=np.uint8)[:, None]
    img = rng.integers(0, 256, (2000, 3072), dtype=np.uint8)
    open(f"{d}/data_batch_{b}.bin", "wb").write(np.concatenate([lab, img], 1).tobytes())
PY
cat > "$D/job.yaml" <<YAML
name: gpu_throughput
resources: {ranks: 1, device: cuda}
data: {dataset: cifar10, data_dir: $D, num_workers: 4, prefetch_batches: 4}
model: {backbone_name: vit_small_patch16_224, image_size: 96}
train: {batch_size: $BATCH, num_epochs: 10, warmup_epochs: 1, log_every: 10, precision: bf16}
checkpoint: {every_epochs: 10}
metrics: {enabled: false}
YAML
timeout 150 "$B/worker/vicreg_worker" --job "$D/job.yaml" --run-dir "$D/run" --max-steps 80 2>&1 | grep -E "step (10|40|70|80)/|finished|model:"
