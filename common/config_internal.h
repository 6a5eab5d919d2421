// Shared by config_loader.cc, config_yaml.cc and config_validate.cc; not for other areas.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/errors.h"

namespace vicreg::config::detail {

// Collects the problems of one load and remembers where each value came from.
class ParseContext {
 public:
  // name_files: messages name the file of each value (seed form, several files).
  explicit ParseContext(bool name_files) : name_files_(name_files) {}

  // Values under top-level `section` came from `file` (seed form).
  void SetSectionFile(const std::string& section, const std::string& file) { section_files_[section] = file; }
  // Values at/under `path` came from the override text `text` ("train.lr=1").
  void AddOverride(const std::string& path, const std::string& text) { overrides_[path] = text; }
  // The value of `path` was read from `node`.
  void Record(const std::string& path, const YAML::Node& node);
  bool Present(const std::string& path) const { return where_.count(path) > 0; }

  // " (line 4, column 3)" / " (train_config_vicreg.yaml, line 4, column 3)" / " (from --set a.b=1)";
  // "" when the path was not given (a default). Uses the nearest recorded ancestor for list items.
  std::string Where(const std::string& path) const;
  std::string WhereMark(const std::string& path, const YAML::Mark& mark) const;
  // The file the value of `path` came from ("" if none is known).
  std::string FileOf(const std::string& path) const;
  // Name of the seed file holding `section`, "" in the job form.
  std::string SectionFile(const std::string& section) const;

  // An error about `path`; `message` should not end with a location (added here).
  // mark: where to point (default: where `path` was recorded).
  void Error(const std::string& path, const std::string& message, const YAML::Mark* mark = nullptr);
  void ErrorRaw(const std::string& field, const std::string& message, const std::string& file);
  bool HasErrorFor(const std::string& path) const;
  bool empty() const { return items_.empty(); }
  // The problems in file order (by file, then line); those without a line (defaults, --set) last.
  std::vector<ConfigError::Item> items() const;
  // The file every error came from, or "" when they come from several (or none).
  std::string CommonFile() const;

 private:
  const std::string* OverrideFor(const std::string& path) const;
  const YAML::Mark* RecordedMark(const std::string& path) const;
  void Add(const std::string& field, const std::string& message, const std::string& file, int line);
  bool name_files_;
  std::map<std::string, std::string> section_files_;
  std::map<std::string, std::string> overrides_;
  std::map<std::string, YAML::Mark> where_;
  std::vector<ConfigError::Item> items_;
  std::vector<std::string> item_files_;
  std::vector<int> item_lines_;  // 0-based, -1 = none
};

// Reads the map `root` into `cfg` (which holds the defaults), strictly. Problems go to ctx.
void ReadJobTree(const YAML::Node& root, JobConfig& cfg, ParseContext& ctx);

// The job file's leaf readers, for other tables of settings (config_table.cc): read `n` into `out`
// with the job file's type rules and messages; false (after reporting to ctx) leaves `out` as it was.
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, int& out);
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, double& out);
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, bool& out);
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::string& out);
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<int>& out);
bool ReadValue(ParseContext& ctx, const YAML::Node& n, const std::string& path, std::vector<std::string>& out);
// The message of a key no field claims, for the job file and other tables: "unknown key; did you
// mean '<prefix><closest of valid_here>'?", else "...did you mean '<a>' or '<b>'?<elsewhere_hint>"
// naming the paths in other sections that end in `key`, else "unknown key; valid keys here: ...".
std::string UnknownKeyMessage(const std::string& key, const std::vector<std::string>& valid_here,
                              const std::string& prefix, const std::vector<std::string>& elsewhere,
                              const std::string& elsewhere_hint = "");
// "a list", "a map", "'abc'", "the quoted string \"5\"", "no value".
std::string DescribeNode(const YAML::Node& n);

// Reads a whole file (config_loader.cc); false and "cannot open file: <reason>" / "cannot read
// file: <reason>" in *error on failure.
bool ReadFileText(const std::string& path, std::string* text, std::string* error);

// One YAML document whose top level is a map (config_loader.cc); problems go to ctx, attributed
// to `file`. allow_empty: an empty document (or comments only) is accepted as a null *out.
bool LoadDocument(const std::string& text, const std::string& file, ParseContext& ctx, YAML::Node* out,
                  bool allow_empty = false);

// Longest field path / message of one ConfigError item; longer ones are clipped in the middle.
constexpr size_t kMaxFieldChars = 160;
constexpr size_t kMaxMessageChars = 640;
// s itself, or its start and end around "...[N bytes omitted]..." when longer than max_chars.
std::string ClipText(const std::string& s, size_t max_chars);

// A YAML tree (aliases followed, as the reader follows them) larger than this many "bytes"
// (1 per node + the length of every scalar) is refused before it is read: aliases (*name)
// re-use a node without copying it in the text, so a small document can stand for a huge one.
// The limit is a small multiple of what was sent: kExpansionFactor x text + kExpansionSlack.
constexpr size_t kExpansionFactor = 4;
constexpr size_t kExpansionSlack = 64 * 1024;
constexpr int kMaxYamlDepth = 64;
// Adds an error on "<document>" (and returns false) when `root` expands beyond `budget` or is
// nested deeper than kMaxYamlDepth.
bool CheckExpandedSize(const YAML::Node& root, size_t budget, const std::string& what, ParseContext& ctx);

// A rule of Validate that holds whatever the other keys say (bounds, choices, a pattern), as JSON
// Schema states it; "train.betas[0]" is the rule of a list item.
struct Constraint {
  std::string field;
  std::optional<double> minimum, maximum;
  bool exclusive_minimum = false, exclusive_maximum = false;
  std::vector<std::string> values;  // enum
  std::string pattern;
  int min_length = 0;
};
// Runs Validate's checks over the defaults (plus one item of each list) and returns their static rules.
std::vector<Constraint> StaticConstraints();

// Shortest decimal text that reads back as exactly `v` ("0.001", "1e-06", "25").
std::string FormatDouble(double v);
// "a, b or c"
std::string JoinAlternatives(const std::vector<std::string>& items, const std::string& sep = "|");

}  // namespace vicreg::config::detail
