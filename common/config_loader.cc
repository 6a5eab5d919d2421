// The public loaders: read the document(s), apply --set overrides to the YAML tree, read it
// strictly (config_yaml.cc), resolve presets, validate (config_validate.cc), and throw one
// ConfigError listing every problem.
#include "common/config_loader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "common/config_internal.h"
#include "common/errors.h"

namespace vicreg::config {
namespace {

using detail::ParseContext;

}  // namespace

bool detail::ReadFileText(const std::string& path, std::string* text, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot open file: ") + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    *error = std::string("cannot read file: ") + std::strerror(errno);
    return false;
  }
  *text = ss.str();
  return true;
}

namespace {

// Where each document of a YAML stream starts (parser events only: nothing is built).
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& m) override { starts.push_back(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

// One YAML document whose top level is a map; problems go to ctx (attributed to `file`).
//
// Not YAML::LoadAll: yaml-cpp 0.7 (Debian 12) never returns from it when a document would start
// with a token that cannot start one (a ',' outside [ ] or { }): every HandleNextDocument call
// yields an empty document without consuming anything, and LoadAll allocates nodes until memory
// runs out (a 622-byte job file took the fuzzer to 2.2 GB and a 30-s timeout; a SubmitJob
// carrying it would take the coordinator down). So the documents are first counted with the event
// parser, at most kMaxDocuments of them, stopping where the parser stops advancing; then the one
// document is built with YAML::Load (which parses only the first).
bool detail::LoadDocument(const std::string& text, const std::string& file, ParseContext& ctx, YAML::Node* out,
                          bool allow_empty) {
  constexpr size_t kMaxDocuments = 16;
  std::vector<YAML::Node> docs;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentStarts starts;
    while (starts.starts.size() < kMaxDocuments && parser.HandleNextDocument(starts)) {
      const size_t n = starts.starts.size();
      if (n >= 2 && starts.starts[n - 1].pos == starts.starts[n - 2].pos) {
        const YAML::Mark& m = starts.starts[n - 1];
        ctx.ErrorRaw("line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1),
                     "YAML syntax error in " + file +
                         ": unexpected text where a key or a new document should start (a ',' outside [ ] or { }?)",
                     file);
        return false;
      }
    }
    if (starts.starts.size() > 1) {
      ctx.ErrorRaw("<document>",
                   file + " holds " + std::to_string(starts.starts.size()) +
                       (starts.starts.size() >= kMaxDocuments ? " or more" : "") +
                       " YAML documents ('---'); expected exactly one",
                   file);
      return false;
    }
    if (!starts.starts.empty()) docs.push_back(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    ctx.ErrorRaw("line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1),
                 "YAML syntax error in " + file + ": " + e.msg, file);
    return false;
  }
  if (docs.empty() || (docs.size() == 1 && docs[0].IsNull())) {
    if (allow_empty) {
      *out = YAML::Node();
      return true;
    }
    ctx.ErrorRaw("<document>", file + " is empty; expected a map of keys (see configs/ for examples)", file);
    return false;
  }
  if (!docs[0].IsMap()) {
    YAML::Mark m = docs[0].Mark();
    std::string kind = docs[0].IsSequence() ? "a list" : "a single value";
    ctx.ErrorRaw("<document>",
                 "the top level of " + file + " must be a map of keys (key: value), got " + kind + " (line " +
                     std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")",
                 file);
    return false;
  }
  *out = docs[0];
  return true;
}

namespace {

bool ValidKeyName(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

// "a.b.c=value": sets root[a][b][c] = YAML(value), creating maps on the way.
void ApplyOverrides(YAML::Node& root, const std::vector<std::string>& overrides, ParseContext& ctx) {
  for (const std::string& text : overrides) {
    size_t eq = text.find('=');
    std::string path = eq == std::string::npos ? text : text.substr(0, eq);
    std::vector<std::string> keys;
    std::stringstream ss(path);
    for (std::string k; std::getline(ss, k, '.');) keys.push_back(k);
    bool keys_ok = !keys.empty() && path.back() != '.';
    for (const auto& k : keys) keys_ok = keys_ok && ValidKeyName(k);
    if (eq == std::string::npos || !keys_ok) {
      ctx.ErrorRaw("--set", "\"" + text + "\" is not key.path=value (e.g. train.learning_rate=0.0005)", "");
      return;
    }
    std::string value_text = text.substr(eq + 1);
    YAML::Node value;
    if (value_text.empty()) {
      value = YAML::Node(std::string());  // "--set model.init_from=" clears a string
    } else {
      try {
        value = YAML::Load(value_text);
      } catch (const YAML::Exception& e) {
        ctx.ErrorRaw(path, "the value of --set " + text + " is not valid YAML: " + e.msg, "");
        continue;
      }
    }
    ctx.AddOverride(path, text);
    YAML::Node cur;
    cur.reset(root);
    std::string walked;
    bool ok = true;
    for (size_t i = 0; i + 1 < keys.size(); ++i) {
      walked += (i ? "." : "") + keys[i];
      YAML::Node next = cur[keys[i]];
      if (!next.IsDefined() || next.IsNull()) {
        cur[keys[i]] = YAML::Node(YAML::NodeType::Map);
        next.reset(cur[keys[i]]);
      } else if (!next.IsMap()) {
        ctx.ErrorRaw(
            path,
            "--set " + text + ": " + walked + " is not a section (set the whole value with --set " + walked + "=...)",
            "");
        ok = false;
        break;
      }
      cur.reset(next);
    }
    if (ok) cur[keys.back()] = value;
  }
}

// The most a document of `text_bytes` (plus its overrides) may expand to through aliases.
size_t ExpansionBudget(size_t text_bytes, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) text_bytes += o.size();
  return detail::kExpansionFactor * text_bytes + detail::kExpansionSlack;
}

// train.recipe fb_lars: facebookresearch/vicreg's optimization (main_vicreg.py) for every key the
// documents and --set overrides leave out: LARS (eta 0.001, momentum 0.9; biases, norms, pos_embed and
// cls_token excluded from decay and adaptation, as always), learning_rate = base_lr x global batch / 256,
// min_lr = learning_rate x 0.001 (their end_lr), weight_decay 1e-6, no gradient clipping. The
// resolved job.yaml holds the results, so reading it again gives the same config.
void ApplyRecipe(JobConfig& cfg, const ParseContext& ctx) {
  if (cfg.train.recipe != "fb_lars") return;
  TrainConfig& t = cfg.train;
  auto fill = [&](const char* key, auto& field, auto value) {
    if (!ctx.Present(std::string("train.") + key)) field = value;
  };
  fill("optimizer", t.optimizer, std::string("lars"));
  fill("lars_eta", t.lars_eta, 0.001);
  fill("momentum", t.momentum, 0.9);
  fill("weight_decay", t.weight_decay, 1e-6);
  fill("grad_clip", t.grad_clip, 0.0);
  fill("learning_rate", t.learning_rate,
       t.base_lr * static_cast<double>(cfg.resources.ranks) * static_cast<double>(t.batch_size) / 256.0);
  fill("min_lr", t.min_lr, t.learning_rate * 0.001);
}

// ReadJobTree + presets + recipe + Validate, all problems into ctx.
JobConfig ReadAndValidate(const YAML::Node& root, ParseContext& ctx) {
  JobConfig cfg;
  detail::ReadJobTree(root, cfg, ctx);

  // A preset fixes the geometry: an explicit, different value is a conflict, not an override.
  ModelConfig resolved = ResolveModel(cfg.model);
  if (cfg.model.backbone_name != "vit_custom") {
    const std::pair<const char*, int> given[] = {{"patch_size", resolved.patch_size},
                                                 {"embed_dim", resolved.embed_dim},
                                                 {"depth", resolved.depth},
                                                 {"num_heads", resolved.num_heads}};
    const int explicit_values[] = {cfg.model.patch_size, cfg.model.embed_dim, cfg.model.depth, cfg.model.num_heads};
    for (size_t i = 0; i < 4; ++i) {
      std::string path = std::string("model.") + given[i].first;
      if (ctx.Present(path) && !ctx.HasErrorFor(path) && explicit_values[i] != given[i].second) {
        ctx.Error(path, std::to_string(explicit_values[i]) + " conflicts with backbone_name \"" +
                            cfg.model.backbone_name + "\", which uses " + given[i].first + " " +
                            std::to_string(given[i].second) +
                            "; remove the key, or set backbone_name: vit_custom for explicit sizes");
      }
    }
  }
  cfg.model = resolved;
  ApplyRecipe(cfg, ctx);

  for (const FieldError& e : Validate(cfg)) {
    // A field that failed to parse keeps its default; don't report the default on top.
    std::string base = e.field.substr(0, e.field.find('['));
    if (ctx.HasErrorFor(e.field) || ctx.HasErrorFor(base)) continue;
    ctx.Error(e.field, e.message);
  }
  return cfg;
}

[[noreturn]] void Throw(const std::string& source, const ParseContext& ctx) { throw ConfigError(source, ctx.items()); }

// The data_config of MoCo/KD-era pipelines (README "Seed-compatible usage"): their spellings are
// mapped onto vicreg's keys before the strict reader sees the document; image_size is taken out
// and checked against model.image_size afterwards (vicreg crops to the model's input size).
// Returns the image_size node (nullopt if absent).
std::optional<YAML::Node> MapSeedDataKeys(YAML::Node& doc, const std::string& file, ParseContext& ctx) {
  static const std::pair<const char*, const char*> kAliases[] = {
      {"dataset_name", "dataset"}, {"data_root", "data_dir"}, {"root", "data_dir"}};
  std::map<std::string, std::string> given;  // vicreg key -> the spelling that supplied it
  std::vector<std::string> keys;
  for (const auto& kv : doc)
    if (kv.first.IsScalar()) keys.push_back(kv.first.Scalar());
  for (const auto& k : keys)
    if (k == "dataset" || k == "data_dir") given[k] = k;
  for (const auto& [alias, target] : kAliases) {
    if (std::find(keys.begin(), keys.end(), alias) == keys.end()) continue;
    auto it = given.find(target);
    if (it != given.end()) {
      ctx.ErrorRaw(std::string("data.") + alias,
                   std::string("'") + alias + "' and '" + it->second + "' both give data." + target + " in " + file +
                       "; keep one",
                   file);
      doc.remove(alias);
      continue;
    }
    given[target] = alias;
    doc[target] = YAML::Clone(doc[alias]);
    doc.remove(alias);
  }
  std::optional<YAML::Node> image_size;
  if (std::find(keys.begin(), keys.end(), "image_size") != keys.end()) {
    image_size = YAML::Clone(doc["image_size"]);
    doc.remove("image_size");
  }
  return image_size;
}

}  // namespace

JobConfig ParseJobYaml(const std::string& yaml_text, const std::string& source_name,
                       const std::vector<std::string>& overrides) {
  ParseContext ctx(/*name_files=*/false);
  YAML::Node root;
  if (!detail::LoadDocument(yaml_text, source_name, ctx, &root)) Throw(source_name, ctx);
  ApplyOverrides(root, overrides, ctx);
  if (!detail::CheckExpandedSize(root, ExpansionBudget(yaml_text.size(), overrides), source_name, ctx)) {
    Throw(source_name, ctx);
  }
  JobConfig cfg = ReadAndValidate(root, ctx);
  if (!ctx.empty()) Throw(source_name, ctx);
  return cfg;
}

JobConfig LoadJobFile(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text, error;
  if (!detail::ReadFileText(path, &text, &error)) throw ConfigError(path, {{"<file>", error}});
  return ParseJobYaml(text, path, overrides);
}

JobConfig LoadSeedFiles(const std::string& data_config, const std::string& train_config,
                        const std::string& model_config, const std::vector<std::string>& overrides) {
  ParseContext ctx(/*name_files=*/true);
  YAML::Node root(YAML::NodeType::Map);
  std::vector<std::string> given;
  size_t text_bytes = 0;
  std::optional<YAML::Node> data_image_size;  // a MoCo/KD data_config's image_size
  const std::pair<const char*, const std::string*> files[] = {
      {"data", &data_config}, {"train", &train_config}, {"model", &model_config}};
  for (const auto& [section, path] : files) {
    if (path->empty()) continue;
    given.push_back(*path);
    ctx.SetSectionFile(section, *path);
    std::string text, error;
    if (!detail::ReadFileText(*path, &text, &error)) {
      ctx.ErrorRaw("<file>", *path + ": " + error, *path);
      continue;
    }
    text_bytes += text.size();
    YAML::Node doc;
    if (detail::LoadDocument(text, *path, ctx, &doc)) {
      if (std::string(section) == "data") data_image_size = MapSeedDataKeys(doc, *path, ctx);
      root[section] = doc;
    }
  }
  std::string all_files = detail::JoinAlternatives(given, ", ");
  if (all_files.empty()) all_files = "<defaults>";
  if (!ctx.empty()) {
    std::string common = ctx.CommonFile();
    Throw(common.empty() ? all_files : common, ctx);
  }
  ApplyOverrides(root, overrides, ctx);
  if (!detail::CheckExpandedSize(root, ExpansionBudget(text_bytes, overrides), all_files, ctx)) Throw(all_files, ctx);
  JobConfig cfg = ReadAndValidate(root, ctx);
  if (data_image_size) {
    const YAML::Node& n = *data_image_size;
    if (!n.IsScalar() || n.Scalar() != std::to_string(cfg.model.image_size))
      ctx.ErrorRaw("data.image_size",
                   "image_size " + (n.IsScalar() ? n.Scalar() : std::string("(not a number)")) + " in " + data_config +
                       " must equal model.image_size " + std::to_string(cfg.model.image_size) +
                       (model_config.empty() ? std::string(" (the default)") : " (" + model_config + ")") +
                       ": vicreg crops and resizes to the model's input size; make them equal or remove image_size "
                       "from the data config",
                   data_config);
  }
  if (!ctx.empty()) {
    std::string common = ctx.CommonFile();
    Throw(common.empty() ? all_files : common, ctx);
  }
  // Retention must not delete the epochs the seed evaluates (keep_last alone keeps the newest 3).
  if (!ctx.Present("checkpoint.keep_epochs"))
    cfg.checkpoint.keep_epochs = SeedKeptEpochs(cfg.train.num_epochs, cfg.checkpoint.every_epochs);
  return cfg;
}

std::vector<int> SeedKeptEpochs(int num_epochs, int every_epochs) {
  std::vector<int> out;
  for (int e = 1; e <= num_epochs; e = e == 1 ? 50 : e + 50) {
    const bool written = e == num_epochs || (every_epochs > 0 && e % every_epochs == 0);
    if (written) out.push_back(e);
  }
  if (num_epochs >= 1 && (out.empty() || out.back() != num_epochs)) out.push_back(num_epochs);
  return out;
}

ModelConfig LoadSeedModelConfig(const std::string& path) { return LoadSeedFiles("", "", path).model; }

}  // namespace vicreg::config
