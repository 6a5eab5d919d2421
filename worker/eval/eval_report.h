// Evaluation results: the table printed by vicreg_eval, and the JSON/CSV files the coordinator
// parses. No torch here.
//
// JSON (keep exactly; server/ parses it):
//   {"dataset":"fashion_mnist","checkpoint_dir":"...",
//    "rows":[{"model":"vicreg"|"random_init"|"raw_pixels","epoch":E (0 for references),
//             "probe":"linear"|"knn","top1":0.xx,"top5":0.xx,"fit_seconds":s}],
//    "missing_epochs":[...]}
// CSV: header "model,epoch,probe,top1,top5,fit_seconds", one line per row.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace vicreg::eval {

struct EvalRow {
  std::string model;  // vicreg | random_init | raw_pixels
  int epoch = 0;      // 0 for the reference rows
  std::string probe;  // linear | knn
  double top1 = 0;    // ratios in [0, 1]
  double top5 = 0;
  double fit_seconds = 0;  // probe fit (+ predict) time, not feature extraction
};

struct EvalReport {
  std::string dataset;
  std::string checkpoint_dir;
  std::vector<EvalRow> rows;
  std::vector<int> missing_epochs;
  std::map<int, std::string> missing_why;  // epoch -> why it has no checkpoint (the table; not in JSON/CSV)
};

std::string ReportToJson(const EvalReport& r);  // pretty-printed, trailing newline
std::string ReportToCsv(const EvalReport& r);
std::string ReportToTable(const EvalReport& r);  // aligned, for the terminal
// Parses ReportToJson's output; throws UserError naming `source` and the bad field.
EvalReport ReportFromJson(const std::string& text, const std::string& source);

// "<dir>/eval_x.json" -> "<dir>/eval_x.csv" (".csv" appended when there is no .json suffix).
std::string CsvPathFor(const std::string& json_path);

}  // namespace vicreg::eval
