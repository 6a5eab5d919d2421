#include "worker/eval/commands.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "common/build_info.h"
#include "common/config_loader.h"
#include "common/errors.h"
#include "common/logging.h"
#include "worker/comm/torch_build_info.h"
#include "worker/data/dataset.h"
#include "worker/eval/checkpoint_source.h"
#include "worker/eval/evaluate.h"
#include "worker/eval/features.h"
#include "worker/eval/run_config.h"
#include "worker/eval/torch_export.h"
#include "worker/model/encoder_io.h"
#include "worker/model/tensor_file.h"
#define VICREG_COMPAT_DEVICES
#include "worker/torch_compat.h"

namespace vicreg::eval {
namespace {

// "--knn-k" -> "--knn-k,--knn_k": both spellings of every long option are accepted.
std::string Names(const std::string& dashed) {
  std::string under = dashed.substr(2);
  for (auto& c : under)
    if (c == '-') c = '_';
  return under == dashed.substr(2) ? dashed : dashed + ",--" + under;
}

// Runs `body`, mapping exceptions to exit codes with the reason on stderr.
int RunBody(const std::string& prog, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UserError& e) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), e.what());
    return kExitUsage;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s: torch error: %s\n", prog.c_str(), e.what_without_backtrace());
    return kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), e.what());
    return kExitFailure;
  }
}

// --device: cpu | cuda | cuda:N, checked against this build and machine.
std::string CheckedDevice(const std::string& flag) {
  std::optional<c10::Device> d;
  try {
    d = c10::Device(flag);
  } catch (const c10::Error&) {
  }
  if (!d || !(d->is_cpu() || d->is_cuda())) throw UserError("--device " + flag + ": expected cpu, cuda or cuda:N");
  if (d->is_cuda()) {
    if (!at::hasCUDA())
      throw UserError("--device " + flag + ": this build or machine has no CUDA device (use --device cpu)");
    const int count = static_cast<int>(compat::CudaDeviceCount());
    if (d->has_index() && d->index() >= count)
      throw UserError("--device " + flag + ": only " + std::to_string(count) + " CUDA device(s) visible (cuda:0.." +
                      std::to_string(count - 1) + ")");
  }
  return d->str();
}

void ConfigureThreads(int threads) {
  if (threads < 0) throw UserError("--threads must be >= 1 (or 0 = all cores), got " + std::to_string(threads));
  const int n = threads == 0 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) : threads;
  at::set_num_threads(n);
}

// "cifar10|cifar100|..."
std::string DatasetChoices() {
  std::string s;
  for (const auto& n : data::DatasetNames()) s += (s.empty() ? "" : "|") + n;
  return s;
}

void AddDatasetNames(std::string* help) { *help += " (" + DatasetChoices() + ")"; }

// --model_config / --job: the architecture given on the command line (optional).
struct ModelFlags {
  std::string model_config, job;
  std::optional<config::JobConfig> job_cfg;
  void Add(CLI::App& app) {
    auto* mc = app.add_option(Names("--model-config"), model_config,
                              "seed model_config YAML; must agree with the checkpoint's embedded config");
    auto* jb = app.add_option("--job", job, "job YAML (alternative to --model_config; also supplies defaults)");
    mc->excludes(jb);
  }
  std::optional<GivenModelConfig> Load() {
    if (!model_config.empty())
      return GivenModelConfig{config::LoadSeedModelConfig(model_config), "--model_config " + model_config};
    if (!job.empty()) {
      job_cfg = config::LoadJobFile(job);
      return GivenModelConfig{job_cfg->model, "--job " + job};
    }
    return std::nullopt;
  }
};

std::string TimmName(const std::string& backbone) {
  for (const char* s : {"vit_tiny", "vit_small", "vit_base"})
    if (backbone == s) return backbone + "_patch16_224";
  return backbone;
}

// Each Add* registers a command's flags on `app` (the root app for the default evaluation, or a
// subcommand) and returns its body, which runs after the whole command line has been parsed.
std::function<int()> AddEvaluate(CLI::App& app) {
  struct State {
    EvaluateOptions o;
    ModelFlags mf;
    std::string probe = "all", mode = "vicreg";
    double knn_t = 0.07;
    int knn_k = 20, threads = 0;
    bool no_reference = false, quiet = false;
    CLI::Option *ds = nullptr, *dd = nullptr, *pr = nullptr, *kk = nullptr, *kt = nullptr, *lt = nullptr,
                *ls = nullptr;
  };
  auto st = std::make_shared<State>();
  auto& o = st->o;
  auto& mf = st->mf;
  auto& probe = st->probe;
  auto& mode = st->mode;
  auto& knn_t = st->knn_t;
  auto& knn_k = st->knn_k;
  auto& threads = st->threads;
  auto& no_reference = st->no_reference;
  auto& quiet = st->quiet;
  mf.Add(app);
  std::string dataset_help = "dataset name";
  AddDatasetNames(&dataset_help);
  auto* cd = app.add_option(Names("--checkpoint-dir"), o.checkpoint_dir, "directory with epoch_XXXX.pt checkpoints");
  auto* cf = app.add_option("--checkpoint", o.checkpoint_file, "one checkpoint file (instead of --checkpoint_dir)");
  cd->excludes(cf);
  auto* ds = st->ds = app.add_option("--dataset", o.dataset, dataset_help);
  auto* dd = st->dd = app.add_option(Names("--data-dir"), o.data_dir, "dataset folder (or .safetensors for tensor_cache); default: the run's own, from a "
                            "checkpoint's embedded config or <run_dir>/job.yaml");
  app.add_option("--mode", mode, "training mode of the checkpoints (only vicreg)")->check(CLI::IsMember({"vicreg"}));
  auto* ep =
      app.add_option("--epochs", o.epochs, "epochs to evaluate (epoch_%04d.pt); default: every checkpoint found");
  st->pr = app.add_option("--probe", probe, "linear | knn | all")->check(CLI::IsMember({"linear", "knn", "all"}));
  st->kk = app.add_option(Names("--knn-k"), knn_k, "kNN neighbours")->check(CLI::PositiveNumber);
  st->kt = app.add_option(Names("--knn-temperature"), knn_t, "kNN vote temperature")->check(CLI::PositiveNumber);
  app.add_option("--out", o.out_json,
                 "result JSON (CSV beside it); default <checkpoint_dir>/../eval/eval_<dataset>.json");
  app.add_option(Names("--batch-size"), o.batch_size, "feature-extraction batch size")->check(CLI::PositiveNumber);
  app.add_option("--device", o.device, "where the encoder extracts features: cpu | cuda | cuda:N (probes run on CPU)");
  app.add_option("--threads", threads, "intra-op threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  st->lt = app.add_option(Names("--limit-train"), o.limit_train, "use the first N train images (0 = all)")
                 ->check(CLI::NonNegativeNumber);
  st->ls = app.add_option(Names("--limit-test"), o.limit_test, "use the first N test images (0 = all)")
                 ->check(CLI::NonNegativeNumber);
  app.add_flag(Names("--no-reference"), no_reference, "skip the raw_pixels and random_init reference rows");
  app.add_option(Names("--image-size"), o.image_size, "encoder input size (default: the model's; pos_embed resampled)")
      ->check(CLI::PositiveNumber);
  app.add_option("--resize", o.resize, "image_folder only: resize + center-crop images to N x N")
      ->check(CLI::NonNegativeNumber);
  app.add_option(Names("--random-init-seed"), o.random_init_seed, "seed of the random_init reference encoder");
  app.add_flag("--quiet", quiet, "no progress lines");
  (void)ep, (void)ds, (void)dd;

  return [st]() -> int {
    auto& o = st->o;
    auto& mf = st->mf;
    auto& probe = st->probe;
    auto& knn_t = st->knn_t;
    auto& knn_k = st->knn_k;
    auto* ds = st->ds;
    auto* dd = st->dd;
    auto* pr = st->pr;
    auto* kk = st->kk;
    auto* kt = st->kt;
    auto* lt = st->lt;
    auto* ls = st->ls;
    if (o.checkpoint_dir.empty() && o.checkpoint_file.empty())
      throw UserError("one of --checkpoint_dir DIR or --checkpoint FILE is required");
    InitLogging(LogOptions{});
    o.given = mf.Load();
    if (mf.job_cfg) {  // the job supplies defaults for what the command line leaves out
      const auto& j = *mf.job_cfg;
      if (!ds->count()) o.dataset = j.eval.datasets.empty() ? j.data.dataset : j.eval.datasets.front().name;
      if (!dd->count())
        o.data_dir = !j.eval.datasets.empty() && !j.eval.datasets.front().data_dir.empty()
                         ? j.eval.datasets.front().data_dir
                         : j.data.data_dir;
      if (!kk->count()) knn_k = j.eval.knn_k;
      if (!kt->count()) knn_t = j.eval.knn_temperature;
      if (!lt->count()) o.limit_train = j.eval.limit_train;
      if (!ls->count()) o.limit_test = j.eval.limit_test;
      if (!pr->count() && !j.eval.probes.empty()) {
        const bool lin = std::find(j.eval.probes.begin(), j.eval.probes.end(), "linear") != j.eval.probes.end();
        const bool knn = std::find(j.eval.probes.begin(), j.eval.probes.end(), "knn") != j.eval.probes.end();
        probe = lin && knn ? "all" : lin ? "linear" : "knn";
      }
      o.mean = j.augment.mean;
      o.std = j.augment.std;
    }
    if (o.data_dir.empty()) {
      // The seed's command names no data folder: take it from the run that wrote the checkpoints
      // (a checkpoint's embedded config, else <run_dir>/job.yaml) and say which.
      const auto run = FindRunConfig(o.checkpoint_file, o.checkpoint_dir, o.epochs);
      if (!run)
        throw UserError("--data-dir is required: no run config was found to take the data location from (no "
                        "readable checkpoint in " +
                        (o.checkpoint_file.empty() ? o.checkpoint_dir : o.checkpoint_file) +
                        ", no job.yaml in the run directory above it)" +
                        (o.dataset.empty() ? std::string() : "; pass the folder holding the " + o.dataset + " files"));
      if (o.dataset.empty()) {
        o.dataset = run->job.data.dataset;
        spdlog::info("--dataset not given: using data.dataset {} from {}", o.dataset, run->source);
      }
      std::string what;
      o.data_dir = DataDirFromRun(*run, o.dataset, &what);
      spdlog::info("--data-dir not given: using {} \"{}\" from {}{}", what, o.data_dir, run->source,
                   std::filesystem::path(o.data_dir).is_relative() ? " (a relative path: from the current directory)"
                                                                   : "");
      if (o.mean.empty() && o.std.empty() && what == "data.data_dir") {
        o.mean = run->job.augment.mean;  // the normalization the run trained with, when it set one
        o.std = run->job.augment.std;
      }
    }
    if (o.dataset.empty()) throw UserError("--dataset is required (" + DatasetChoices() + ")");
    o.linear = probe == "linear" || probe == "all";
    o.knn = probe == "knn" || probe == "all";
    o.knn_opts.k = knn_k;
    o.knn_opts.temperature = knn_t;
    o.references = !st->no_reference;
    o.progress = !st->quiet;
    if (o.out_json.empty()) {
      const std::string dir = o.checkpoint_file.empty()
                                  ? o.checkpoint_dir
                                  : std::filesystem::path(o.checkpoint_file).parent_path().string();
      o.out_json = (std::filesystem::path(dir.empty() ? "." : dir) / ".." / "eval" / ("eval_" + o.dataset + ".json"))
                       .lexically_normal()
                       .string();
    }
    o.device = CheckedDevice(o.device);
    ConfigureThreads(st->threads);
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    spdlog::info("vicreg_eval on {}: dataset {} ({}), probes {}, features on {}, {} threads, results -> {}", host,
                 o.dataset, o.data_dir, probe, o.device, at::get_num_threads(), o.out_json);
    auto res = RunEvaluation(o);
    std::printf("%s", ReportToTable(res.report).c_str());
    std::fflush(stdout);
    spdlog::info("wrote {} and {}", o.out_json, CsvPathFor(o.out_json));
    if (res.evaluated == 0) {
      std::fprintf(
          stderr, "vicreg_eval: no checkpoint was evaluated%s\n",
          res.failures.empty() ? "" : (" (" + std::to_string(res.failures.size()) + " failed to load)").c_str());
      return kExitFailure;
    }
    return kExitOk;
  };
}

std::function<int()> AddExport(CLI::App& app) {
  struct State {
    std::string ckpt, out, format = "safetensors";
    ModelFlags mf;
  };
  auto st = std::make_shared<State>();
  auto& ckpt = st->ckpt;
  auto& out = st->out;
  auto& format = st->format;
  auto& mf = st->mf;
  app.add_option("--checkpoint", ckpt, "training checkpoint (epoch_XXXX.pt)")->required();
  app.add_option("--out", out, "output file (.safetensors, or .pt for --format torch)")->required();
  app.add_option("--format", format, "safetensors (the encoder, timm keys) | torch (model + AdamW state)")
      ->check(CLI::IsMember({"safetensors", "torch"}));
  mf.Add(app);
  return [st]() -> int {
    auto& ckpt = st->ckpt;
    auto& out = st->out;
    auto& mf = st->mf;
    InitLogging(LogOptions{});
    if (st->format == "torch") {
      if (mf.Load()) spdlog::warn("--format torch ignores --model_config / --job: the checkpoint's config names the model");
      const auto sum = ExportTorchCheckpoint(ckpt, out);
      std::printf("wrote %s: model %lld tensors, AdamW state for %lld of %lld parameters (epoch %lld); "
                  "torch.load it, then torch.optim.AdamW(groups from param_names).load_state_dict(ck['optimizer'])\n",
                  out.c_str(), static_cast<long long>(sum.tensors), static_cast<long long>(sum.with_state),
                  static_cast<long long>(sum.parameters), static_cast<long long>(sum.epoch));
      return kExitOk;
    }
    auto ck = LoadCheckpointEncoder(ckpt, mf.Load());
    const auto geometry = model::VitOptions::FromConfig(ck.model);
    model::EncoderExportOptions eo;
    eo.architecture = TimmName(ck.model.backbone_name);
    eo.extra_metadata = {
        {"source_checkpoint", ckpt}, {"epoch", std::to_string(ck.epoch)}, {"producer", "vicreg_eval export"}};
    // The input normalization the encoder was trained with (what timm's pretrained_cfg calls mean/std,
    // 0..1 scale, per channel): the job's augment.mean/std, else its training data's statistics.
    if (ck.job) {
      std::vector<double> mean = ck.job->augment.mean, stdv = ck.job->augment.std;
      std::string from = "augment.mean/std";
      if (mean.empty() || stdv.empty()) {
        try {
          // The training data exactly as the trainer opened it (worker/train/trainer.cc), so these are
          // the statistics the run normalized with.
          const config::DataConfig& dc = ck.job->data;
          auto train = data::OpenDataset({dc.dataset, dc.data_dir, dc.split, dc.limit});
          const auto m = train->mean(), s = train->std();
          mean.assign(m.begin(), m.end());
          stdv.assign(s.begin(), s.end());
          from = "the statistics of the training data (" + dc.dataset + " " + dc.split +
                 (dc.limit > 0 ? ", first " + std::to_string(dc.limit) + " images" : std::string()) + ")";
        } catch (const std::exception& e) {
          spdlog::warn("export: no mean/std in the metadata: the job sets no augment.mean/std and its training set "
                       "cannot be read ({})",
                       e.what());
        }
      }
      auto list = [](const std::vector<double>& v) {
        std::ostringstream os;
        os.precision(9);
        os << "[";
        for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
        os << "]";
        return os.str();  // JSON, as the tensor caches' metadata writes it
      };
      if (!mean.empty() && !stdv.empty()) {
        eo.extra_metadata["mean"] = list(mean);
        eo.extra_metadata["std"] = list(stdv);
        eo.extra_metadata["normalization_source"] = from;
      }
      eo.extra_metadata["dataset"] = ck.job->data.dataset;
    }
    int64_t params = 0;
    for (const auto& [k, t] : ck.state) params += t.numel();
    const int64_t n = model::ExportEncoderSafetensors(ck.state, geometry, out, eo);
    std::printf("wrote %s: %lld tensors, %lld parameters (%s, img_size %d, epoch %lld)\n", out.c_str(),
                static_cast<long long>(n), static_cast<long long>(params), eo.architecture.c_str(), geometry.image_size,
                static_cast<long long>(ck.epoch));
    return kExitOk;
  };
}

std::function<int()> AddExtract(CLI::App& app) {
  struct State {
    std::string ckpt, out, dataset, data_dir, split = "test";
    ModelFlags mf;
    int64_t limit = 0;
    int batch_size = 256, image_size = 0, threads = 0, resize = 0;
    bool quiet = false;
    std::string device = "cpu";
  };
  auto st = std::make_shared<State>();
  std::string dataset_help = "dataset name";
  AddDatasetNames(&dataset_help);
  auto& [ckpt, out, dataset, data_dir, split, mf, limit, batch_size, image_size, threads, resize, quiet, device] = *st;
  app.add_option("--checkpoint", ckpt, "training checkpoint (epoch_XXXX.pt)")->required();
  app.add_option("--device", device, "where the encoder runs: cpu | cuda | cuda:N");
  app.add_option("--dataset", dataset, dataset_help)->required();
  app.add_option(Names("--data-dir"), data_dir, "dataset folder")->required();
  app.add_option("--split", split, "train | test | unlabeled | train+unlabeled")
      ->check(CLI::IsMember({"train", "test", "unlabeled", "train+unlabeled"}));
  app.add_option("--out", out, "output .safetensors")->required();
  app.add_option("--limit", limit, "first N images (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option(Names("--batch-size"), batch_size, "batch size")->check(CLI::PositiveNumber);
  app.add_option(Names("--image-size"), image_size, "encoder input size (default: the model's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "intra-op threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--resize", resize, "image_folder only: resize + center-crop to N x N")->check(CLI::NonNegativeNumber);
  app.add_flag("--quiet", quiet, "no progress lines");
  mf.Add(app);
  return [st]() -> int {
    auto& [ckpt, out, dataset, data_dir, split, mf, limit, batch_size, image_size, threads, resize, quiet, device] = *st;
    InitLogging(LogOptions{});
    device = CheckedDevice(device);
    ConfigureThreads(threads);
    auto ck = LoadCheckpointEncoder(ckpt, mf.Load());
    auto vit = BuildEncoder(ck.model, image_size);
    model::LoadEncoderState(vit, ck.state, ckpt, /*resample_pos_embed=*/image_size > 0);
    vit->to(c10::Device(device));
    auto ds = data::OpenDataset({dataset, data_dir, split, limit, resize});
    // Normalization: the job's augment.mean/std if set, else the train split's statistics.
    auto train_ds = split == "train" ? ds : data::OpenDataset({dataset, data_dir, "train", 0, resize});
    ExtractOptions eo;
    eo.batch_size = batch_size;
    eo.device = c10::Device(device);
    eo.image_size = vit->options().image_size;
    eo.mean = train_ds->mean();
    eo.std = train_ds->std();
    if (mf.job_cfg && mf.job_cfg->augment.mean.size() == 3 && mf.job_cfg->augment.std.size() == 3) {
      for (int c = 0; c < 3; ++c) eo.mean[c] = mf.job_cfg->augment.mean[c], eo.std[c] = mf.job_cfg->augment.std[c];
    }
    eo.progress = !quiet;
    eo.label = "extract " + ds->name();
    auto fs = ExtractFeatures(vit, *ds, eo);
    std::map<std::string, std::string> meta = {{"dataset", dataset},
                                               {"split", split},
                                               {"source_checkpoint", ckpt},
                                               {"epoch", std::to_string(ck.epoch)},
                                               {"architecture", TimmName(ck.model.backbone_name)},
                                               {"image_size", std::to_string(eo.image_size)},
                                               {"feature", "normed_cls_token"},
                                               {"num_classes", std::to_string(ds->num_classes())}};
    model::WriteTensorFile(out, {{"features", fs.features}, {"labels", fs.labels}}, meta);
    std::printf("wrote %s: features [%lld, %lld], labels [%lld] (%.1f img/s)\n", out.c_str(),
                static_cast<long long>(fs.features.size(0)), static_cast<long long>(fs.features.size(1)),
                static_cast<long long>(fs.labels.size(0)), fs.seconds > 0 ? fs.features.size(0) / fs.seconds : 0.0);
    return kExitOk;
  };
}

std::function<int()> AddConvert(CLI::App& app) {
  struct State {
    std::string out, dataset, data_dir, split = "train";
    int64_t limit = 0;
    int resize = 0;
  };
  auto st = std::make_shared<State>();
  std::string dataset_help = "dataset name";
  AddDatasetNames(&dataset_help);
  auto& [out, dataset, data_dir, split, limit, resize] = *st;
  app.add_option("--dataset", dataset, dataset_help)->required();
  app.add_option(Names("--data-dir"), data_dir, "dataset folder")->required();
  app.add_option("--split", split, "train | test | unlabeled | train+unlabeled")
      ->check(CLI::IsMember({"train", "test", "unlabeled", "train+unlabeled"}));
  app.add_option("--out", out, "output .safetensors")->required();
  app.add_option("--limit", limit, "first N images (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--resize", resize, "image_folder only: resize + center-crop to N x N")->check(CLI::NonNegativeNumber);
  return [st]() -> int {
    auto& [out, dataset, data_dir, split, limit, resize] = *st;
    InitLogging(LogOptions{});
    auto ds = data::OpenDataset({dataset, data_dir, split, limit, resize});
    const auto dir = std::filesystem::path(out).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    const int64_t n = data::ConvertToTensorCache(*ds, out);
    std::printf("wrote %s: %lld images %dx%dx%d, %d classes\n", out.c_str(), static_cast<long long>(n), ds->channels(),
                ds->height(), ds->width(), ds->num_classes());
    return kExitOk;
  };
}

}  // namespace

int EvalMain(int argc, char** argv) {
  static const char* kSubcommands = "evaluate (the default: vicreg_eval [flags]), export, extract, convert";
  CLI::App app{
      "vicreg_eval: linear probe and weighted kNN of VICReg checkpoints, with raw-pixel and random-init reference "
      "rows (the flags below, or the evaluate subcommand); export, extract and convert as subcommands "
      "(vicreg_eval SUBCOMMAND --help).\nExit codes: 0 ok, 2 invalid input or usage, 1 runtime failure.",
      "vicreg_eval"};
  app.set_version_flag(
      "--version", [] { return VersionText("vicreg_eval", comm::TorchBuildFields()); }, kVersionFlagHelp);
  app.require_subcommand(0, 1);
  const auto evaluate_default = AddEvaluate(app);
  CLI::App* evaluate = app.add_subcommand(
      "evaluate", "linear probe and kNN of checkpoints: the same flags as vicreg_eval without a subcommand");
  const auto evaluate_sub = AddEvaluate(*evaluate);
  CLI::App* exp = app.add_subcommand(
      "export",
      "export a checkpoint: the encoder as safetensors with timm's key names and shapes (--format safetensors), "
      "or model + torch.optim.AdamW state for torch.load (--format torch, docs/CHECKPOINTS.md)");
  const auto export_body = AddExport(*exp);
  CLI::App* extract = app.add_subcommand("extract",
                                         "write the frozen features (normed CLS token) of a dataset split as "
                                         "safetensors: features fp32 [N, D], labels int64 [N]");
  const auto extract_body = AddExtract(*extract);
  CLI::App* convert = app.add_subcommand(
      "convert", "convert a dataset split into a tensor cache (.safetensors: uint8 images + int64 labels)");
  const auto convert_body = AddConvert(*convert);

  // A first word that is neither a flag nor a subcommand: name the choices, the default included.
  bool known = false;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    known = known || (argc >= 2 && sub->get_name() == argv[1]);
  if (argc >= 2 && argv[1][0] != '-' && !known) {
    std::fprintf(stderr, "vicreg_eval: unknown subcommand '%s' (valid: %s)\nRun 'vicreg_eval --help' for the flags.\n",
                 argv[1], kSubcommands);
    return kExitUsage;
  }
  std::string prog = "vicreg_eval";
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // the help of the subcommand that was asked
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    for (const CLI::App* sub : app.get_subcommands()) prog += " " + sub->get_name();
    std::fprintf(stderr, "%s: %s\nRun '%s --help' for the valid options.\n", prog.c_str(), e.what(), prog.c_str());
    return kExitUsage;
  }
  if (*exp) return RunBody("vicreg_eval export", export_body);
  if (*extract) return RunBody("vicreg_eval extract", extract_body);
  if (*convert) return RunBody("vicreg_eval convert", convert_body);
  if (*evaluate) return RunBody("vicreg_eval", evaluate_sub);
  return RunBody("vicreg_eval", evaluate_default);
}

}  // namespace vicreg::eval
