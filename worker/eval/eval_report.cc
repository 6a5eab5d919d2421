#include "worker/eval/eval_report.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/errors.h"

namespace vicreg::eval {

std::string ReportToJson(const EvalReport& r) {
  nlohmann::ordered_json j;
  j["dataset"] = r.dataset;
  j["checkpoint_dir"] = r.checkpoint_dir;
  j["rows"] = nlohmann::ordered_json::array();
  for (const auto& row : r.rows) {
    nlohmann::ordered_json o;
    o["model"] = row.model;
    o["epoch"] = row.epoch;
    o["probe"] = row.probe;
    o["top1"] = row.top1;
    o["top5"] = row.top5;
    o["fit_seconds"] = row.fit_seconds;
    j["rows"].push_back(std::move(o));
  }
  j["missing_epochs"] = r.missing_epochs;
  return j.dump(2) + "\n";
}

std::string ReportToCsv(const EvalReport& r) {
  std::ostringstream os;
  os << "model,epoch,probe,top1,top5,fit_seconds\n";
  char buf[256];
  for (const auto& row : r.rows) {
    std::snprintf(buf, sizeof buf, "%s,%d,%s,%.6f,%.6f,%.3f\n", row.model.c_str(), row.epoch, row.probe.c_str(),
                  row.top1, row.top5, row.fit_seconds);
    os << buf;
  }
  return os.str();
}

std::string ReportToTable(const EvalReport& r) {
  size_t wm = 5, wp = 5;
  for (const auto& row : r.rows) {
    wm = std::max(wm, row.model.size());
    wp = std::max(wp, row.probe.size());
  }
  std::ostringstream os;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-*s | %5s | %-*s | %7s | %7s | %9s\n", static_cast<int>(wm), "model", "epoch",
                static_cast<int>(wp), "probe", "top1", "top5", "fit time");
  os << buf << std::string(wm, '-') << "-+-------+-" << std::string(wp, '-') << "-+---------+---------+----------\n";
  for (const auto& row : r.rows) {
    std::snprintf(buf, sizeof buf, "%-*s | %5d | %-*s | %6.2f%% | %6.2f%% | %8.1fs\n", static_cast<int>(wm),
                  row.model.c_str(), row.epoch, static_cast<int>(wp), row.probe.c_str(), 100 * row.top1, 100 * row.top5,
                  row.fit_seconds);
    os << buf;
  }
  if (!r.missing_epochs.empty()) {
    os << "missing epochs (no checkpoint):";
    for (int e : r.missing_epochs) os << " " << e;
    os << "\n";
    for (int e : r.missing_epochs) {
      auto it = r.missing_why.find(e);
      if (it != r.missing_why.end()) os << "  epoch " << e << ": " << it->second << "\n";
    }
  }
  return os.str();
}

EvalReport ReportFromJson(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw UserError(source + ": not valid JSON: " + e.what());
  }
  auto need = [&](const nlohmann::json& o, const char* key, const std::string& where) -> const nlohmann::json& {
    if (!o.is_object() || !o.contains(key)) throw UserError(source + ": missing field " + where + key);
    return o.at(key);
  };
  EvalReport r;
  try {
    r.dataset = need(j, "dataset", "").get<std::string>();
    r.checkpoint_dir = need(j, "checkpoint_dir", "").get<std::string>();
    const auto& rows = need(j, "rows", "");
    if (!rows.is_array()) throw UserError(source + ": field rows must be an array");
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string where = "rows[" + std::to_string(i) + "].";
      EvalRow row;
      row.model = need(rows[i], "model", where).get<std::string>();
      row.epoch = need(rows[i], "epoch", where).get<int>();
      row.probe = need(rows[i], "probe", where).get<std::string>();
      row.top1 = need(rows[i], "top1", where).get<double>();
      row.top5 = need(rows[i], "top5", where).get<double>();
      row.fit_seconds = need(rows[i], "fit_seconds", where).get<double>();
      r.rows.push_back(std::move(row));
    }
    r.missing_epochs = need(j, "missing_epochs", "").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    throw UserError(source + ": wrong type in eval report: " + e.what());
  }
  return r;
}

std::string CsvPathFor(const std::string& json_path) {
  const std::string ext = ".json";
  if (json_path.size() > ext.size() && json_path.compare(json_path.size() - ext.size(), ext.size(), ext) == 0)
    return json_path.substr(0, json_path.size() - ext.size()) + ".csv";
  return json_path + ".csv";
}

}  // namespace vicreg::eval
