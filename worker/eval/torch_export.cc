#include "worker/eval/torch_export.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <map>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "worker/model/vicreg_model.h"
#include "worker/train/checkpoint.h"
#include "worker/train/optimizer.h"

namespace vicreg::eval {
namespace {

using GenericDict = c10::impl::GenericDict;

GenericDict StrDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

// The checkpoint's flat optimizer dict (optimizer.h SaveState), looked up by key.
class SavedState {
 public:
  SavedState(const c10::IValue& v, std::string source) : source_(std::move(source)) {
    if (!v.isGenericDict()) Fail("optimizer", "is not a dict");
    for (const auto& kv : v.toGenericDict()) {
      if (kv.key().isString()) entries_[kv.key().toStringRef()] = kv.value();
    }
  }
  bool Has(const std::string& k) const { return entries_.count(k) > 0; }
  const c10::IValue& Get(const std::string& k) const {
    auto it = entries_.find(k);
    if (it == entries_.end()) Fail(k, "is missing");
    return it->second;
  }
  int64_t Int(const std::string& k) const {
    const auto& v = Get(k);
    if (!v.isInt()) Fail(k, "is not an int");
    return v.toInt();
  }
  double Double(const std::string& k) const {
    const auto& v = Get(k);
    if (!v.isDouble()) Fail(k, "is not a float");
    return v.toDouble();
  }
  std::string Str(const std::string& k) const {
    const auto& v = Get(k);
    if (!v.isString()) Fail(k, "is not a string");
    return v.toStringRef();
  }
  at::Tensor Tensor(const std::string& k) const {
    const auto& v = Get(k);
    if (!v.isTensor()) Fail(k, "is not a tensor");
    return v.toTensor();
  }
  [[noreturn]] void Fail(const std::string& key, const std::string& what) const {
    throw UserError("checkpoint " + source_ + ": optimizer state '" + key + "' " + what);
  }

 private:
  std::string source_;
  std::map<std::string, c10::IValue> entries_;
};

}  // namespace

TorchExportSummary ExportTorchCheckpoint(const std::string& checkpoint, const std::string& out) {
  const auto p = train::CheckpointManager::Load(checkpoint, /*require_manifest=*/false);
  if (p.config_yaml.empty())
    throw UserError("checkpoint " + checkpoint + " carries no config: --format torch needs it for the parameter groups");
  const auto job = config::ParseJobYaml(p.config_yaml, checkpoint + " (embedded config)");
  const auto oo = train::OptimizerOptions::FromConfig(job.train);
  if (oo.type != train::OptimizerType::kAdamW)
    throw UserError("checkpoint " + checkpoint + " was trained with train.optimizer " + job.train.optimizer +
                    ": --format torch writes torch.optim.AdamW state and supports adamw runs only (the LARS state "
                    "is the 'mu' buffers of the checkpoint's optimizer dict, docs/CHECKPOINTS.md)");

  // The parameter groups exactly as the trainer built them (names in registration order).
  model::VicregModel net(model::VicregModelOptions::FromConfig(config::ResolveModel(job.model), job.train.vicreg));
  const auto groups = net->param_groups();
  const std::vector<std::vector<std::string>> names = {groups.decay_names, groups.no_decay_names};

  TorchExportSummary sum;
  sum.epoch = p.epoch;
  GenericDict model(c10::StringType::get(), c10::TensorType::get());
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [k, t] : p.model) {
    model.insert(k, t);
    by_name[k] = t;
    ++sum.tensors;
  }

  const SavedState st(p.optimizer, checkpoint);
  if (st.Str("kind") != "adamw") st.Fail("kind", "is '" + st.Str("kind") + "', not 'adamw'");
  if (st.Int("num_groups") != static_cast<int64_t>(names.size()))
    st.Fail("num_groups", "is " + std::to_string(st.Int("num_groups")) + ", the model has 2 groups");
  GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList param_groups(c10::AnyType::get());
  c10::impl::GenericList param_names(c10::AnyType::get());
  int64_t index = 0;
  for (size_t g = 0; g < names.size(); ++g) {
    const std::string gp = "group" + std::to_string(g) + ".";
    if (st.Int(gp + "num_params") != static_cast<int64_t>(names[g].size()))
      st.Fail(gp + "num_params", "is " + std::to_string(st.Int(gp + "num_params")) + ", the config's model has " +
                                     std::to_string(names[g].size()));
    c10::List<int64_t> ids;
    c10::List<std::string> group_names;
    for (size_t i = 0; i < names[g].size(); ++i, ++index) {
      const std::string& name = names[g][i];
      auto it = by_name.find(name);
      if (it == by_name.end())
        throw UserError("checkpoint " + checkpoint + ": the model has no parameter '" + name + "'");
      ids.push_back(index);
      group_names.push_back(name);
      ++sum.parameters;
      const std::string pp = gp + "param" + std::to_string(i) + ".";
      if (!st.Has(pp + "step")) continue;  // never stepped: torch has no state for it either
      GenericDict s = StrDict();
      s.insert("step", at::scalar_tensor(static_cast<double>(st.Int(pp + "step")), at::kFloat));
      for (const char* k : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {
        if (!st.Has(pp + k)) continue;
        const at::Tensor t = st.Tensor(pp + k);
        if (!t.sizes().equals(it->second.sizes()))
          st.Fail(pp + k, "has shape " + c10::str(t.sizes()) + " but parameter " + name + " has " +
                              c10::str(it->second.sizes()));
        s.insert(k, t);
      }
      state.insert(index, s);
      ++sum.with_state;
    }
    GenericDict pg = StrDict();
    pg.insert("lr", st.Double(gp + "lr"));
    pg.insert("betas", c10::ivalue::Tuple::create({c10::IValue(oo.beta1), c10::IValue(oo.beta2)}));
    pg.insert("eps", oo.eps);
    pg.insert("weight_decay", g == 0 ? oo.weight_decay : 0.0);
    pg.insert("amsgrad", false);
    pg.insert("foreach", c10::IValue());
    pg.insert("maximize", false);
    pg.insert("capturable", false);
    pg.insert("params", ids);
    param_groups.push_back(pg);
    param_names.push_back(group_names);
  }
  GenericDict optimizer = StrDict();
  optimizer.insert("state", state);
  optimizer.insert("param_groups", param_groups);

  GenericDict scheduler = StrDict();
  scheduler.insert("step", p.scheduler_step);
  GenericDict scaler = StrDict();
  scaler.insert("enabled", p.scaler.enabled);
  scaler.insert("scale", p.scaler.scale);
  scaler.insert("growth_tracker", p.scaler.growth_tracker);

  GenericDict d = StrDict();
  d.insert("format", std::string("vicreg-torch-export-v1"));
  d.insert("model", model);
  d.insert("optimizer", optimizer);
  d.insert("param_names", param_names);
  d.insert("scheduler", scheduler);
  d.insert("scaler", scaler);
  d.insert("epoch", p.epoch);
  d.insert("global_step", p.global_step);
  d.insert("config", p.config_yaml);
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(d));
  fs::AtomicWriteFile(out, std::string_view(bytes.data(), bytes.size()));
  return sum;
}

}  // namespace vicreg::eval
