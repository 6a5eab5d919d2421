// Parsing + strict validation of job configs (both forms: docs/ARCHITECTURE.md "Configuration").
// Every function throws ConfigError (common/errors.h) listing ALL problems found, each naming
// the field path ("train.vicreg.gamma"), the bad value and what would be valid.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"

namespace vicreg::config {

// One job file.
JobConfig LoadJobFile(const std::string& path, const std::vector<std::string>& overrides = {});
// Job YAML text (what the coordinator receives); source_name appears in messages.
JobConfig ParseJobYaml(const std::string& yaml_text, const std::string& source_name = "<job>",
                       const std::vector<std::string>& overrides = {});
// The seed's three files (any may be empty = defaults for that section).
JobConfig LoadSeedFiles(const std::string& data_config, const std::string& train_config,
                        const std::string& model_config, const std::vector<std::string>& overrides = {});
// The seed form keeps what the seed's evaluation command asks for (`--epochs 1 50 100 150 200`):
// unless checkpoint.keep_epochs is given (a --set), LoadSeedFiles sets it to SeedKeptEpochs:
// epoch 1, every 50th and the last, those of them that get an epoch checkpoint (every_epochs).
std::vector<int> SeedKeptEpochs(int num_epochs, int every_epochs);
// Seed model_config alone (vicreg_eval --model_config); returns defaults + the model section.
ModelConfig LoadSeedModelConfig(const std::string& path);

// overrides: "key.path=value" (value is YAML: 5, 1e-3, [1,2], true, text), applied to the YAML tree
// before parsing, so they are type- and range-checked like the file; an unknown path is an error.
// The paths are job-file paths in both forms (the seed form too: "train.learning_rate=0.01",
// "resources.device=cuda" for the seed's --device flag).
//
// Errors: ConfigError(source, items). source is the file (or source_name; in the seed form the
// file all items come from, else the list of files). Item fields are key paths ("train.batch_size",
// "eval.datasets[1].name"); for a file that cannot be read "<file>", for YAML syntax errors
// "line L, column C", for an empty file or a non-map document "<document>", for a malformed
// override "--set". Messages end with where the value came from: "(line 4, column 3)",
// "(train_config_vicreg.yaml, line 4, column 3)" or "(from --set train.lr=1)".

// Cross-field and range validation; empty = valid. (The loaders call it; exposed for tests/server.)
struct FieldError {
  std::string field;    // "train.vicreg.gamma"
  std::string message;  // "must be > 0, got -1"
};
std::vector<FieldError> Validate(const JobConfig& cfg);

// The resolved config (every default filled in) as a job-file YAML that ParseJobYaml accepts.
std::string ToYaml(const JobConfig& cfg);

// Resolved encoder geometry: presets expanded (vit_small -> 16/384/12/6). vit_custom and unknown
// names are returned unchanged. The loaders call it and also refuse a preset together with an
// explicitly given, different patch_size/embed_dim/depth/num_heads.
ModelConfig ResolveModel(const ModelConfig& m);

// The closest valid spelling of `key` among `valid`, or "" when none is close. Tries, in order:
// case/dash-insensitive equality, known synonyms ("lr", "epochs", "sim_coeff", "world_size", ...),
// initials ("wd" -> "weight_decay"), edit distance (Levenshtein, <= 1..3 by length), and word
// containment ("warmup" -> "warmup_epochs"). For did-you-mean messages (config keys, CLI flags).
std::string ClosestMatch(const std::string& key, const std::vector<std::string>& valid);

// Every key path of a job file, sections included, in file order ("name", ..., "train.vicreg.gamma").
std::vector<std::string> AllKeyPaths();

// The leaf key paths whose values differ between a and b (empty = equal configs).
std::vector<std::string> DiffConfigs(const JobConfig& a, const JobConfig& b);

// True for a key path ("data.num_workers", "eval.knn_k", "resources") that the schema marks operational
// (config_schema.h): it changes how a run is executed, logged, stored or evaluated, not what it learns,
// so it may differ when a run resumes from a checkpoint.
bool IsOperational(const std::string& key_path);

}  // namespace vicreg::config
