// Helpers for the eval tests: temp folders, running vicreg_eval as a real process (argv array),
// synthetic CIFAR-10 binaries, checkpoints in the trainer's format.
#pragma once

#include <ATen/ATen.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/config_loader.h"
#include "worker/model/vit.h"
#include "worker/train/checkpoint.h"

namespace vicreg::eval::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vicreg_eval_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct ProcResult {
  int code = -1;  // exit status, or 128 + signal
  std::string out, err;
};

// Runs argv (argv[0] = executable path) with stdout/stderr captured through files in `scratch`, in
// the working directory `cwd` (default: this process's).
inline ProcResult RunProcess(const std::vector<std::string>& argv, const std::string& scratch,
                             const std::string& cwd = "") {
  static int counter = 0;
  const std::string out_path = scratch + "/proc_" + std::to_string(++counter) + ".out";
  const std::string err_path = scratch + "/proc_" + std::to_string(counter) + ".err";
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0) _exit(127);
    dup2(o, 1);
    dup2(e, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(127);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ProcResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

inline std::string EvalBinary() { return std::string(VICREG_BINARY_DIR) + "/worker/eval/vicreg_eval"; }
inline std::string WorkerBinary() { return std::string(VICREG_BINARY_DIR) + "/worker/vicreg_worker"; }

// CIFAR-10 binary files (<dir>/cifar-10-batches-bin/data_batch_{1..5}.bin, test_batch.bin):
// record = 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
// pixels(index, label, out[3072]) fills one image; labels come from label_of(index).
inline void WriteCifar10(const std::string& dir, int64_t per_train_batch, int64_t n_test,
                         const std::function<int(int64_t, bool)>& label_of,
                         const std::function<void(int64_t, int, bool, uint8_t*)>& pixels) {
  const std::string sub = dir + "/cifar-10-batches-bin";
  std::filesystem::create_directories(sub);
  auto write = [&](const std::string& name, int64_t first, int64_t n, bool test) {
    std::ofstream f(sub + "/" + name, std::ios::binary);
    std::vector<uint8_t> rec(3073);
    for (int64_t i = first; i < first + n; ++i) {
      const int label = label_of(i, test);
      rec[0] = static_cast<uint8_t>(label);
      pixels(i, label, test, rec.data() + 1);
      f.write(reinterpret_cast<const char*>(rec.data()), 3073);
    }
    if (!f) throw std::runtime_error("cannot write " + name);
  };
  for (int b = 0; b < 5; ++b)
    write("data_batch_" + std::to_string(b + 1) + ".bin", b * per_train_batch, per_train_batch, false);
  write("test_batch.bin", 0, n_test, true);
}

// A tiny ViT for fast CLI tests (patch 8 on 32x32 images: 16 patches).
inline config::ModelConfig TinyModel(int embed_dim = 32) {
  config::ModelConfig m;
  m.backbone_name = "vit_custom";
  m.image_size = 32;
  m.patch_size = 8;
  m.embed_dim = embed_dim;
  m.depth = 2;
  m.num_heads = 2;
  return m;
}

// Writes <dir>/epoch_XXXX.pt (+ manifest) in the trainer's checkpoint format: "model" holds
// "encoder.<timm key>" (a ViT of `m` initialized from `seed`) and a projector tensor; "config" the
// resolved job YAML. perturb > 0 adds perturb * N(0, 1) to every parameter (so that LayerNorm
// weights/biases are not just ones/zeros). `run` (optional) is the job whose resolved YAML the
// checkpoint embeds (its model replaced by `m`). Returns the encoder so tests can compare features.
inline model::VisionTransformer WriteCheckpoint(const std::string& dir, int epoch, const config::ModelConfig& m,
                                                uint64_t seed, double perturb = 0.0,
                                                const config::JobConfig* run = nullptr) {
  at::manual_seed(seed);
  model::VisionTransformer vit(model::VitOptions::FromConfig(m));
  if (perturb > 0) {
    at::NoGradGuard ng;
    for (auto& prm : vit->parameters()) prm.add_(at::randn_like(prm) * perturb);
  }
  train::CheckpointPayload p;
  for (const auto& kv : vit->named_parameters())
    p.model.emplace_back("encoder." + kv.key(), kv.value().detach().clone());
  p.model.emplace_back("projector.0.weight", at::randn({16, m.embed_dim}));
  c10::impl::GenericDict opt(c10::StringType::get(), c10::AnyType::get());
  opt.insert("step", int64_t{epoch});
  p.optimizer = opt;
  p.epoch = epoch;
  p.global_step = epoch * 10;
  p.batch_in_epoch = 10;
  p.epoch_complete = true;
  p.rng_cpu = at::detail::getDefaultCPUGenerator().get_state();
  config::JobConfig job;
  if (run) job = *run;
  job.model = m;
  p.config_yaml = config::ToYaml(job);
  p.global_batch = 8;
  train::CheckpointManagerOptions co;
  co.dir = dir;
  co.keep_last = 100;
  train::CheckpointManager(co).Save(train::CheckpointManager::EpochFileName(epoch), "epoch", p);
  return vit;
}

}  // namespace vicreg::eval::testing
