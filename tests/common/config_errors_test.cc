// Bad configs: each one is refused with a ConfigError whose item names the right field, and
// says what is wrong (the did-you-mean where there is one).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/common/test_util.h"

namespace vicreg::config {
namespace {

struct BadCase {
  const char* yaml;
  const char* field;     // the item that must be present
  const char* contains;  // ... and a piece of its message
};

std::ostream& operator<<(std::ostream& os, const BadCase& c) { return os << c.yaml; }

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, NamesTheField) {
  const BadCase& c = GetParam();
  try {
    ParseJobYaml(c.yaml, "bad.yaml");
    FAIL() << "accepted: " << c.yaml;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.source(), "bad.yaml");
    const ConfigError::Item* found = nullptr;
    for (const auto& item : e.items()) {
      if (item.field == c.field) found = &item;
    }
    ASSERT_NE(found, nullptr) << "no item for " << c.field << " in:\n" << e.what();
    EXPECT_NE(found->message.find(c.contains), std::string::npos)
        << "field " << c.field << ": message \"" << found->message << "\" lacks \"" << c.contains << "\"";
    // The full text (what the CLI prints) carries source, field and message.
    std::string what = e.what();
    EXPECT_NE(what.find("bad.yaml"), std::string::npos);
    EXPECT_NE(what.find(std::string(c.field) + ": "), std::string::npos);
  }
}

const BadCase kCases[] = {
    // unknown keys, with suggestions
    {"train:\n  lr: 0.001\n", "train.lr", "did you mean 'learning_rate'?"},
    {"train:\n  batchsize: 64\n", "train.batchsize", "did you mean 'batch_size'?"},
    {"train:\n  vicreg:\n    lamda_invariance: 25\n", "train.vicreg.lamda_invariance",
     "did you mean 'lambda_invariance'?"},
    {"tain:\n  batch_size: 8\n", "tain", "did you mean 'train'?"},
    {"batch_size: 64\n", "batch_size", "did you mean 'train.batch_size'?"},
    {"augment:\n  view3: {}\n", "augment.view3", "did you mean 'view1'?"},
    {"eval:\n  datasets:\n    - {name: cifar10, dir: x}\n", "eval.datasets[0].dir", "did you mean 'data_dir'?"},
    {"data:\n  zzz_unrelated: 1\n", "data.zzz_unrelated", "valid keys here: dataset, data_dir"},
    // types
    {"train:\n  batch_size: \"64\"\n", "train.batch_size", "the quoted string \"64\"; remove the quotes"},
    {"train:\n  batch_size: 64.5\n", "train.batch_size", "expected an integer, got the non-integer number 64.5"},
    {"train:\n  num_epochs: 1e2\n", "train.num_epochs", "(write it as 100)"},
    {"train:\n  batch_size: [64]\n", "train.batch_size", "expected an integer, got a list"},
    {"train:\n  learning_rate: fast\n", "train.learning_rate", "expected a number, got 'fast'"},
    {"train:\n  learning_rate: .nan\n", "train.learning_rate", "expected a number"},
    {"train:\n  batch_size:\n", "train.batch_size", "has no value; expected an integer (default 128)"},
    {"train:\n  seed: -1\n", "train.seed", "non-negative integer"},
    {"train:\n  batch_size: 99999999999\n", "train.batch_size", "out of range"},
    {"data:\n  shuffle: yes\n", "data.shuffle", "expected true or false, got 'yes'"},
    {"train: 5\n", "train", "expected a section (a map of keys), got '5'"},
    {"eval:\n  probes: linear\n", "eval.probes", "expected a list of strings"},
    {"eval:\n  datasets: [cifar10]\n", "eval.datasets[0]", "expected a map like {name: cifar10"},
    {"augment:\n  view1:\n    crop_scale: [0.2, 0.5, 1.0]\n", "augment.view1.crop_scale", "got a list of 3"},
    {"checkpoint:\n  keep_epochs: [1, two]\n", "checkpoint.keep_epochs[1]", "expected an integer, got 'two'"},
    {"train: {batch_size: 1, batch_size: 2}\n", "train.batch_size", "duplicate key"},
    // ranges
    {"train:\n  batch_size: 0\n", "train.batch_size", "must be in [1, 1048576], got 0"},
    {"train:\n  num_epochs: 0\n  warmup_epochs: 0\n", "train.num_epochs", "got 0"},
    {"train:\n  learning_rate: -1\n", "train.learning_rate", "must be > 0, got -1"},
    {"train:\n  weight_decay: -0.1\n", "train.weight_decay", "must be >= 0, got -0.1"},
    {"train:\n  num_epochs: 10\n  warmup_epochs: 10\n", "train.warmup_epochs", "must be in [0, num_epochs=10), got 10"},
    {"train:\n  min_lr: 0.1\n", "train.min_lr", "must be in [0, learning_rate=0.001]"},
    {"train:\n  vicreg:\n    proj_dim: 0\n", "train.vicreg.proj_dim", "got 0"},
    {"train:\n  vicreg:\n    proj_hidden_dim: -5\n", "train.vicreg.proj_hidden_dim", "got -5"},
    {"train:\n  vicreg:\n    gamma: 0\n", "train.vicreg.gamma", "must be > 0, got 0"},
    {"train:\n  vicreg:\n    epsilon: -1e-4\n", "train.vicreg.epsilon", "must be > 0"},
    {"train:\n  vicreg: {lambda_invariance: 0, mu_variance: 0, nu_covariance: 0}\n", "train.vicreg.lambda_invariance",
     "all 0"},
    {"train:\n  vicreg:\n    covariance_reduction: mean\n", "train.vicreg.covariance_reduction", "paper|seed"},
    {"train:\n  betas: [0.9, 1.0]\n", "train.betas[1]", "must be in [0, 1), got 1"},
    {"train:\n  optimizer: adam\n", "train.optimizer", "did you mean 'adamw'?"},
    {"train:\n  log_every: 0\n", "train.log_every", "must be >= 1"},
    {"resources:\n  ranks: 5000\n", "resources.ranks", "must be in [1, 4096], got 5000"},
    {"resources:\n  device: gpu\n", "resources.device", "must be one of cpu|cuda, got \"gpu\"; did you mean 'cuda'?"},
    {"resources:\n  backend: nccl\n", "resources.backend", "nccl needs resources.device: cuda"},
    {"resources:\n  ranks: 2\n  backend: single\n", "resources.backend", "single runs one process"},
    {"train:\n  precision: bf16\n", "train.precision", "needs resources.device: cuda"},
    {"resources: {ranks: 1}\ntrain: {batch_size: 1}\n", "train.batch_size", "global batch"},
    {"model:\n  image_size: 100\n", "model.image_size", "must be divisible by patch_size 16, got 100 (try 96)"},
    {"model: {backbone_name: vit_custom, embed_dim: 100, num_heads: 3}\n", "model.embed_dim",
     "divisible by num_heads 3"},
    {"model:\n  backbone_name: vit_smal_patch16_224\n", "model.backbone_name", "did you mean 'vit_small_patch16_224'?"},
    {"model:\n  patch_size: 8\n", "model.patch_size", "conflicts with backbone_name \"vit_small_patch16_224\""},
    {"model:\n  drop_path_rate: 1.0\n", "model.drop_path_rate", "must be in [0, 1)"},
    {"model:\n  in_chans: 1\n", "model.in_chans", "must be 3"},
    {"data:\n  dataset: imagenet\n", "data.dataset", "cifar10|cifar100|stl10"},
    {"data:\n  split: unlabeled\n", "data.split", "exists only for stl10"},
    {"data:\n  data_dir: \"\"\n", "data.data_dir", "must not be empty"},
    {"data:\n  limit: -1\n", "data.limit", "must be >= 0, got -1"},
    {"data:\n  prefetch_batches: 0\n", "data.prefetch_batches", "got 0"},
    {"name: \"bad name!\"\n", "name", "1-64 characters"},
    {"max_restarts: 101\n", "max_restarts", "must be in [0, 100], got 101"},
    {"augment:\n  view1:\n    crop_scale: [0.8, 0.2]\n", "augment.view1.crop_scale", "0 < low <= high <= 1"},
    {"augment:\n  view2:\n    crop_ratio: [0, 1]\n", "augment.view2.crop_ratio", "0 < low <= high"},
    {"augment:\n  view2:\n    hue: 0.7\n", "augment.view2.hue", "must be in [0, 0.5], got 0.7"},
    {"augment:\n  view1:\n    blur_prob: 1.5\n", "augment.view1.blur_prob", "must be in [0, 1], got 1.5"},
    {"augment:\n  view1:\n    brightness: -0.4\n", "augment.view1.brightness", "must be >= 0"},
    {"augment:\n  view1:\n    blur_sigma: [0, 2]\n", "augment.view1.blur_sigma", "0 < low <= high"},
    {"augment:\n  view2:\n    interpolation: cubic\n", "augment.view2.interpolation", "did you mean 'bicubic'?"},
    {"augment:\n  mean: [0.5, 0.5, 0.5]\n", "augment.std", "given together"},
    {"augment:\n  mean: [0.5, 0.5]\n  std: [0.2, 0.2]\n", "augment.mean", "3 values"},
    {"augment:\n  mean: [0.5, 0.5, 0.5]\n  std: [0.2, 0, 0.2]\n", "augment.std[1]", "must be > 0"},
    {"checkpoint:\n  keep_last: 0\n", "checkpoint.keep_last", "got 0"},
    {"checkpoint:\n  every_epochs: 10\n  keep_epochs: [15]\n", "checkpoint.keep_epochs[0]", "gets no checkpoint"},
    {"eval:\n  knn_k: 0\n", "eval.knn_k", "must be >= 1, got 0"},
    {"eval:\n  knn_temperature: 0\n", "eval.knn_temperature", "must be > 0"},
    {"eval:\n  epochs: [0, 10]\n", "eval.epochs[0]", "must be an epoch in [1, train.num_epochs=200], got 0"},
    {"eval:\n  epochs: [300]\n", "eval.epochs[0]", "got 300"},
    {"eval:\n  epochs: [10, 10]\n", "eval.epochs[1]", "listed twice"},
    {"checkpoint: {every_epochs: 5}\neval: {epochs: [7]}\n", "eval.epochs[0]", "gets no checkpoint to evaluate"},
    {"checkpoint: {every_epochs: 4}\neval: {every_epochs: 6}\n", "eval.every_epochs", "multiple of"},
    {"eval:\n  probes: [linear, svm]\n", "eval.probes[1]", "linear|knn"},
    {"eval:\n  epochs: [10]\n  probes: []\n", "eval.probes", "at least one"},
    {"eval:\n  datasets:\n    - name: cifar1000\n", "eval.datasets[0].name", "did you mean 'cifar100'?"},
    // Caps on evaluation tasks (issue 17: 1M listed entries stalled the coordinator for 26 s).
    {"eval:\n  datasets: [{name: cifar10}, {name: stl10}, {name: cifar10, data_dir: /d}]\n", "eval.datasets[2].name",
     "\"cifar10\" is listed twice"},
    {"train: {num_epochs: 5000}\ncheckpoint: {every_epochs: 1}\neval: {every_epochs: 2}\n", "eval.every_epochs",
     "2500 evaluations); at most 1000 epochs"},
    {"metrics:\n  port: 70000\n", "metrics.port", "must be in [0, 65535], got 70000"},
    {"metrics:\n  address: \"\"\n", "metrics.address", "host name or IP address"},
    {"resources: {ranks: 8}\nmetrics: {port: 65530}\n", "metrics.port", "exceeds 65535"},
    {"resources:\n  collective_timeout_s: 0\n", "resources.collective_timeout_s", "must be > 0"},
};

INSTANTIATE_TEST_SUITE_P(Cases, BadConfig, ::testing::ValuesIn(kCases));

TEST(BadConfigDocument, EmptySyntaxAndShape) {
  auto expect = [](const std::string& yaml, const std::string& field, const std::string& contains) {
    try {
      ParseJobYaml(yaml, "doc.yaml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      ASSERT_EQ(e.items().size(), 1u) << e.what();
      EXPECT_EQ(e.items()[0].field, field) << e.what();
      EXPECT_NE(e.items()[0].message.find(contains), std::string::npos) << e.what();
    }
  };
  expect("", "<document>", "doc.yaml is empty");
  expect("# only a comment\n", "<document>", "is empty");
  expect("- a\n- b\n", "<document>", "must be a map of keys");
  expect("42\n", "<document>", "got a single value");
  expect("train:\n  batch_size: [1, 2\n", "line 3, column 1", "YAML syntax error");
  expect("name: a\n---\nname: b\n", "<document>", "2 YAML documents");
  // yaml-cpp's LoadAll looped forever (allocating until out of memory) on a ',' where a document
  // starts (fuzz_config_yaml, tests/fuzz/corpus/config_yaml/crash_comma_where_a_document_starts).
  expect(", a: 1\n", "line 1, column 1", "a ',' outside [ ] or { }?");
  expect("name: a\n  depth: 2\n, heads: 2\n", "line 2, column 8", "YAML syntax error");
  expect("name: a\ntrain:\n  depth: 2\n, heads: 2\n", "line 4, column 1", "YAML syntax error");
  std::string many;
  for (int i = 0; i < 40; ++i) many += "name: a\n---\n";
  expect(many, "<document>", "16 or more YAML documents");
}

TEST(BadConfigDocument, AllProblemsAreReportedAtOnce) {
  const char* yaml =
      "name: ok\n"
      "train:\n"
      "  lr: 0.1\n"
      "  batch_size: \"64\"\n"
      "  vicreg:\n"
      "    gamma: -1\n"
      "model:\n"
      "  image_size: 100\n";
  try {
    ParseJobYaml(yaml, "many.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.items().size(), 4u) << e.what();
    std::string what = e.what();
    for (const char* f : {"train.lr", "train.batch_size", "train.vicreg.gamma", "model.image_size"}) {
      EXPECT_NE(what.find(f), std::string::npos) << f << " in " << what;
    }
    // Each item points to its line.
    EXPECT_NE(what.find("train.lr: unknown key; did you mean 'learning_rate'? (line 3, column 3)"), std::string::npos)
        << what;
    EXPECT_NE(what.find("(line 6, column 5)"), std::string::npos) << what;
  }
}

// A huge eval list is one error, found fast, not one error per entry (issue 17).
TEST(BadConfigDocument, HugeEvalListsAreRefusedAsAWhole) {
  std::string yaml = "train: {num_epochs: 100000}\ncheckpoint: {every_epochs: 1}\neval:\n  epochs: [";
  for (int i = 1; i <= 20000; ++i) yaml += (i > 1 ? "," : "") + std::to_string(i);
  yaml += "]\n  datasets: [";
  for (int i = 0; i < 40; ++i) yaml += std::string(i ? "," : "") + "{name: cifar10}";
  yaml += "]\n";
  try {
    ParseJobYaml(yaml, "big.yaml");
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.items().size(), 2u) << e.what();
    EXPECT_EQ(e.items()[0].field, "eval.epochs");
    EXPECT_NE(e.items()[0].message.find("lists 20000 epochs; at most 1000"), std::string::npos) << e.what();
    EXPECT_EQ(e.items()[1].field, "eval.datasets");
    EXPECT_NE(e.items()[1].message.find("at most 16"), std::string::npos) << e.what();
  }
}

TEST(BadConfigDocument, MissingJobFile) {
  try {
    LoadJobFile("/nonexistent/job.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.source(), "/nonexistent/job.yaml");
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
  // A ConfigError is a UserError (exit code 2 at the binaries).
  EXPECT_THROW(LoadJobFile("/nonexistent/job.yaml"), UserError);
}

}  // namespace
}  // namespace vicreg::config

namespace vicreg::config {
namespace {

// tests/common/bad_configs/: the corpus docs/job.schema.json is tested against (job_schema_test.py).
// Every file is refused by the loader too, with an item naming the key its first two lines name
// ("# schema: reject KEY", or "# loader: KEY" for the rules between keys the schema cannot state).
TEST(BadConfigCorpus, TheLoaderRefusesEveryFileNamingItsKey) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(VICREG_SOURCE_DIR) / "tests/common/bad_configs";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string first, second, key;
    std::getline(in, first);
    std::getline(in, second);
    for (const std::string& line : {first, second}) {
      for (const char* marker : {"# schema: reject ", "# loader: "})
        if (line.rfind(marker, 0) == 0) key = line.substr(std::string(marker).size());
    }
    ASSERT_FALSE(key.empty()) << entry.path() << ": no '# schema: reject KEY' or '# loader: KEY' line";
    try {
      LoadJobFile(entry.path().string());
      ADD_FAILURE() << entry.path() << " was accepted";
    } catch (const ConfigError& e) {
      bool named = false;
      for (const auto& item : e.items()) named = named || item.field == key;
      EXPECT_TRUE(named) << entry.path() << ": no item for " << key << " in:\n" << e.what();
      EXPECT_NE(std::string(e.what()).find("line "), std::string::npos) << e.what();
    }
  }
  EXPECT_GE(files, 10);
}

}  // namespace
}  // namespace vicreg::config
