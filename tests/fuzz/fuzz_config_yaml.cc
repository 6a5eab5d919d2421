// Job-file YAML through the real loader: ParseJobYaml (strict reader, presets, Validate) with
// --set overrides. Input: the YAML document, then optionally a line "#--set" followed by one
// override per line. Promises checked: every problem is a ConfigError (never another exception);
// an accepted config is written back by ToYaml and reads back to the same config.
#include <cstdint>
#include <string>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/fuzz/fuzz_util.h"

using vicreg::ConfigError;
namespace config = vicreg::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  const std::string marker = "\n#--set\n";
  size_t cut = text.find(marker);
  if (cut != std::string::npos) {
    std::string rest = text.substr(cut + marker.size());
    text.resize(cut + 1);
    size_t pos = 0;
    while (pos <= rest.size() && overrides.size() < 16) {
      size_t nl = rest.find('\n', pos);
      if (nl == std::string::npos) nl = rest.size();
      overrides.push_back(rest.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  config::JobConfig cfg;
  try {
    cfg = config::ParseJobYaml(text, "<fuzz>", overrides);
  } catch (const ConfigError& e) {
    if (e.items().empty()) VICREG_FUZZ_FINDING("ConfigError without items");
    return 0;
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING(std::string("ParseJobYaml threw a non-ConfigError: ") + e.what());
  }
  // Accepted: the resolved form must read back to the same config.
  std::string again;
  try {
    again = config::ToYaml(cfg);
    config::JobConfig back = config::ParseJobYaml(again, "<fuzz:resolved>");
    auto diff = config::DiffConfigs(cfg, back);
    if (!diff.empty()) VICREG_FUZZ_FINDING("ToYaml round trip changed " + diff[0] + "\n" + again);
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING(std::string("the resolved form of an accepted config does not load: ") + e.what() + "\n" +
                        again);
  }
  return 0;
}
