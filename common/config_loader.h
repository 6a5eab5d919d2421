// Parsing + strict validation of job configs (both forms of DESIGN.md section 3).
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
// Seed model_config alone (vicreg_eval --model_config); returns defaults + the model section.
ModelConfig LoadSeedModelConfig(const std::string& path);

// overrides: "key.path=value" (value is YAML: 5, 1e-3, [1,2], true, text), applied before validation.

// Cross-field and range validation; empty = valid. (The loaders call it; exposed for tests/server.)
struct FieldError {
  std::string field;    // "train.vicreg.gamma"
  std::string message;  // "must be > 0, got -1"
};
std::vector<FieldError> Validate(const JobConfig& cfg);

// The resolved config (every default filled in) as a job-file YAML that ParseJobYaml accepts.
std::string ToYaml(const JobConfig& cfg);

// Resolved encoder geometry: presets expanded (vit_small -> 16/384/12/6).
ModelConfig ResolveModel(const ModelConfig& m);

}  // namespace vicreg::config
