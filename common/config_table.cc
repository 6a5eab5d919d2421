// SettingsTable (config_table.h): a program's own settings through the job file's reader.
#include "common/config_table.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <set>
#include <sstream>

#include "common/config_internal.h"
#include "common/config_loader.h"
#include "common/errors.h"

namespace vicreg::config {
namespace {

using detail::ParseContext;

std::string Section(const std::string& key) {
  const size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}
std::string Leaf(const std::string& key) {
  const size_t dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

// "a, b or c"
std::string OrList(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += i + 1 == items.size() ? " or " : ", ";
    s += items[i];
  }
  return s;
}

bool ReadRow(ParseContext& ctx, const YAML::Node& value, const SettingsTable::Row& row) {
  return std::visit(
      [&](auto target) -> bool {
        using T = decltype(target);
        if constexpr (std::is_same_v<T, SettingsTable::IndexList>) {
          if (value.IsSequence()) {
            std::vector<int> indices;
            if (!detail::ReadValue(ctx, value, row.key, indices)) return false;
            std::string joined;
            for (int i : indices) joined += (joined.empty() ? "" : ",") + std::to_string(i);
            *target.target = joined;
            return true;
          }
          return detail::ReadValue(ctx, value, row.key, *target.target);
        } else {
          return detail::ReadValue(ctx, value, row.key, *target);
        }
      },
      row.target);
}

// The current value as a number, for bounds (nullopt: not numeric).
std::optional<double> Numeric(const SettingsTable::Target& t) {
  if (auto p = std::get_if<int*>(&t)) return **p;
  if (auto p = std::get_if<double*>(&t)) return **p;
  return std::nullopt;
}

}  // namespace

std::string ShowSetting(const SettingsTable::Target& target) {
  return std::visit(
      [](auto t) -> std::string {
        using T = decltype(t);
        if constexpr (std::is_same_v<T, SettingsTable::IndexList>) {
          return t.target->empty() ? "-" : *t.target;
        } else if constexpr (std::is_same_v<T, std::string*>) {
          return t->empty() ? "-" : *t;
        } else if constexpr (std::is_same_v<T, bool*>) {
          return *t ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double*>) {
          return detail::FormatDouble(*t);
        } else if constexpr (std::is_same_v<T, int*>) {
          return std::to_string(*t);
        } else {
          std::string s = "[";
          for (size_t i = 0; i < t->size(); ++i) s += (i ? ", " : "") + (*t)[i];
          return s + "]";
        }
      },
      target);
}

std::string SettingsTable::Row::PrimaryFlag() const { return flag.substr(0, flag.find(',')); }

SettingsTable::Row& SettingsTable::Add(std::string key, Target target, std::string help) {
  Row row;
  row.key = std::move(key);
  row.target = target;
  row.help = std::move(help);
  rows_.push_back(std::move(row));
  return rows_.back();
}

void SettingsTable::ReadFile(const std::string& path, SettingOrigins* origins) const {
  std::string text, error;
  if (!detail::ReadFileText(path, &text, &error)) throw ConfigError(path, {{"<file>", error}});
  ReadText(text, path, origins);
}

void SettingsTable::ReadText(const std::string& text, const std::string& source_name, SettingOrigins* origins) const {
  ParseContext ctx(/*name_files=*/false);
  YAML::Node root;
  if (!detail::LoadDocument(text, source_name, ctx, &root, /*allow_empty=*/true)) {
    throw ConfigError(source_name, ctx.items());
  }
  if (root.IsNull()) return;
  if (!detail::CheckExpandedSize(root, detail::kExpansionFactor * text.size() + detail::kExpansionSlack, source_name,
                                 ctx)) {
    throw ConfigError(source_name, ctx.items());
  }
  // Sections and the keys valid at each level.
  std::set<std::string> sections;
  std::map<std::string, std::vector<std::string>> valid;  // section ("" = top) -> leaf names
  for (const Row& r : rows_) {
    const std::string s = Section(r.key);
    if (!s.empty() && sections.insert(s).second) valid[""].push_back(s);
    valid[s].push_back(Leaf(r.key));
  }
  std::map<std::string, const Row*> by_key;
  for (const Row& r : rows_) by_key[r.key] = &r;

  // Reads one map level; `section` is "" for the top.
  auto read_map = [&](const YAML::Node& map, const std::string& section, auto& self) -> void {
    std::set<std::string> seen;
    for (const auto& pair : map) {
      const YAML::Node key = pair.first;
      const YAML::Node value = pair.second;
      if (!key.IsScalar()) {
        const YAML::Mark mark = key.Mark();
        ctx.Error(section.empty() ? "<document>" : section,
                  "keys must be plain names, got " + detail::DescribeNode(key) + " as a key", &mark);
        continue;
      }
      const std::string name = key.Scalar();
      const std::string path = section.empty() ? name : section + "." + name;
      const YAML::Mark mark = key.Mark();
      if (!seen.insert(name).second) {
        ctx.Error(path, "duplicate key; give each key once", &mark);
        continue;
      }
      ctx.Record(path, key);
      if (section.empty() && sections.count(name)) {
        if (value.IsNull()) continue;  // "slurm:" with every key commented out
        if (!value.IsMap()) {
          ctx.Error(path, "expected a section (a map of keys), got " + detail::DescribeNode(value));
          continue;
        }
        self(value, name, self);
        continue;
      }
      auto row = by_key.find(path);
      if (row == by_key.end()) {
        std::vector<std::string> elsewhere;  // the same name in another section
        for (const Row& r : rows_) {
          if (Leaf(r.key) == name && Section(r.key) != section) elsewhere.push_back(r.key);
        }
        ctx.Error(path,
                  detail::UnknownKeyMessage(name, valid[section], section.empty() ? "" : section + ".", elsewhere),
                  &mark);
        continue;
      }
      if (ReadRow(ctx, value, *row->second) && origins) {  // at the key, as the job file's messages point
        (*origins)[path] = " (" + source_name + ", line " + std::to_string(mark.line + 1) + ", column " +
                           std::to_string(mark.column + 1) + ")";
      }
    }
  };
  read_map(root, "", read_map);
  if (!ctx.empty()) throw ConfigError(source_name, ctx.items());
}

void SettingsTable::AddFlags(CLI::App& app) {
  options_.assign(rows_.size(), nullptr);
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& r = rows_[i];
    if (r.flag.empty()) continue;
    options_[i] = std::visit(
        [&](auto t) -> CLI::Option* {
          using T = decltype(t);
          if constexpr (std::is_same_v<T, bool*>) {
            return app.add_flag(r.flag, *t, r.help);
          } else if constexpr (std::is_same_v<T, SettingsTable::IndexList>) {
            return app.add_option(r.flag, *t.target, r.help);
          } else if constexpr (std::is_same_v<T, std::vector<std::string>*>) {
            return app.add_option(r.flag, *t, r.help);
          } else {
            CLI::Option* o = app.add_option(r.flag, *t, r.help);
            if (!r.default_doc.empty()) return o;  // a computed default ("number of cores"): the help says it
            if constexpr (std::is_same_v<T, std::string*>) {
              if (t->empty()) return o;
            }
            return o->capture_default_str();
          }
        },
        r.target);
  }
}

void SettingsTable::RecordFlagOrigins(SettingOrigins* origins) const {
  for (size_t i = 0; i < options_.size() && i < rows_.size(); ++i) {
    if (options_[i] && options_[i]->count() > 0) {
      (*origins)[rows_[i].key] = " (from " + options_[i]->get_name() + ")";
    }
  }
}

void SettingsTable::Check(const SettingOrigins& origins, const std::string& source) const {
  std::vector<ConfigError::Item> items;
  for (const Row& r : rows_) {
    auto where = origins.find(r.key);
    const std::string origin = where == origins.end() ? " (the default)" : where->second;
    const std::string flag = r.flag.empty() ? "" : " (" + r.PrimaryFlag() + ")";
    if (r.min || r.max) {
      const std::optional<double> v = Numeric(r.target);
      if (v && ((r.min && *v < *r.min) || (r.max && *v > *r.max))) {
        std::string range = r.min && r.max
                                ? "in [" + detail::FormatDouble(*r.min) + ", " + detail::FormatDouble(*r.max) + "]"
                            : r.min ? ">= " + detail::FormatDouble(*r.min)
                                    : "<= " + detail::FormatDouble(*r.max);
        items.push_back({r.key, "must be " + range + flag + ", got " + ShowSetting(r.target) + origin});
      }
    }
    if (!r.choices.empty()) {
      const std::string* s = std::get_if<std::string*>(&r.target) ? *std::get_if<std::string*>(&r.target) : nullptr;
      if (s && std::find(r.choices.begin(), r.choices.end(), *s) == r.choices.end()) {
        items.push_back({r.key, "must be " + OrList(r.choices) + flag + ", got '" + *s + "'" + origin});
      }
    }
  }
  if (!items.empty()) throw ConfigError(source, items);
}

std::string SettingsTable::MarkdownReference() const {
  auto cell = [](std::string s) {  // a table cell: no line breaks, pipes escaped
    std::string out;
    for (char c : s) {
      if (c == '\n')
        out += ' ';
      else if (c == '|')
        out += "\\|";
      else
        out += c;
    }
    return out;
  };
  std::ostringstream os;
  os << "| key | flag | default | valid | meaning |\n|---|---|---|---|---|\n";
  for (const Row& r : rows_) {
    std::string flags;  // "--metrics-port,--metrics-listen" -> "`--metrics-port`, `--metrics-listen`"
    std::stringstream names(r.flag);
    for (std::string f; std::getline(names, f, ',');) flags += (flags.empty() ? "" : ", ") + ("`" + f + "`");
    std::string valid;
    if (!r.choices.empty()) {
      for (const std::string& c : r.choices) valid += (valid.empty() ? "" : ", ") + ("`" + c + "`");
    } else if (r.min && r.max) {
      valid = detail::FormatDouble(*r.min) + " .. " + detail::FormatDouble(*r.max);
    } else if (r.min) {
      valid = ">= " + detail::FormatDouble(*r.min);
    } else if (r.max) {
      valid = "<= " + detail::FormatDouble(*r.max);
    } else if (std::holds_alternative<bool*>(r.target)) {
      valid = "`true`, `false`";
    } else if (std::holds_alternative<std::vector<std::string>*>(r.target)) {
      valid = "list of strings";
    }
    const std::string shown = ShowSetting(r.target);
    const std::string def = !r.default_doc.empty() ? r.default_doc : shown == "-" ? shown : "`" + shown + "`";
    os << "| `" << r.key << "` | " << (flags.empty() ? "-" : flags) << " | " << cell(def) << " | "
       << (valid.empty() ? "-" : cell(valid)) << " | " << cell(r.doc.empty() ? r.help : r.doc) << " |\n";
  }
  return os.str();
}

}  // namespace vicreg::config
