#include "server/cli/validate.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "common/config_loader.h"
#include "common/errors.h"
#include "server/cli/client.h"
#include "server/cli/format.h"

namespace vicreg::cli {

int ValidateJobFile(const std::string& file_in, const std::vector<std::string>& seed_files,
                    const std::vector<std::string>& overrides, bool json) {
  config::JobConfig cfg;
  std::string file = file_in;
  if (!seed_files.empty()) {
    file.clear();
    for (const auto& f : seed_files)
      if (!f.empty()) file += (file.empty() ? "" : " + ") + f;
  }
  try {
    cfg = seed_files.empty() ? config::LoadJobFile(file, overrides)
                             : config::LoadSeedFiles(seed_files.at(0), seed_files.at(1), seed_files.at(2), overrides);
  } catch (const ConfigError& e) {
    if (json) {
      nlohmann::json out = {{"ok", false}, {"file", file}, {"violations", nlohmann::json::array()}};
      for (const auto& item : e.items()) {
        out["violations"].push_back({{"field", item.field}, {"description", item.message}});
      }
      std::cout << out.dump(2) << std::endl;
      return kExitUsage;
    }
    const size_t n = e.items().size();
    std::cerr << "vicregctl: validate " << TerminalSafe(file, false) << ": invalid job file (" << n
              << (n == 1 ? " problem" : " problems") << "):\n";
    for (const auto& item : e.items()) {
      std::cerr << "  " << TerminalSafe(item.field, false) << ": " << TerminalSafe(item.message, false) << "\n";
    }
    return kExitUsage;
  } catch (const UserError& e) {
    if (json) {
      std::cout << nlohmann::json({{"ok", false}, {"file", file}, {"violations", {{{"field", "<file>"}, {"description", e.what()}}}}})
                       .dump(2)
                << std::endl;
    } else {
      std::cerr << "vicregctl: validate " << TerminalSafe(file, false) << ": " << TerminalSafe(e.what()) << "\n";
    }
    return kExitUsage;
  }
  const config::ModelConfig m = config::ResolveModel(cfg.model);
  if (json) {
    nlohmann::json out = {{"ok", true},
                          {"file", file},
                          {"name", cfg.name},
                          {"ranks", cfg.resources.ranks},
                          {"device", cfg.resources.device},
                          {"dataset", cfg.data.dataset},
                          {"backbone", m.backbone_name},
                          {"image_size", m.image_size},
                          {"num_epochs", cfg.train.num_epochs},
                          {"batch_size", cfg.train.batch_size},
                          {"resolved_yaml", config::ToYaml(cfg)}};
    std::cout << out.dump(2) << std::endl;
    return kExitOk;
  }
  std::cout << "OK " << TerminalSafe(file, false) << ": job '" << cfg.name << "', " << cfg.resources.ranks
            << (cfg.resources.ranks == 1 ? " rank" : " ranks") << " (" << cfg.resources.device << "), "
            << cfg.data.dataset << ", " << m.backbone_name << " " << m.image_size << "px, " << cfg.train.num_epochs
            << (cfg.train.num_epochs == 1 ? " epoch" : " epochs") << " x batch " << cfg.train.batch_size << "/rank"
            << std::endl;
  return kExitOk;
}

}  // namespace vicreg::cli
