// Eval report: JSON schema (parsed by the coordinator), CSV and the terminal table.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "worker/eval/eval_report.h"

namespace vicreg::eval {
namespace {

EvalReport Sample() {
  EvalReport r;
  r.dataset = "fashion_mnist";
  r.checkpoint_dir = "/runs/a/checkpoints";
  r.rows = {{"vicreg", 2, "linear", 0.81, 0.99, 3.5}, {"raw_pixels", 0, "knn", 0.85, 0.97, 1.25}};
  r.missing_epochs = {1};
  return r;
}

TEST(EvalReport, JsonHasExactlyTheSchemaFields) {
  auto j = nlohmann::json::parse(ReportToJson(Sample()));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"checkpoint_dir", "dataset", "missing_epochs", "rows"}));
  ASSERT_EQ(j["rows"].size(), 2u);
  std::vector<std::string> row_keys;
  for (auto it = j["rows"][0].begin(); it != j["rows"][0].end(); ++it) row_keys.push_back(it.key());
  EXPECT_EQ(row_keys, (std::vector<std::string>{"epoch", "fit_seconds", "model", "probe", "top1", "top5"}));
  EXPECT_EQ(j["rows"][0]["model"], "vicreg");
  EXPECT_EQ(j["rows"][0]["epoch"], 2);
  EXPECT_DOUBLE_EQ(j["rows"][1]["top1"].get<double>(), 0.85);
  EXPECT_EQ(j["missing_epochs"], nlohmann::json::array({1}));
}

TEST(EvalReport, JsonRoundTripsAndBadJsonNamesTheField) {
  auto r = ReportFromJson(ReportToJson(Sample()), "x.json");
  EXPECT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[1].model, "raw_pixels");
  EXPECT_EQ(r.missing_epochs, std::vector<int>{1});
  try {
    ReportFromJson(R"({"dataset":"a","checkpoint_dir":"b","rows":[{"model":"m"}],"missing_epochs":[]})", "x.json");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("rows[0].epoch"), std::string::npos) << e.what();
  }
}

TEST(EvalReport, CsvAndTable) {
  EXPECT_EQ(ReportToCsv(Sample()),
            "model,epoch,probe,top1,top5,fit_seconds\n"
            "vicreg,2,linear,0.810000,0.990000,3.500\n"
            "raw_pixels,0,knn,0.850000,0.970000,1.250\n");
  const auto table = ReportToTable(Sample());
  EXPECT_NE(table.find("raw_pixels |     0 | knn    |  85.00% |  97.00% |"), std::string::npos) << table;
  EXPECT_NE(table.find("missing epochs (no checkpoint): 1"), std::string::npos) << table;
  EXPECT_EQ(CsvPathFor("/a/eval/e.json"), "/a/eval/e.csv");
  EXPECT_EQ(CsvPathFor("/a/eval/e"), "/a/eval/e.csv");
}

}  // namespace
}  // namespace vicreg::eval
