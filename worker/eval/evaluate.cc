#include "worker/eval/evaluate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include "common/errors.h"
#include "common/fs.h"
#include "worker/data/dataset.h"
#include "worker/eval/features.h"
#include "worker/eval/run_config.h"
#include "worker/eval/topk.h"
#include "worker/model/encoder_io.h"

namespace vicreg::eval {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Splits {
  std::shared_ptr<const data::Dataset> train, test;
  int num_classes = 0;
  std::array<double, 3> mean{}, std{};
};

Splits OpenSplits(const EvaluateOptions& o) {
  Splits s;
  s.train = data::OpenDataset({o.dataset, o.data_dir, "train", o.limit_train, o.resize});
  s.test = data::OpenDataset({o.dataset, o.data_dir, "test", o.limit_test, o.resize});
  s.num_classes = s.train->num_classes();
  if (s.num_classes < 1)
    throw UserError("--dataset " + o.dataset + ": the train split is unlabeled; probes need labels");
  if (s.test->num_classes() != s.num_classes)
    throw UserError("--dataset " + o.dataset + ": train has " + std::to_string(s.num_classes) +
                    " classes but test has " + std::to_string(s.test->num_classes()));
  s.mean = s.train->mean();
  s.std = s.train->std();
  auto take = [&](const std::vector<double>& v, std::array<double, 3>* out, const char* what) {
    if (v.empty()) return;
    if (v.size() != 1 && v.size() != 3)
      throw UserError(std::string("augment.") + what + ": needs 1 or 3 values, got " + std::to_string(v.size()));
    for (int c = 0; c < 3; ++c) (*out)[c] = v[v.size() == 1 ? 0 : c];
  };
  take(o.mean, &s.mean, "mean");
  take(o.std, &s.std, "std");
  return s;
}

// Both probes on one (train, test) feature pair -> rows.
void Probe(const EvaluateOptions& o, const Splits& s, const FeatureSet& tr, const FeatureSet& te,
           const std::string& model, int epoch, std::vector<EvalRow>* rows) {
  if (o.linear) {
    const auto t0 = Clock::now();
    auto clf = FitLinearProbe(tr.features, tr.labels, s.num_classes, o.linear_opts);
    auto scores = clf.Scores(te.features);  // [M, C]
    EvalRow r{model,    epoch, "linear", TopKAccuracy(scores, te.labels, 1), TopKAccuracy(scores, te.labels, 5),
              Since(t0)};
    spdlog::info("{} epoch {} linear: top1 {:.4f} top5 {:.4f} (l2 {:g}, {:.1f}s)", model, epoch, r.top1, r.top5, clf.l2,
                 r.fit_seconds);
    rows->push_back(r);
  }
  if (o.knn) {
    const auto t0 = Clock::now();
    auto res = KnnClassify(tr.features, tr.labels, te.features, te.labels, s.num_classes, o.knn_opts);
    EvalRow r{model, epoch, "knn", res.top1, res.top5, Since(t0)};
    spdlog::info("{} epoch {} knn (k={}, T={:g}): top1 {:.4f} top5 {:.4f} ({:.1f}s)", model, epoch, o.knn_opts.k,
                 o.knn_opts.temperature, r.top1, r.top5, r.fit_seconds);
    rows->push_back(r);
  }
}

void EncoderRows(const EvaluateOptions& o, const Splits& s, model::VisionTransformer& vit, const std::string& model,
                 int epoch, std::vector<EvalRow>* rows) {
  ExtractOptions eo;
  eo.batch_size = o.batch_size;
  eo.device = c10::Device(o.device);
  vit->to(eo.device);
  eo.image_size = vit->options().image_size;
  eo.mean = s.mean;
  eo.std = s.std;
  eo.progress = o.progress;
  eo.label = model + " epoch " + std::to_string(epoch) + " " + s.train->name();
  auto tr = ExtractFeatures(vit, *s.train, eo);
  eo.label = model + " epoch " + std::to_string(epoch) + " " + s.test->name();
  auto te = ExtractFeatures(vit, *s.test, eo);
  Probe(o, s, tr, te, model, epoch, rows);
}

}  // namespace

void WriteReportFiles(const EvalReport& report, const std::string& json_path) {
  const auto dir = std::filesystem::path(json_path).parent_path();
  if (!dir.empty()) fs::MakeDirs(dir.string());
  fs::AtomicWriteFile(json_path, ReportToJson(report));
  fs::AtomicWriteFile(CsvPathFor(json_path), ReportToCsv(report));
}

EvaluateResult RunEvaluation(const EvaluateOptions& o) {
  if (o.batch_size < 1) throw UserError("--batch-size must be >= 1, got " + std::to_string(o.batch_size));
  if (o.image_size < 0) throw UserError("--image-size must be > 0, got " + std::to_string(o.image_size));
  if (!o.linear && !o.knn) throw UserError("--probe: nothing to run");

  // Which checkpoints: one file, the requested epochs, or every epoch file in the directory.
  struct Item {
    int epoch;
    std::string path;
  };
  std::vector<Item> items;
  EvaluateResult res;
  res.report.dataset = o.dataset;
  if (!o.checkpoint_file.empty()) {
    if (!fs::Exists(o.checkpoint_file)) throw UserError("--checkpoint " + o.checkpoint_file + ": file does not exist");
    res.report.checkpoint_dir = std::filesystem::path(o.checkpoint_file).parent_path().string();
    items.push_back({-1, o.checkpoint_file});
  } else {
    res.report.checkpoint_dir = o.checkpoint_dir;
    const auto present = ListEpochCheckpoints(o.checkpoint_dir);  // also checks it is a directory
    const auto& wanted = o.epochs.empty() ? present : o.epochs;
    std::optional<RunConfig> run;
    bool run_config_read = false;
    if (wanted.empty()) spdlog::error("no epoch_XXXX.pt checkpoints in {}", o.checkpoint_dir);
    for (int e : wanted) {
      const auto path = EpochCheckpointPath(o.checkpoint_dir, e);
      if (fs::Exists(path)) {
        items.push_back({e, path});
      } else {
        // Why: never written, not reached yet, or deleted by retention (the run's config says which).
        if (!run_config_read) run = FindRunConfig("", o.checkpoint_dir, o.epochs), run_config_read = true;
        const std::string why = WhyNoCheckpoint(e, o.checkpoint_dir, run);
        spdlog::warn("epoch {}: no checkpoint {}: {}", e, path, why);
        res.report.missing_epochs.push_back(e);
        res.report.missing_why[e] = why;
      }
    }
  }

  const Splits s = OpenSplits(o);
  spdlog::info("dataset {}: train {} images, test {} images, {} classes, {}x{}x{}", o.dataset, s.train->size(),
               s.test->size(), s.num_classes, s.train->channels(), s.train->height(), s.train->width());

  std::vector<EvalRow> vicreg_rows, ref_rows;
  std::optional<config::ModelConfig> arch = o.given ? std::optional(o.given->model) : std::nullopt;
  auto publish = [&] {
    res.report.rows = vicreg_rows;
    res.report.rows.insert(res.report.rows.end(), ref_rows.begin(), ref_rows.end());
    if (!o.out_json.empty()) WriteReportFiles(res.report, o.out_json);
  };
  for (const auto& item : items) {
    std::optional<CheckpointEncoder> ck;
    try {
      ck = LoadCheckpointEncoder(item.path, o.given);
    } catch (const ArchitectureMismatch&) {
      throw;  // the command line contradicts the run: a usage error, not a bad checkpoint
    } catch (const UserError& e) {
      if (!o.checkpoint_file.empty()) throw;  // the one file asked for: invalid input
      spdlog::error("epoch {}: {} (reported as missing)", item.epoch, e.what());
      res.failures.push_back("epoch " + std::to_string(item.epoch) + ": " + e.what());
      res.report.missing_epochs.push_back(item.epoch);
      continue;
    }
    const int epoch = item.epoch >= 0 ? item.epoch : static_cast<int>(ck->epoch);
    if (arch && !o.given) CheckSameArchitecture(*arch, "an earlier checkpoint", ck->model, item.path);
    arch = ck->model;
    auto vit = BuildEncoder(ck->model, o.image_size);
    model::LoadEncoderState(vit, ck->state, item.path, /*resample_pos_embed=*/o.image_size > 0);
    ck->state.clear();
    EncoderRows(o, s, vit, "vicreg", epoch, &vicreg_rows);
    ++res.evaluated;
    publish();
  }
  std::sort(res.report.missing_epochs.begin(), res.report.missing_epochs.end());

  if (o.references && res.evaluated > 0) {
    {
      auto tr = RawPixelFeatures(*s.train, s.mean, s.std, 1024, o.progress, "raw pixels " + s.train->name());
      auto te = RawPixelFeatures(*s.test, s.mean, s.std, 1024, o.progress, "raw pixels " + s.test->name());
      Probe(o, s, tr, te, "raw_pixels", 0, &ref_rows);
    }
    {
      // Same architecture, timm init from a fixed seed (the global RNG is restored afterwards).
      auto gen = at::detail::getDefaultCPUGenerator();
      const auto saved = gen.get_state();
      at::manual_seed(o.random_init_seed);
      auto vit = BuildEncoder(*arch, o.image_size);
      gen.set_state(saved);
      EncoderRows(o, s, vit, "random_init", 0, &ref_rows);
    }
  }
  publish();
  return res;
}

}  // namespace vicreg::eval
