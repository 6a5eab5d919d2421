// The coordinator's --config file: LoadCoordinatorConfig (strict keys, types) and
// FinalizeCoordinatorOptions (ranges, cross-field rules, addresses). Input: the YAML file.
// Promise checked: a bad file is a UserError naming the problem (the coordinator exits 2),
// never another exception.
#include <cstdint>
#include <string>

#include "common/errors.h"
#include "server/coordinator_options.h"
#include "tests/fuzz/fuzz_util.h"

namespace fz = vicreg::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fz::ScratchDir() + "/coordinator.yaml";
  fz::WriteFile(path, std::string_view(reinterpret_cast<const char*>(data), size));
  vicreg::server::CoordinatorOptions o;
  o.launcher = "none";  // no binaries to look up unless the file asks for a launcher
  try {
    vicreg::server::LoadCoordinatorConfig(path, &o);
    vicreg::server::FinalizeCoordinatorOptions(&o);
  } catch (const vicreg::UserError&) {
    return 0;
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING(std::string("coordinator config threw a non-UserError: ") + e.what());
  }
  return 0;
}
