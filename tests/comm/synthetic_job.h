// Test helper: a tiny deterministic training job for equivalence tests across world sizes and
// hosts (tests/comm/comm_worker_test.cc, tests/cluster/): a synthetic MNIST-format (IDX) dataset
// and a job file whose views are deterministic (crop scale (1,1), view 2 always flipped +
// solarized, every other probability 0).
//
// Optimizer: LARS (lr 0.02). With AdamW, parameters whose exact gradient is zero (the bias of a
// Linear feeding BatchNorm, the encoder's final-norm bias, attention key biases) receive pure
// rounding noise that Adam normalizes into +-lr steps, so they differ between ANY two reduction
// orders -- one process with 1 vs 2 threads included -- while the loss is unaffected.
#pragma once

#include <cstdint>
#include <fstream>
#include <random>
#include <string>

namespace vicreg::testing {

inline void WriteBigEndian32(std::ofstream& f, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

// n random 28x28 grayscale images + labels in the official IDX layout (uncompressed), in dir.
inline void WriteIdxDataset(const std::string& dir, int n) {
  std::mt19937 rng(1234);
  std::ofstream img(dir + "/train-images-idx3-ubyte", std::ios::binary);
  WriteBigEndian32(img, 2051);
  WriteBigEndian32(img, static_cast<uint32_t>(n));
  WriteBigEndian32(img, 28);
  WriteBigEndian32(img, 28);
  for (int i = 0; i < n * 28 * 28; ++i) img.put(static_cast<char>(rng() & 0xff));
  std::ofstream lab(dir + "/train-labels-idx1-ubyte", std::ios::binary);
  WriteBigEndian32(lab, 2049);
  WriteBigEndian32(lab, static_cast<uint32_t>(n));
  for (int i = 0; i < n; ++i) lab.put(static_cast<char>(i % 10));
}

// The job file (train.batch_size is per rank: pass --set train.batch_size=<global / ranks>).
inline std::string SyntheticJobYaml(const std::string& data_dir, int limit) {
  return R"(name: comm-equivalence
resources: {ranks: 1, device: cpu, threads_per_rank: 1, collective_timeout_s: 60}
data: {dataset: mnist, data_dir: )" +
         data_dir + ", limit: " + std::to_string(limit) + R"(, num_workers: 1, shuffle: true}
model: {backbone_name: vit_custom, image_size: 16, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2}
train:
  batch_size: 8
  num_epochs: 3
  warmup_epochs: 0
  log_every: 1
  seed: 7
  optimizer: lars
  learning_rate: 0.02
  vicreg: {proj_dim: 32, proj_hidden_dim: 32}
augment:
  view1: {crop_scale: [1.0, 1.0], crop_ratio: [1.0, 1.0], hflip_prob: 0, jitter_prob: 0, grayscale_prob: 0, blur_prob: 0, solarize_prob: 0}
  view2: {crop_scale: [1.0, 1.0], crop_ratio: [1.0, 1.0], hflip_prob: 1.0, jitter_prob: 0, grayscale_prob: 0, blur_prob: 0, solarize_prob: 1.0}
checkpoint: {every_epochs: 1, keep_last: 5}
metrics: {enabled: false}
)";
}

}  // namespace vicreg::testing
