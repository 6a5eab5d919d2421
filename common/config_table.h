// A table of a program's own settings (vicreg_coordinator's today: server/coordinator_options.cc),
// one row per key, read with the job file's machinery: the same YAML loading (one document, alias
// and depth limits), the same typed leaf readers and messages, strict keys with did-you-mean,
// line/column in every message, and every problem of a file in one ConfigError. The same rows make
// the command-line flags (CLI11), check bounds and choices whatever set the value (file or flag),
// and write the markdown reference the docs carry, so a key is described exactly once.
//
//   SettingsTable t;
//   t.Add("listen", &o.listen, "gRPC address HOST:PORT").Flag("--listen");
//   t.Add("slurm.squeue_interval_s", &o.squeue_interval_s, "...").Flag("--slurm-squeue-interval").Range(0, 3600);
//   t.ReadFile(path, &origins);   // strict; throws ConfigError(path, items)
//   t.AddFlags(app); app.parse(...); t.RecordFlagOrigins(&origins);
//   t.Check(origins, source);     // bounds and choices; throws ConfigError(source, items)
//
// Keys are "name" or "section.name" (one level of sections, as YAML maps).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace vicreg::config {

// key -> where its value came from, as messages end: " (c.yaml, line 4, column 3)", " (from --slots)".
using SettingOrigins = std::map<std::string, std::string>;

class SettingsTable {
 public:
  struct IndexList {  // "0,1,2" in a string; the file may also give [0, 1, 2]
    std::string* target;
  };
  using Target = std::variant<std::string*, int*, double*, bool*, std::vector<std::string>*, IndexList>;

  struct Row {
    std::string key;          // "listen", "slurm.partition"
    std::string flag;         // CLI11 names, "--metrics-port,--metrics-listen"; "" = only in the file
    std::string help;         // one line (--help, and the reference unless doc is set)
    std::string doc;          // markdown for the reference ("" = help)
    std::string default_doc;  // the reference's default column ("" = the current value: build it over defaults)
    Target target;
    std::optional<double> min, max;
    std::vector<std::string> choices;

    Row& Flag(std::string names) { return flag = std::move(names), *this; }
    Row& Range(double lo, double hi) { return min = lo, max = hi, *this; }
    Row& Choices(std::vector<std::string> c) { return choices = std::move(c), *this; }
    Row& Doc(std::string markdown) { return doc = std::move(markdown), *this; }
    Row& DefaultDoc(std::string text) { return default_doc = std::move(text), *this; }
    // The first flag name ("--metrics-port"), "" when the row has none.
    std::string PrimaryFlag() const;
  };

  // Rows keep the order they were added in (the reference's order). Targets must outlive the table.
  Row& Add(std::string key, Target target, std::string help);
  const std::vector<Row>& rows() const { return rows_; }

  // Reads a YAML file strictly into the targets. An empty file (or comments only) sets nothing.
  // Records in *origins where each value came from. Throws ConfigError(path, every problem).
  void ReadFile(const std::string& path, SettingOrigins* origins) const;
  // Same, from text (source_name names it in messages).
  void ReadText(const std::string& text, const std::string& source_name, SettingOrigins* origins) const;

  // One CLI11 option per row with a flag, bound to its target (bool rows: flags without a value).
  void AddFlags(CLI::App& app);
  // After app.parse: the rows whose flag was given come from the command line.
  void RecordFlagOrigins(SettingOrigins* origins) const;

  // Bounds and choices of every row, on the current values. Throws ConfigError(source, items):
  // field = key, message names the flag, the bad value, what is valid and where the value came from.
  void Check(const SettingOrigins& origins, const std::string& source) const;

  // The markdown reference: "| key | flag | default | valid | meaning |" with one row per key.
  std::string MarkdownReference() const;

 private:
  std::vector<Row> rows_;
  std::vector<CLI::Option*> options_;  // parallel to rows_ after AddFlags (nullptr: no flag)
};

// A value as the reference and the messages show it: an empty string as "-", lists as [a, b],
// numbers in their shortest form.
std::string ShowSetting(const SettingsTable::Target& target);

}  // namespace vicreg::config
