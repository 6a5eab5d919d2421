// JSON Schema (draft-07) of the job file, for editors (yaml-language-server) and other tools:
// docs/job.schema.json, written by vicreg_job_schema (common/job_schema_main.cc).
//   types and defaults   config_schema.h's table over a default JobConfig
//   bounds, choices      the static rules of Validate (config_validate.cc records them as it checks)
//   descriptions         the README's job-file reference ("| `key` | default | meaning |" rows)
// Every section has additionalProperties: false, as the loader refuses unknown keys. The loader
// stays the authority: rules that depend on other keys (min_lr <= learning_rate, nccl needs cuda, ...)
// are not in the schema.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vicreg::config {

// key path ("train.vicreg.proj_dim", "eval.datasets[].name") -> description, from the README's
// "## Job file reference" table (markdown: backticks and link targets dropped).
std::map<std::string, std::string> ReadKeyDescriptions(const std::string& readme_text);

// The schema. Throws UserError naming the keys without a description.
nlohmann::ordered_json JobJsonSchema(const std::map<std::string, std::string>& descriptions);

}  // namespace vicreg::config
