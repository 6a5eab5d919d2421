// vicregctl validate: a job file checked locally by the same loader and validation that
// vicreg_worker and vicreg_coordinator run (common/config_loader.h: strict keys with did-you-mean,
// types, ranges, rules between keys, line/column), without a coordinator.
#pragma once

#include <string>
#include <vector>

namespace vicreg::cli {

// Prints a one-line summary (or, json, {"ok": true, ...}) on stdout and returns 0 when the file is
// valid; prints every problem ("  key.path: message (line L, column C)") on stderr (json: on stdout,
// {"ok": false, "violations": [{"field", "description"}]}) and returns 2 otherwise.
// With seed_files (data_config, train_config, model_config; any may be "") the seed's three-file
// form is validated instead of `file`, as `vicreg_worker --data_config ...` loads it.
int ValidateJobFile(const std::string& file, const std::vector<std::string>& seed_files,
                    const std::vector<std::string>& overrides, bool json);

}  // namespace vicreg::cli
