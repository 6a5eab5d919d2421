// Typed job configuration: the single source of truth for every config key.
//
// Two equivalent input forms (docs/ARCHITECTURE.md "Configuration"), both parsed strictly by config_loader:
//   1. one job file (what `vicregctl submit` sends) with sections
//        name, max_restarts, resources, data, model, train (with vicreg:), augment,
//        checkpoint, eval, metrics
//   2. the seed's three files: data_config.yaml -> data, train_config_vicreg.yaml -> train,
//      model_config_vicreg.yaml -> model (one to one; the other sections take defaults).
// Every struct below is plain data with the documented defaults; no torch, no gRPC here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vicreg::config {

// resources: where and how many ranks.
struct ResourcesConfig {
  int ranks = 1;                      // world size; global batch = ranks * train.batch_size
  std::string device = "cpu";         // cpu | cuda   (cuda: rank r uses cuda:<local_rank>)
  std::string backend = "auto";       // auto | nccl | mpi | gloo | single  (auto: nccl on cuda, mpi on cpu)
  int threads_per_rank = 1;           // ATen intra-op threads per rank (0 = leave library default)
  double collective_timeout_s = 120;  // a collective that takes longer fails the job (dead/hung peer)
  int nodes = 0;                      // cluster launchers: nodes to spread the ranks over (0 = the cluster chooses)
  int ranks_per_node = 0;             // cluster launchers: ranks on each node (0 = the cluster chooses)
};

// data: which dataset and how it is fed.
struct DataConfig {
  std::string dataset = "cifar10";  // cifar10 | cifar100 | stl10 | fashion_mnist | mnist | image_folder | tensor_cache
  std::string data_dir = "data";  // folder holding the dataset's official files (or the .safetensors for tensor_cache)
  std::string split = "train";    // train | test | unlabeled | train+unlabeled (stl10)
  int num_workers = 2;            // background threads that read + augment batches
  int prefetch_batches = 4;       // bounded queue depth per rank
  bool shuffle = true;            // epoch-seeded permutation; false = dataset order
  int64_t limit = 0;              // use only the first N images (0 = all); for smoke runs
  bool augment_on_device = true;  // run augmentation on the training device (cuda) instead of loader threads
};

// model: encoder + projector shapes. backbone_name picks a timm preset; vit_custom uses the explicit sizes.
struct ModelConfig {
  std::string backbone_name =
      "vit_small_patch16_224";  // vit_tiny_patch16_224 | vit_small_patch16_224 | vit_base_patch16_224 | vit_custom
  int image_size = 96;          // must be divisible by patch_size
  int in_chans = 3;
  int patch_size = 16;  // presets override: 16
  int embed_dim = 384;  // presets override (tiny 192, small 384, base 768)
  int depth = 12;       // presets override: 12
  int num_heads = 6;    // presets override (tiny 3, small 6, base 12)
  double mlp_ratio = 4.0;
  double drop_path_rate = 0.0;
  std::string init_from;  // optional: timm-keyed encoder .safetensors to initialize from
};

// train.vicreg: loss weights and projector dims (the seed's keys).
struct VicregConfig {
  int proj_dim = 2048;
  int proj_hidden_dim = 2048;
  int proj_layers = 3;  // number of Linear layers in the projector (>= 1)
  double lambda_invariance = 25.0;
  double mu_variance = 25.0;
  double nu_covariance = 1.0;
  double gamma = 1.0;                          // target std
  double epsilon = 1e-4;                       // inside sqrt(var + eps)
  std::string covariance_reduction = "paper";  // paper: sum offdiag^2 / D per view, summed over views
                                               // seed: mean offdiag^2 per view, averaged over views
  std::string global_stats = "allreduce";      // allreduce: variance/covariance from all-reduced statistics
                                               // gather: from the all-gathered batch (moves W x B x D per view)
};

// train: optimization (the seed's keys plus production knobs).
struct TrainConfig {
  std::string training_mode = "vicreg";  // only "vicreg"
  std::string recipe;                    // "" | fb_lars: sets the optimization keys not given (docs/DEFAULTS.md)
  double base_lr = 0.2;                  // fb_lars only: learning_rate = base_lr x global batch / 256
  int batch_size = 128;                  // per rank
  int num_epochs = 200;
  double learning_rate = 1e-3;  // peak lr after warmup (not scaled by batch size)
  double min_lr = 0.0;          // cosine floor
  double weight_decay = 1e-4;
  double warmup_epochs = 10;                   // linear warmup per iteration; must be < num_epochs
  std::string optimizer = "adamw";             // adamw | lars
  std::array<double, 2> betas = {0.9, 0.999};  // adamw
  double momentum = 0.9;                       // lars
  double lars_eta = 0.001;                     // lars trust coefficient
  double grad_clip = 1.0;                      // global-norm clipping; 0 = off
  std::string precision = "fp32";              // fp32 | bf16 | fp16 (bf16/fp16 only on cuda; loss always fp32)
  uint64_t seed = 42;
  int log_every = 10;                 // steps between metrics.jsonl lines / metric updates
  int diagnostics_every = 0;          // steps between collapse diagnostics (0 = same as log_every)
  int max_consecutive_nonfinite = 5;  // stop the job after this many non-finite losses in a row
  int64_t max_steps = 0;              // stop after this many global steps (0 = run all epochs)
  double time_budget_s = 0;  // > 0: re-plan the step count from the measured rate to end training in this time
  VicregConfig vicreg;
};

// augment: one set of parameters per view: facebookresearch's asymmetric views, except crop_scale
// (0.2, 1) where theirs is (0.08, 1) (docs/DEFAULTS.md says why, for every default).
struct ViewAugmentConfig {
  std::array<double, 2> crop_scale = {0.2, 1.0};
  std::array<double, 2> crop_ratio = {3.0 / 4.0, 4.0 / 3.0};
  std::string interpolation = "bicubic";  // bicubic | bilinear | nearest
  double hflip_prob = 0.5;
  double jitter_prob = 0.8;
  double brightness = 0.4;
  double contrast = 0.4;
  double saturation = 0.2;
  double hue = 0.1;  // in [0, 0.5]
  double grayscale_prob = 0.2;
  double blur_prob = 1.0;  // view1 1.0, view2 0.1
  std::array<double, 2> blur_sigma = {0.1, 2.0};
  double blur_kernel_fraction = 0.1;  // kernel size = odd(round(fraction * image_size)), at least 3
  double solarize_prob = 0.0;         // view1 0.0, view2 0.2
  double solarize_threshold = 128;    // on the 0..255 scale
};

// The second view's facebookresearch defaults: like view1 but blur_prob 0.1, solarize_prob 0.2.
inline ViewAugmentConfig View2AugmentDefaults() {
  ViewAugmentConfig v;
  v.blur_prob = 0.1;
  v.solarize_prob = 0.2;
  return v;
}

struct AugmentConfig {
  ViewAugmentConfig view1;                           // defaults: blur_prob 1.0, solarize_prob 0.0
  ViewAugmentConfig view2 = View2AugmentDefaults();  // defaults: blur_prob 0.1, solarize_prob 0.2
  std::vector<double> mean;                          // empty = the dataset's own mean (per channel, 0..1 scale)
  std::vector<double> std;                           // empty = the dataset's own std
  std::string order = "photometric_first";           // photometric_first | torchvision (worker/data/augment.h)
};

// checkpoint: what is written to <run_dir>/checkpoints/.
struct CheckpointConfig {
  int every_epochs = 1;          // write epoch_XXXX.pt at the end of every N epochs (0 = only the last)
  int64_t every_steps = 0;       // also write step checkpoints (step_XXXXXXXX.pt) every N steps (0 = off)
  int keep_last = 3;             // keep the newest N checkpoints ...
  std::vector<int> keep_epochs;  // ... plus these epochs forever
};

// eval: scheduled evaluation by the coordinator, plus optional online monitoring in the worker.
struct EvalDatasetConfig {
  std::string name = "cifar10";  // cifar10 | cifar100 | stl10 | fashion_mnist | mnist | image_folder | tensor_cache
  std::string data_dir;          // empty = data.data_dir
};
// eval.resources: what one scheduled evaluation (one vicreg_eval process) gets from the launcher.
struct EvalResourcesConfig {
  std::string device = "cpu";  // cpu | cuda   (feature extraction; Slurm: --gpus-per-task=1)
  int cpus = 0;                // vicreg_eval --threads and Slurm --cpus-per-task (0 = all cores / the cluster default)
};
struct EvalConfig {
  std::vector<int> epochs;                  // evaluate these epochs' checkpoints ...
  int every_epochs = 0;                     // ... and/or every N epochs (0 = off)
  bool final = false;                       // ... and/or the last epoch checkpoint once the job succeeded
  std::vector<EvalDatasetConfig> datasets;  // empty = the training dataset
  std::vector<std::string> probes = {"linear", "knn"};
  int knn_k = 20;
  double knn_temperature = 0.07;
  int max_attempts = 3;     // a failing eval is retried this many times, then recorded as failed
  int64_t limit_train = 0;  // 0 = whole split; for smoke runs
  int64_t limit_test = 0;
  bool online_linear = false;       // train a linear classifier on detached features alongside (needs labels)
  int online_knn_every_epochs = 0;  // periodic kNN on a held-out subset (0 = off)
  int64_t online_knn_subset = 2000;
  EvalResourcesConfig resources;
};

// metrics: the per-rank Prometheus endpoint.
struct MetricsConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";
  int port = 0;  // 0 = pick a free port and log it; otherwise port + local_rank
};

struct JobConfig {
  std::string name = "vicreg";  // [A-Za-z0-9._-]{1,64}
  int max_restarts = 2;         // coordinator restarts from the latest checkpoint at most this often
  int priority = 0;             // higher runs first (coordinator)
  double max_queue_wait_s =
      0;  // coordinator: fail the job when an attempt waits longer in the cluster queue (0 = no limit)
  ResourcesConfig resources;
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  AugmentConfig augment;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  MetricsConfig metrics;
};

}  // namespace vicreg::config
