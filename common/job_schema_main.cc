// vicreg_job_schema: writes the job file's JSON Schema (common/config_json_schema.h), or checks that
// a checked-in copy is current.
//   vicreg_job_schema --readme README.md -o docs/job.schema.json     regenerate
//   vicreg_job_schema --readme README.md --check docs/job.schema.json  exit 1 if it differs
// Exit codes: 0 ok, 1 --check found a stale file, 2 bad usage or unreadable input.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/build_info.h"
#include "common/config_json_schema.h"
#include "common/errors.h"

namespace {
bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vicreg_job_schema: the job file's JSON Schema (draft-07), generated from the config table",
               "vicreg_job_schema"};
  std::string readme, out, check;
  app.add_option("--readme", readme, "README.md whose \"Job file reference\" table gives the descriptions")
      ->required();
  auto* o = app.add_option("-o,--out", out, "write the schema here (default: stdout)");
  app.add_option("--check", check, "compare with this file instead of writing; exit 1 if it is stale")->excludes(o);
  app.set_version_flag("--version", [] { return vicreg::VersionText("vicreg_job_schema"); }, vicreg::kVersionFlagHelp);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? vicreg::kExitOk : vicreg::kExitUsage;
  }
  std::string readme_text;
  if (!ReadFile(readme, &readme_text)) {
    std::cerr << "vicreg_job_schema: --readme " << readme << ": cannot read it\n";
    return vicreg::kExitUsage;
  }
  std::string text;
  try {
    text = vicreg::config::JobJsonSchema(vicreg::config::ReadKeyDescriptions(readme_text)).dump(2) + "\n";
  } catch (const vicreg::UserError& e) {
    std::cerr << "vicreg_job_schema: " << e.what() << "\n";
    return vicreg::kExitUsage;
  }
  if (!check.empty()) {
    std::string current;
    if (!ReadFile(check, &current)) {
      std::cerr << "vicreg_job_schema: --check " << check << ": cannot read it\n";
      return vicreg::kExitUsage;
    }
    if (current != text) {
      std::cerr << "vicreg_job_schema: " << check
                << " is stale: regenerate it with\n  vicreg_job_schema --readme README.md -o docs/job.schema.json\n";
      return vicreg::kExitFailure;
    }
    std::cout << check << " is current\n";
    return vicreg::kExitOk;
  }
  if (out.empty()) {
    std::cout << text;
    return vicreg::kExitOk;
  }
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  if (!(f << text) || !f.flush()) {
    std::cerr << "vicreg_job_schema: -o " << out << ": cannot write it\n";
    return vicreg::kExitFailure;
  }
  return vicreg::kExitOk;
}
