// The one table of config keys: for every struct of config.h, the YAML key of each field
// (always equal to the field's name) and, for some, its role. Parsing, YAML output, key listings,
// config diffs and the operational keys are visitors over this table, so a field added to config.h
// needs exactly one line here.
//
// Roles: a key marked kOperational changes how a run is executed, logged, stored or evaluated, not what
// it learns, so it may differ when a run resumes from a checkpoint (config::IsOperational; the worker
// warns about every other key that differs). A section marked kOperational makes all its keys so.
//
// Internal to common/ (config_*.cc); other areas use config.h and config_loader.h.
#pragma once

#include <type_traits>

#include "common/config.h"

namespace vicreg::config::schema {

enum class KeyRole { kLearning, kOperational };
inline constexpr KeyRole kOperational = KeyRole::kOperational;

// Structs that appear as YAML maps (sections).
template <class S>
inline constexpr bool kIsSection =
    std::is_same_v<S, JobConfig> || std::is_same_v<S, ResourcesConfig> || std::is_same_v<S, DataConfig> ||
    std::is_same_v<S, ModelConfig> || std::is_same_v<S, TrainConfig> || std::is_same_v<S, VicregConfig> ||
    std::is_same_v<S, ViewAugmentConfig> || std::is_same_v<S, AugmentConfig> || std::is_same_v<S, CheckpointConfig> ||
    std::is_same_v<S, EvalDatasetConfig> || std::is_same_v<S, EvalConfig> || std::is_same_v<S, MetricsConfig> ||
    std::is_same_v<S, EvalResourcesConfig>;

// Calls v(key, field) or v(key, field, role) for every field of section `c` (const or not), in YAML
// output order. Visitors take the role as a defaulted parameter (KeyRole::kLearning).
template <class V, class T>
void Fields(V& v, T& c) {
  using S = std::remove_const_t<T>;
  static_assert(kIsSection<S>, "not a config section");
  if constexpr (std::is_same_v<S, JobConfig>) {
    v("name", c.name, kOperational);
    v("max_restarts", c.max_restarts, kOperational);
    v("priority", c.priority, kOperational);
    v("max_queue_wait_s", c.max_queue_wait_s, kOperational);
    v("resources", c.resources, kOperational);
    v("data", c.data);
    v("model", c.model);
    v("train", c.train);
    v("augment", c.augment);
    v("checkpoint", c.checkpoint, kOperational);
    v("eval", c.eval, kOperational);
    v("metrics", c.metrics, kOperational);
  } else if constexpr (std::is_same_v<S, ResourcesConfig>) {
    v("ranks", c.ranks);
    v("device", c.device);
    v("backend", c.backend);
    v("threads_per_rank", c.threads_per_rank);
    v("collective_timeout_s", c.collective_timeout_s);
    v("nodes", c.nodes);
    v("ranks_per_node", c.ranks_per_node);
  } else if constexpr (std::is_same_v<S, DataConfig>) {
    v("dataset", c.dataset);
    v("data_dir", c.data_dir);
    v("split", c.split);
    v("num_workers", c.num_workers, kOperational);
    v("prefetch_batches", c.prefetch_batches, kOperational);
    v("shuffle", c.shuffle);
    v("limit", c.limit);
    v("augment_on_device", c.augment_on_device, kOperational);
  } else if constexpr (std::is_same_v<S, ModelConfig>) {
    v("backbone_name", c.backbone_name);
    v("image_size", c.image_size);
    v("in_chans", c.in_chans);
    v("patch_size", c.patch_size);
    v("embed_dim", c.embed_dim);
    v("depth", c.depth);
    v("num_heads", c.num_heads);
    v("mlp_ratio", c.mlp_ratio);
    v("drop_path_rate", c.drop_path_rate);
    v("init_from", c.init_from);
  } else if constexpr (std::is_same_v<S, VicregConfig>) {
    v("proj_dim", c.proj_dim);
    v("proj_hidden_dim", c.proj_hidden_dim);
    v("proj_layers", c.proj_layers);
    v("lambda_invariance", c.lambda_invariance);
    v("mu_variance", c.mu_variance);
    v("nu_covariance", c.nu_covariance);
    v("gamma", c.gamma);
    v("epsilon", c.epsilon);
    v("covariance_reduction", c.covariance_reduction);
    v("global_stats", c.global_stats, kOperational);  // same loss and gradients to rounding
  } else if constexpr (std::is_same_v<S, TrainConfig>) {
    v("training_mode", c.training_mode);
    v("recipe", c.recipe);
    v("base_lr", c.base_lr);
    v("batch_size", c.batch_size, kOperational);  // per rank: resume checks the global batch itself
    v("num_epochs", c.num_epochs);
    v("learning_rate", c.learning_rate);
    v("min_lr", c.min_lr);
    v("weight_decay", c.weight_decay);
    v("warmup_epochs", c.warmup_epochs);
    v("optimizer", c.optimizer);
    v("betas", c.betas);
    v("momentum", c.momentum);
    v("lars_eta", c.lars_eta);
    v("grad_clip", c.grad_clip);
    v("precision", c.precision);
    v("seed", c.seed);
    v("log_every", c.log_every, kOperational);
    v("diagnostics_every", c.diagnostics_every, kOperational);
    v("max_consecutive_nonfinite", c.max_consecutive_nonfinite);
    v("max_steps", c.max_steps, kOperational);
    v("time_budget_s", c.time_budget_s);
    v("vicreg", c.vicreg);
  } else if constexpr (std::is_same_v<S, ViewAugmentConfig>) {
    v("crop_scale", c.crop_scale);
    v("crop_ratio", c.crop_ratio);
    v("interpolation", c.interpolation);
    v("hflip_prob", c.hflip_prob);
    v("jitter_prob", c.jitter_prob);
    v("brightness", c.brightness);
    v("contrast", c.contrast);
    v("saturation", c.saturation);
    v("hue", c.hue);
    v("grayscale_prob", c.grayscale_prob);
    v("blur_prob", c.blur_prob);
    v("blur_sigma", c.blur_sigma);
    v("blur_kernel_fraction", c.blur_kernel_fraction);
    v("solarize_prob", c.solarize_prob);
    v("solarize_threshold", c.solarize_threshold);
  } else if constexpr (std::is_same_v<S, AugmentConfig>) {
    v("view1", c.view1);
    v("view2", c.view2);
    v("mean", c.mean);
    v("std", c.std);
    v("order", c.order);
  } else if constexpr (std::is_same_v<S, CheckpointConfig>) {
    v("every_epochs", c.every_epochs);
    v("every_steps", c.every_steps);
    v("keep_last", c.keep_last);
    v("keep_epochs", c.keep_epochs);
  } else if constexpr (std::is_same_v<S, EvalDatasetConfig>) {
    v("name", c.name);
    v("data_dir", c.data_dir);
  } else if constexpr (std::is_same_v<S, EvalConfig>) {
    v("epochs", c.epochs);
    v("every_epochs", c.every_epochs);
    v("final", c.final);
    v("datasets", c.datasets);
    v("probes", c.probes);
    v("knn_k", c.knn_k);
    v("knn_temperature", c.knn_temperature);
    v("max_attempts", c.max_attempts);
    v("limit_train", c.limit_train);
    v("limit_test", c.limit_test);
    v("online_linear", c.online_linear);
    v("online_knn_every_epochs", c.online_knn_every_epochs);
    v("online_knn_subset", c.online_knn_subset);
    v("resources", c.resources);
  } else if constexpr (std::is_same_v<S, EvalResourcesConfig>) {
    v("device", c.device);
    v("cpus", c.cpus);
  } else if constexpr (std::is_same_v<S, MetricsConfig>) {
    v("enabled", c.enabled);
    v("address", c.address);
    v("port", c.port);
  }
}

}  // namespace vicreg::config::schema
