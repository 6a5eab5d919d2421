#include "common/config_json_schema.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <regex>
#include <sstream>
#include <type_traits>

#include "common/config_internal.h"
#include "common/config_schema.h"
#include "common/errors.h"

namespace vicreg::config {
namespace {

using json = nlohmann::ordered_json;

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {
  using Element = T;
};

// Integral bounds print as integers (1048576, not 1048576.0).
json Number(double v) {
  if (std::floor(v) == v && std::fabs(v) < 9.007199254740992e15) return json(static_cast<int64_t>(v));
  return json(v);
}

// "eval.datasets[0].name" -> "eval.datasets[].name"
std::string IndexFreeField(const std::string& field) { return std::regex_replace(field, std::regex(R"(\[\d+\])"), "[]"); }

class Builder {
 public:
  Builder(const std::map<std::string, std::string>& docs, const std::vector<detail::Constraint>& rules)
      : docs_(docs) {
    for (const auto& r : rules) rules_[IndexFreeField(r.field)].push_back(r);
  }

  template <class S>
  json Section(const std::string& path, const S& section) {
    json props = json::object();
    auto visit = [&](const char* key, const auto& field, schema::KeyRole = schema::KeyRole::kLearning) {
      const std::string p = path.empty() ? std::string(key) : path + "." + key;
      props[key] = Node(p, field);
    };
    schema::Fields(visit, section);
    json j = {{"type", "object"}, {"additionalProperties", false}, {"properties", props}};
    return j;
  }

  std::vector<std::string> undocumented;

 private:
  template <class F>
  json Node(const std::string& path, const F& field) {
    json j;
    if constexpr (schema::kIsSection<F>) {
      j = Section(path, field);
    } else if constexpr (std::is_same_v<F, std::vector<EvalDatasetConfig>>) {
      const EvalDatasetConfig item;
      j = {{"type", "array"}, {"items", Section(path + "[]", item)}, {"default", json::array()}};
      Describe(path, j);
    } else {
      j = Leaf(path, field);
      j["default"] = DefaultOf(field);
      Describe(path, j);
    }
    if constexpr (schema::kIsSection<F>) {
      auto it = docs_.find(path);
      if (it != docs_.end()) j["description"] = it->second;
    }
    return j;
  }

  template <class F>
  json DefaultOf(const F& field) {
    if constexpr (std::is_same_v<F, double>) {
      return Number(field);
    } else if constexpr (std::is_same_v<F, std::array<double, 2>>) {
      return json::array({Number(field[0]), Number(field[1])});
    } else if constexpr (std::is_same_v<F, std::vector<double>>) {
      json a = json::array();
      for (double v : field) a.push_back(Number(v));
      return a;
    } else {
      return json(field);
    }
  }

  void Describe(const std::string& path, json& j) {
    auto it = docs_.find(path);
    if (it == docs_.end())
      undocumented.push_back(path);
    else
      j["description"] = it->second;
  }

  void ApplyRules(const std::string& path, json& j) {
    auto it = rules_.find(path);
    if (it == rules_.end()) return;
    for (const auto& r : it->second) {
      if (r.minimum) {
        if (r.exclusive_minimum)
          j["exclusiveMinimum"] = Number(*r.minimum);
        else
          j["minimum"] = Number(*r.minimum);
      }
      if (r.maximum) {
        if (r.exclusive_maximum)
          j["exclusiveMaximum"] = Number(*r.maximum);
        else
          j["maximum"] = Number(*r.maximum);
      }
      if (!r.values.empty()) j["enum"] = r.values;
      if (!r.pattern.empty()) j["pattern"] = r.pattern;
      if (r.min_length > 0) j["minLength"] = r.min_length;
    }
  }

  template <class F>
  json Leaf(const std::string& path, const F&) {
    json j;
    if constexpr (std::is_same_v<F, std::string>) {
      j["type"] = "string";
    } else if constexpr (std::is_same_v<F, bool>) {
      j["type"] = "boolean";
    } else if constexpr (std::is_integral_v<F>) {
      j["type"] = "integer";
      j["minimum"] = Number(static_cast<double>(std::numeric_limits<F>::min()));
      if constexpr (sizeof(F) <= 4) j["maximum"] = Number(static_cast<double>(std::numeric_limits<F>::max()));
    } else if constexpr (std::is_floating_point_v<F>) {
      j["type"] = "number";
    } else if constexpr (std::is_same_v<F, std::array<double, 2>>) {
      j = {{"type", "array"}, {"items", Leaf(path + "[]", 0.0)}, {"minItems", 2}, {"maxItems", 2}};
    } else if constexpr (IsVector<F>::value) {
      j = {{"type", "array"}, {"items", Leaf(path + "[]", typename IsVector<F>::Element{})}};
    } else {
      static_assert(sizeof(F) == 0, "a config field type without a JSON Schema type");
    }
    ApplyRules(path, j);
    return j;
  }

  const std::map<std::string, std::string>& docs_;
  std::map<std::string, std::vector<detail::Constraint>> rules_;
};

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

std::map<std::string, std::string> ReadKeyDescriptions(const std::string& readme_text) {
  std::map<std::string, std::string> out;
  std::istringstream in(readme_text);
  std::string line;
  bool in_section = false;
  const std::regex key_re("`([A-Za-z0-9_.\\[\\]]+)`");
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      in_section = line == "## Job file reference";
      continue;
    }
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    // | `key`[, `key2`] | default | meaning |
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream row(line.substr(1));
    while (std::getline(row, cell, '|')) cells.push_back(Trim(cell));
    if (cells.size() < 3) continue;
    std::string text = cells[2];
    text = std::regex_replace(text, std::regex(R"(\[([^\]]*)\]\([^)]*\))"), "$1");  // [text](link) -> text
    text.erase(std::remove(text.begin(), text.end(), '`'), text.end());
    for (std::sregex_iterator it(cells[0].begin(), cells[0].end(), key_re), end; it != end; ++it)
      out[(*it)[1].str()] = text;
  }
  return out;
}

nlohmann::ordered_json JobJsonSchema(const std::map<std::string, std::string>& descriptions) {
  Builder b(descriptions, detail::StaticConstraints());
  const JobConfig defaults;
  json schema = b.Section("", defaults);
  if (!b.undocumented.empty()) {
    std::string keys;
    for (const auto& k : b.undocumented) keys += (keys.empty() ? "" : ", ") + k;
    throw UserError("the README's job-file reference has no row for " + keys +
                    " (add '| `key` | default | meaning |' rows under \"## Job file reference\")");
  }
  json out = {{"$schema", "http://json-schema.org/draft-07/schema#"},
              {"title", "vicreg job file"},
              {"description",
               "A vicreg job file (README.md, Job file reference). Generated by vicreg_job_schema from "
               "common/config_schema.h, Validate's rules and the README's key table; do not edit. The loader "
               "also checks rules between keys that this schema does not state."}};
  for (auto& [k, v] : schema.items()) out[k] = v;
  return out;
}

}  // namespace vicreg::config
