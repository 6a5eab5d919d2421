// Config loading: defaults, the seed's three files, round trip, overrides, presets, configs/.
#include "common/config.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "tests/common/test_util.h"

namespace vicreg::config {
namespace {

using testing_util::TempDir;
using testing_util::WriteText;

const std::string kConfigs = std::string(VICREG_SOURCE_DIR) + "/configs";

const ConfigError::Item* FindItem(const ConfigError& e, const std::string& field) {
  for (const auto& item : e.items()) {
    if (item.field == field) return &item;
  }
  return nullptr;
}

std::string Dump(const ConfigError& e) { return e.what(); }

TEST(ConfigDefaults, MatchDesignAndSeed) {
  JobConfig c;
  // The seed's train_config_vicreg.yaml
  EXPECT_EQ(c.train.training_mode, "vicreg");
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.train.num_epochs, 200);
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 0.001);
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 0.0001);
  EXPECT_DOUBLE_EQ(c.train.warmup_epochs, 10);
  EXPECT_EQ(c.train.vicreg.proj_dim, 2048);
  EXPECT_EQ(c.train.vicreg.proj_hidden_dim, 2048);
  EXPECT_DOUBLE_EQ(c.train.vicreg.lambda_invariance, 25.0);
  EXPECT_DOUBLE_EQ(c.train.vicreg.mu_variance, 25.0);
  EXPECT_DOUBLE_EQ(c.train.vicreg.nu_covariance, 1.0);
  EXPECT_DOUBLE_EQ(c.train.vicreg.gamma, 1.0);
  EXPECT_DOUBLE_EQ(c.train.grad_clip, 1.0);
  EXPECT_EQ(c.train.vicreg.covariance_reduction, "paper");
  // The seed's model_config_vicreg.yaml (README.md "Job file reference")
  EXPECT_EQ(c.model.backbone_name, "vit_small_patch16_224");
  EXPECT_EQ(c.model.image_size, 96);
  EXPECT_EQ(c.model.patch_size, 16);
  EXPECT_EQ(c.model.embed_dim, 384);
  EXPECT_EQ(c.model.depth, 12);
  EXPECT_EQ(c.model.num_heads, 6);
  // Asymmetric view defaults (README.md "Job file reference", facebookresearch/vicreg)
  for (const ViewAugmentConfig* v : {&c.augment.view1, &c.augment.view2}) {
    EXPECT_DOUBLE_EQ(v->crop_scale[0], 0.2);
    EXPECT_DOUBLE_EQ(v->crop_scale[1], 1.0);
    EXPECT_EQ(v->interpolation, "bicubic");
    EXPECT_DOUBLE_EQ(v->hflip_prob, 0.5);
    EXPECT_DOUBLE_EQ(v->jitter_prob, 0.8);
    EXPECT_DOUBLE_EQ(v->brightness, 0.4);
    EXPECT_DOUBLE_EQ(v->contrast, 0.4);
    EXPECT_DOUBLE_EQ(v->saturation, 0.2);
    EXPECT_DOUBLE_EQ(v->hue, 0.1);
    EXPECT_DOUBLE_EQ(v->grayscale_prob, 0.2);
    EXPECT_DOUBLE_EQ(v->blur_sigma[0], 0.1);
    EXPECT_DOUBLE_EQ(v->blur_sigma[1], 2.0);
  }
  EXPECT_DOUBLE_EQ(c.augment.view1.blur_prob, 1.0);
  EXPECT_DOUBLE_EQ(c.augment.view1.solarize_prob, 0.0);
  EXPECT_DOUBLE_EQ(c.augment.view2.blur_prob, 0.1);
  EXPECT_DOUBLE_EQ(c.augment.view2.solarize_prob, 0.2);
  EXPECT_EQ(c.resources.ranks, 1);
  EXPECT_EQ(c.resources.device, "cpu");
  EXPECT_EQ(c.metrics.address, "127.0.0.1");
  EXPECT_EQ(c.eval.knn_k, 20);
  EXPECT_DOUBLE_EQ(c.eval.knn_temperature, 0.07);
  // The defaults are a valid config.
  EXPECT_TRUE(Validate(c).empty());
}

TEST(ConfigDefaults, MinimalJobFileEqualsDefaults) {
  JobConfig c = ParseJobYaml("name: minimal\n");
  JobConfig expected;
  expected.name = "minimal";
  EXPECT_EQ(DiffConfigs(c, expected), std::vector<std::string>{});
  // Only the view2 block given: view2 keeps its own defaults for the other keys.
  JobConfig v = ParseJobYaml("augment:\n  view2:\n    hue: 0.05\n");
  EXPECT_DOUBLE_EQ(v.augment.view2.hue, 0.05);
  EXPECT_DOUBLE_EQ(v.augment.view2.blur_prob, 0.1);
  EXPECT_DOUBLE_EQ(v.augment.view2.solarize_prob, 0.2);
  EXPECT_DOUBLE_EQ(v.augment.view1.blur_prob, 1.0);
}

TEST(ConfigSeed, ShippedSeedFilesLoadUnchanged) {
  JobConfig c = LoadSeedFiles(kConfigs + "/data_config.yaml", kConfigs + "/train_config_vicreg.yaml",
                              kConfigs + "/model_config_vicreg.yaml");
  EXPECT_EQ(c.data.dataset, "cifar10");
  EXPECT_EQ(c.data.data_dir, "data/cifar10");
  JobConfig expected;
  expected.data.data_dir = "data/cifar10";
  expected.checkpoint.keep_epochs = {1, 50, 100, 150, 200};  // the seed form keeps what the seed evaluates
  EXPECT_EQ(DiffConfigs(c, expected), std::vector<std::string>{});
  ModelConfig m = LoadSeedModelConfig(kConfigs + "/model_config_vicreg.yaml");
  EXPECT_EQ(m.backbone_name, "vit_small_patch16_224");
  EXPECT_EQ(m.image_size, 96);
  EXPECT_EQ(m.embed_dim, 384);
}

TEST(ConfigSeed, EverySeedKeyMapsOneToOneAndEqualsTheJobForm) {
  TempDir tmp_dir("seed");
  const std::string dir = tmp_dir.path();
  const std::string data = "dataset: cifar100\ndata_dir: /data/c100\n";
  const std::string train =
      "training_mode: \"vicreg\"\nbatch_size: 64\nnum_epochs: 30\nlearning_rate: 0.002\n"
      "weight_decay: 0.05\nwarmup_epochs: 3\nvicreg:\n  proj_dim: 1024\n  proj_hidden_dim: 512\n"
      "  lambda_invariance: 20.0\n  mu_variance: 21.0\n  nu_covariance: 2.0\n  gamma: 0.5\n";
  const std::string model = "backbone_name: \"vit_tiny_patch16_224\"\nimage_size: 64\n";
  WriteText(dir + "/d.yaml", data);
  WriteText(dir + "/t.yaml", train);
  WriteText(dir + "/m.yaml", model);
  JobConfig s = LoadSeedFiles(dir + "/d.yaml", dir + "/t.yaml", dir + "/m.yaml");
  EXPECT_EQ(s.data.dataset, "cifar100");
  EXPECT_EQ(s.data.data_dir, "/data/c100");
  EXPECT_EQ(s.train.batch_size, 64);
  EXPECT_EQ(s.train.num_epochs, 30);
  EXPECT_DOUBLE_EQ(s.train.learning_rate, 0.002);
  EXPECT_DOUBLE_EQ(s.train.weight_decay, 0.05);
  EXPECT_DOUBLE_EQ(s.train.warmup_epochs, 3);
  EXPECT_EQ(s.train.vicreg.proj_dim, 1024);
  EXPECT_EQ(s.train.vicreg.proj_hidden_dim, 512);
  EXPECT_DOUBLE_EQ(s.train.vicreg.lambda_invariance, 20.0);
  EXPECT_DOUBLE_EQ(s.train.vicreg.mu_variance, 21.0);
  EXPECT_DOUBLE_EQ(s.train.vicreg.nu_covariance, 2.0);
  EXPECT_DOUBLE_EQ(s.train.vicreg.gamma, 0.5);
  EXPECT_EQ(s.model.backbone_name, "vit_tiny_patch16_224");
  EXPECT_EQ(s.model.image_size, 64);
  EXPECT_EQ(s.model.embed_dim, 192);  // preset resolved

  // The same three files as sections of one job file give the same config.
  auto indent = [](const std::string& text) {
    std::string out = "  ";
    for (char ch : text) {
      out += ch;
      if (ch == '\n') out += "  ";
    }
    return out;
  };
  JobConfig j = ParseJobYaml("data:\n" + indent(data) + "\ntrain:\n" + indent(train) + "\nmodel:\n" + indent(model));
  // ... except that the seed form keeps the epochs the seed evaluates (1, every 50th, the last).
  EXPECT_EQ(DiffConfigs(s, j), std::vector<std::string>{"checkpoint.keep_epochs"});
  EXPECT_EQ(s.checkpoint.keep_epochs, (std::vector<int>{1, 30}));

  // Any one file may be omitted: that section keeps its defaults.
  JobConfig only_train = LoadSeedFiles("", dir + "/t.yaml", "");
  EXPECT_EQ(only_train.train.batch_size, 64);
  EXPECT_EQ(only_train.data.dataset, "cifar10");
}

TEST(ConfigSeed, UnknownKeyInASeedFileNamesTheFile) {
  TempDir tmp_dir("seedbad");
  const std::string dir = tmp_dir.path();
  WriteText(dir + "/train_config_vicreg.yaml", "batch_size: 32\nlr: 0.01\n");
  WriteText(dir + "/model_config_vicreg.yaml", "backbone_name: vit_small_patch16_224\n");
  try {
    LoadSeedFiles("", dir + "/train_config_vicreg.yaml", dir + "/model_config_vicreg.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.source(), dir + "/train_config_vicreg.yaml") << Dump(e);
    const auto* item = FindItem(e, "train.lr");
    ASSERT_NE(item, nullptr) << Dump(e);
    EXPECT_NE(item->message.find("did you mean 'learning_rate'?"), std::string::npos) << item->message;
    EXPECT_NE(item->message.find("train_config_vicreg.yaml, line 2"), std::string::npos) << item->message;
  }
  // A model key in the train file: points to the section it belongs to.
  WriteText(dir + "/t2.yaml", "image_size: 64\n");
  try {
    LoadSeedFiles("", dir + "/t2.yaml", "");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const auto* item = FindItem(e, "train.image_size");
    ASSERT_NE(item, nullptr) << Dump(e);
    EXPECT_NE(item->message.find("'model.image_size'"), std::string::npos) << item->message;
  }
}

// Seed form: retention keeps epoch 1, every 50th and the last (what `vicreg_eval --epochs 1 50 100
// 150 200` asks for) unless checkpoint.keep_epochs is given; only epochs that get a checkpoint.
TEST(ConfigSeed, KeepsTheEpochsTheSeedEvaluates) {
  const std::string t = kConfigs + "/train_config_vicreg.yaml";
  EXPECT_EQ(LoadSeedFiles("", t, "").checkpoint.keep_epochs, (std::vector<int>{1, 50, 100, 150, 200}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"train.num_epochs=120"}).checkpoint.keep_epochs,
            (std::vector<int>{1, 50, 100, 120}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"train.num_epochs=1", "train.warmup_epochs=0"}).checkpoint.keep_epochs,
            (std::vector<int>{1}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"checkpoint.every_epochs=25"}).checkpoint.keep_epochs,
            (std::vector<int>{50, 100, 150, 200}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"checkpoint.every_epochs=0"}).checkpoint.keep_epochs, (std::vector<int>{200}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"checkpoint.keep_epochs=[]"}).checkpoint.keep_epochs, (std::vector<int>{}));
  EXPECT_EQ(LoadSeedFiles("", t, "", {"checkpoint.keep_epochs=[7]"}).checkpoint.keep_epochs, (std::vector<int>{7}));
  EXPECT_EQ(SeedKeptEpochs(260, 1), (std::vector<int>{1, 50, 100, 150, 200, 250, 260}));
  // The job form is unchanged: keep_last alone.
  EXPECT_TRUE(ParseJobYaml("train: {num_epochs: 200}\n").checkpoint.keep_epochs.empty());
}

// A MoCo/KD-era data_config: dataset_name, data_root / root, num_workers, image_size.
TEST(ConfigSeed, MocoKdDataConfigKeysAreMapped) {
  TempDir tmp_dir("mocokd");
  const std::string dir = tmp_dir.path();
  const std::string m = kConfigs + "/model_config_vicreg.yaml";  // image_size 96
  WriteText(dir + "/d1.yaml", "dataset_name: cifar100\ndata_root: /data/torchvision\nnum_workers: 6\nimage_size: 96\n");
  JobConfig c = LoadSeedFiles(dir + "/d1.yaml", "", m);
  EXPECT_EQ(c.data.dataset, "cifar100");
  EXPECT_EQ(c.data.data_dir, "/data/torchvision");
  EXPECT_EQ(c.data.num_workers, 6);
  EXPECT_EQ(c.model.image_size, 96);
  WriteText(dir + "/d2.yaml", "dataset: stl10\nroot: ./stl\n");
  c = LoadSeedFiles(dir + "/d2.yaml", "", "");
  EXPECT_EQ(c.data.dataset, "stl10");
  EXPECT_EQ(c.data.data_dir, "./stl");
  auto error_of = [&](const std::string& text, const std::string& model) -> std::string {
    WriteText(dir + "/bad.yaml", text);
    try {
      LoadSeedFiles(dir + "/bad.yaml", "", model);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  // image_size must agree with the model's input size.
  std::string e = error_of("dataset_name: cifar10\nimage_size: 224\n", m);
  EXPECT_NE(e.find("data.image_size"), std::string::npos) << e;
  EXPECT_NE(e.find("image_size 224 in " + dir + "/bad.yaml must equal model.image_size 96 (" + m + ")"),
            std::string::npos)
      << e;
  e = error_of("image_size: big\n", "");
  EXPECT_NE(e.find("image_size big"), std::string::npos) << e;
  EXPECT_NE(e.find("model.image_size 96 (the default)"), std::string::npos) << e;
  // One key per meaning.
  e = error_of("data_root: /a\ndata_dir: /b\n", "");
  EXPECT_NE(e.find("'data_root' and 'data_dir' both give data.data_dir"), std::string::npos) << e;
  e = error_of("root: /a\ndata_root: /b\n", "");
  EXPECT_NE(e.find("both give data.data_dir"), std::string::npos) << e;
  // A mapped key's bad value is still checked, and unknown keys list what the file may hold.
  e = error_of("dataset_name: imagenet\n", "");
  EXPECT_NE(e.find("data.dataset"), std::string::npos) << e;
  EXPECT_NE(e.find("imagenet"), std::string::npos) << e;
  e = error_of("dataset_name: cifar10\npin_memory: true\n", "");
  EXPECT_NE(e.find("data.pin_memory: unknown key"), std::string::npos) << e;
  EXPECT_NE(e.find("may hold dataset, data_dir, split, num_workers"), std::string::npos) << e;
  EXPECT_NE(e.find("the MoCo/KD spellings dataset_name, data_root, root, image_size"), std::string::npos) << e;
  // The job form keeps its strict data section.
  EXPECT_THROW(ParseJobYaml("data: {dataset_name: cifar10}\n"), ConfigError);
}

// train.recipe fb_lars: facebookresearch's optimization for the keys not given; explicit keys win;
// the resolved YAML reads back to the same config.
TEST(ConfigRecipe, FbLarsResolvesToFacebookresearchsValues) {
  JobConfig c = ParseJobYaml("resources: {ranks: 8}\ntrain: {recipe: fb_lars, batch_size: 256}\n");
  EXPECT_EQ(c.train.optimizer, "lars");
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 0.2 * 2048 / 256);  // 1.6
  EXPECT_DOUBLE_EQ(c.train.min_lr, 1.6 * 0.001);
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 1e-6);
  EXPECT_DOUBLE_EQ(c.train.grad_clip, 0);
  EXPECT_DOUBLE_EQ(c.train.lars_eta, 0.001);
  EXPECT_DOUBLE_EQ(c.train.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.train.warmup_epochs, 10);
  EXPECT_EQ(DiffConfigs(ParseJobYaml(ToYaml(c)), c), std::vector<std::string>{});
  // base_lr and the global batch scale it; --set overrides count as given.
  c = ParseJobYaml("train: {recipe: fb_lars, base_lr: 0.3, batch_size: 128}\n", "<job>", {"resources.ranks=4"});
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 0.3 * 512 / 256);
  c = ParseJobYaml("train: {recipe: fb_lars, weight_decay: 1e-5, learning_rate: 0.5}\n");
  EXPECT_DOUBLE_EQ(c.train.weight_decay, 1e-5);
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 0.5);
  EXPECT_DOUBLE_EQ(c.train.min_lr, 0.5 * 0.001);
  EXPECT_DOUBLE_EQ(c.train.grad_clip, 0);
  // The seed form takes it in train_config_vicreg.yaml; the shipped preset file resolves the same way.
  TempDir tmp_dir("recipe");
  WriteText(tmp_dir.path() + "/t.yaml", "batch_size: 512\nrecipe: fb_lars\n");
  EXPECT_DOUBLE_EQ(LoadSeedFiles("", tmp_dir.path() + "/t.yaml", "").train.learning_rate, 0.4);
  c = LoadJobFile(kConfigs + "/job_fb_lars.yaml");
  EXPECT_EQ(c.train.optimizer, "lars");
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 1.6);
  // Without the recipe nothing changes; unknown recipes and base_lr <= 0 are refused.
  const JobConfig defaults;  // named: GCC 12 warns (falsely) about a temporary here
  EXPECT_EQ(DiffConfigs(ParseJobYaml("train: {recipe: \"\"}\n"), defaults), std::vector<std::string>{});
  try {
    ParseJobYaml("train: {recipe: fb_sgd, base_lr: 0}\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_NE(FindItem(e, "train.recipe"), nullptr) << Dump(e);
    EXPECT_NE(FindItem(e, "train.recipe")->message.find("fb_lars"), std::string::npos) << Dump(e);
    EXPECT_NE(FindItem(e, "train.base_lr"), nullptr) << Dump(e);
  }
  try {
    ParseJobYaml("augment: {order: pil}\n");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_NE(FindItem(e, "augment.order"), nullptr) << Dump(e);
    EXPECT_NE(FindItem(e, "augment.order")->message.find("photometric_first|torchvision"), std::string::npos)
        << Dump(e);
  }
}

TEST(ConfigSeed, MissingSeedFileIsNamed) {
  try {
    LoadSeedFiles("/nonexistent/data_config.yaml", "", "");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.source(), "/nonexistent/data_config.yaml");
    ASSERT_NE(FindItem(e, "<file>"), nullptr) << Dump(e);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << Dump(e);
  }
}

// A config with a non-default value in every field.
JobConfig Unusual() {
  JobConfig c;
  c.name = "run-1.b_c";
  c.max_restarts = 7;
  c.priority = -3;
  c.resources = {4, "cuda", "nccl", 3, 33.25};
  c.data.dataset = "stl10";
  c.data.data_dir = "/data/stl10 with space/#x";
  c.data.split = "train+unlabeled";
  c.data.num_workers = 5;
  c.data.prefetch_batches = 9;
  c.data.shuffle = false;
  c.data.limit = 123456789012LL;
  c.data.augment_on_device = false;
  c.model.backbone_name = "vit_custom";
  c.model.image_size = 48;
  c.model.in_chans = 3;
  c.model.patch_size = 12;
  c.model.embed_dim = 96;
  c.model.depth = 3;
  c.model.num_heads = 4;
  c.model.mlp_ratio = 2.5;
  c.model.drop_path_rate = 0.1;
  c.model.init_from = "enc: \"quoted\".safetensors";
  c.train.batch_size = 7;
  c.train.num_epochs = 9;
  c.train.learning_rate = 1.0 / 3.0;
  c.train.min_lr = 1e-7;
  c.train.weight_decay = 0.1;
  c.train.warmup_epochs = 0.5;
  c.train.optimizer = "lars";
  c.train.betas = {0.8, 0.95};
  c.train.momentum = 0.7;
  c.train.lars_eta = 0.02;
  c.train.grad_clip = 0;
  c.train.precision = "bf16";
  c.train.seed = 18446744073709551615ULL;
  c.train.log_every = 3;
  c.train.diagnostics_every = 6;
  c.train.max_consecutive_nonfinite = 2;
  c.train.max_steps = 77;
  c.train.vicreg = {64, 32, 2, 20.5, 24, 0.5, 1.5, 1e-5, "seed"};
  c.augment.view1.crop_scale = {0.3, 0.9};
  c.augment.view1.crop_ratio = {0.5, 2.0};
  c.augment.view1.interpolation = "bilinear";
  c.augment.view1.hflip_prob = 0.25;
  c.augment.view1.jitter_prob = 0.1;
  c.augment.view1.brightness = 0.3;
  c.augment.view1.contrast = 0.35;
  c.augment.view1.saturation = 0.15;
  c.augment.view1.hue = 0.05;
  c.augment.view1.grayscale_prob = 0.3;
  c.augment.view1.blur_prob = 0.6;
  c.augment.view1.blur_sigma = {0.2, 1.5};
  c.augment.view1.blur_kernel_fraction = 0.2;
  c.augment.view1.solarize_prob = 0.05;
  c.augment.view1.solarize_threshold = 100;
  c.augment.view2.interpolation = "nearest";
  c.augment.view2.blur_prob = 0.7;
  c.augment.mean = {0.5, 0.25, 0.125};
  c.augment.std = {0.2, 0.3, 0.4};
  c.checkpoint = {3, 500, 4, {3, 6}};
  c.eval.epochs = {3, 9};
  c.eval.every_epochs = 3;
  c.eval.datasets = {{"cifar100", "/d/c100"}, {"fashion_mnist", ""}};
  c.eval.probes = {"knn"};
  c.eval.knn_k = 5;
  c.eval.knn_temperature = 0.5;
  c.eval.max_attempts = 1;
  c.eval.limit_train = 1000;
  c.eval.limit_test = 200;
  c.eval.online_linear = true;
  c.eval.online_knn_every_epochs = 2;
  c.eval.online_knn_subset = 300;
  c.metrics = {false, "0.0.0.0", 9400};
  return c;
}

TEST(ConfigRoundTrip, ToYamlParsesBackToAnEqualConfig) {
  JobConfig c = Unusual();
  ASSERT_EQ(Validate(c).size(), 0u) << Validate(c)[0].field << ": " << Validate(c)[0].message;
  // Nearly every leaf differs from the defaults, so the round trip exercises each key type.
  const JobConfig defaults;
  EXPECT_GT(DiffConfigs(c, defaults).size(), 80u);
  std::string yaml = ToYaml(c);
  JobConfig back = ParseJobYaml(yaml, "<roundtrip>");
  EXPECT_EQ(DiffConfigs(c, back), std::vector<std::string>{}) << yaml;
  EXPECT_EQ(ToYaml(back), yaml);
  // Exact doubles survive.
  EXPECT_EQ(back.train.learning_rate, 1.0 / 3.0);
  EXPECT_EQ(back.train.seed, 18446744073709551615ULL);
  EXPECT_EQ(back.model.init_from, "enc: \"quoted\".safetensors");
  // The defaults too.
  JobConfig d;
  EXPECT_EQ(DiffConfigs(d, ParseJobYaml(ToYaml(d))), std::vector<std::string>{});
}

TEST(ConfigRoundTrip, DiffConfigsSeesEachChange) {
  JobConfig a, b;
  b.augment.view2.hue = 0.2;
  b.eval.datasets = {{"cifar10", "x"}};
  EXPECT_EQ(DiffConfigs(a, b), (std::vector<std::string>{"augment.view2.hue", "eval.datasets"}));
}

TEST(ConfigSchema, OperationalKeysComeFromTheSchemaTable) {
  // Operational: how a run is executed, logged, stored or evaluated (may differ on resume).
  for (const char* k : {"name", "priority", "max_restarts", "resources", "resources.ranks", "resources.device",
                        "metrics.port", "checkpoint.keep_last", "eval", "eval.knn_k", "eval.datasets",
                        "eval.datasets[0].name", "data.num_workers", "data.prefetch_batches", "data.augment_on_device",
                        "train.max_steps", "train.log_every", "train.diagnostics_every", "train.batch_size"})
    EXPECT_TRUE(IsOperational(k)) << k;
  // What is learned.
  for (const char* k : {"data", "data.dataset", "data.limit", "data.shuffle", "model.embed_dim", "train",
                        "train.learning_rate", "train.seed", "train.vicreg.gamma", "augment.view1.hue",
                        "train.max_consecutive_nonfinite", "names", "resourcesx", "train.batch_size_x"})
    EXPECT_FALSE(IsOperational(k)) << k;
  // Every key path is one or the other, and both kinds exist among the leaves that DiffConfigs reports.
  JobConfig a, b;
  b.data.num_workers = 7;
  b.train.learning_rate = 0.5;
  auto diff = DiffConfigs(a, b);
  ASSERT_EQ(diff, (std::vector<std::string>{"data.num_workers", "train.learning_rate"}));
  EXPECT_TRUE(IsOperational(diff[0]));
  EXPECT_FALSE(IsOperational(diff[1]));
}

TEST(ConfigOverrides, AppliedBeforeValidation) {
  JobConfig c = ParseJobYaml("train:\n  learning_rate: 0.01\n", "<job>",
                             {"train.learning_rate=5e-4", "augment.view2.blur_prob=0.5", "eval.epochs=[1, 2]",
                              "resources.device=cuda", "train.vicreg.gamma=2", "model.init_from=", "name=from-cli"});
  EXPECT_DOUBLE_EQ(c.train.learning_rate, 5e-4);
  EXPECT_DOUBLE_EQ(c.augment.view2.blur_prob, 0.5);
  EXPECT_EQ(c.eval.epochs, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.resources.device, "cuda");
  EXPECT_DOUBLE_EQ(c.train.vicreg.gamma, 2.0);
  EXPECT_EQ(c.name, "from-cli");
  // The seed form takes job-file paths (the seed's --device is resources.device).
  JobConfig s =
      LoadSeedFiles("", kConfigs + "/train_config_vicreg.yaml", "", {"resources.device=cuda", "train.batch_size=16"});
  EXPECT_EQ(s.resources.device, "cuda");
  EXPECT_EQ(s.train.batch_size, 16);
}

TEST(ConfigOverrides, BadOverridesAreErrors) {
  try {
    ParseJobYaml("name: x\n", "<job>", {"train.lr=1"});
    FAIL();
  } catch (const ConfigError& e) {
    const auto* item = FindItem(e, "train.lr");
    ASSERT_NE(item, nullptr) << Dump(e);
    EXPECT_NE(item->message.find("did you mean 'learning_rate'?"), std::string::npos) << item->message;
    EXPECT_NE(item->message.find("from --set train.lr=1"), std::string::npos) << item->message;
  }
  try {
    ParseJobYaml("name: x\n", "<job>", {"train.batch_size=-4"});
    FAIL();
  } catch (const ConfigError& e) {
    const auto* item = FindItem(e, "train.batch_size");
    ASSERT_NE(item, nullptr) << Dump(e);
    EXPECT_NE(item->message.find("got -4"), std::string::npos) << item->message;
  }
  try {
    ParseJobYaml("name: x\n", "<job>", {"no_equals_sign"});
    FAIL();
  } catch (const ConfigError& e) {
    ASSERT_NE(FindItem(e, "--set"), nullptr) << Dump(e);
  }
  try {
    ParseJobYaml("name: x\n", "<job>", {"name.sub=1"});
    FAIL();
  } catch (const ConfigError& e) {
    const auto* item = FindItem(e, "name.sub");
    ASSERT_NE(item, nullptr) << Dump(e);
    EXPECT_NE(item->message.find("name is not a section"), std::string::npos) << item->message;
  }
}

TEST(ConfigPresets, ResolveAndConflicts) {
  ModelConfig m;
  m.backbone_name = "vit_tiny_patch16_224";
  ModelConfig r = ResolveModel(m);
  EXPECT_EQ(r.patch_size, 16);
  EXPECT_EQ(r.embed_dim, 192);
  EXPECT_EQ(r.depth, 12);
  EXPECT_EQ(r.num_heads, 3);
  m.backbone_name = "vit_base_patch16_224";
  r = ResolveModel(m);
  EXPECT_EQ(r.embed_dim, 768);
  EXPECT_EQ(r.num_heads, 12);
  m.backbone_name = "vit_small_patch16_224";
  r = ResolveModel(m);
  EXPECT_EQ(r.embed_dim, 384);
  EXPECT_EQ(r.num_heads, 6);

  // Loader: the preset wins over defaults, agrees with equal explicit values, refuses others.
  JobConfig t = ParseJobYaml("model:\n  backbone_name: vit_tiny_patch16_224\n  image_size: 32\n");
  EXPECT_EQ(t.model.embed_dim, 192);
  EXPECT_EQ(t.model.num_heads, 3);
  EXPECT_NE(ToYaml(t).find("embed_dim: 192"), std::string::npos);
  // ToYaml resolves an unresolved struct too, so its output always parses back.
  JobConfig raw;
  raw.model.backbone_name = "vit_base_patch16_224";  // embed_dim still the struct default 384
  JobConfig raw_back = ParseJobYaml(ToYaml(raw));
  EXPECT_EQ(raw_back.model.embed_dim, 768);
  EXPECT_EQ(raw_back.model.num_heads, 12);
  EXPECT_NO_THROW(ParseJobYaml("model: {backbone_name: vit_base_patch16_224, embed_dim: 768, patch_size: 16}"));
  try {
    ParseJobYaml("model: {backbone_name: vit_small_patch16_224, embed_dim: 256, depth: 4}");
    FAIL();
  } catch (const ConfigError& e) {
    ASSERT_NE(FindItem(e, "model.embed_dim"), nullptr) << Dump(e);
    ASSERT_NE(FindItem(e, "model.depth"), nullptr) << Dump(e);
    EXPECT_NE(FindItem(e, "model.embed_dim")->message.find("vit_custom"), std::string::npos);
  }
  JobConfig custom = ParseJobYaml(
      "model: {backbone_name: vit_custom, image_size: 32, patch_size: 8, embed_dim: 64, depth: 2, num_heads: 2}");
  EXPECT_EQ(custom.model.patch_size, 8);
  EXPECT_EQ(custom.model.embed_dim, 64);
  EXPECT_EQ(custom.model.depth, 2);
  EXPECT_EQ(custom.model.num_heads, 2);
}

TEST(ConfigClosestMatch, Suggestions) {
  const std::vector<std::string> train = {"training_mode", "batch_size",   "num_epochs",    "learning_rate",
                                          "min_lr",        "weight_decay", "warmup_epochs", "optimizer",
                                          "seed",          "log_every",    "vicreg"};
  EXPECT_EQ(ClosestMatch("lr", train), "learning_rate");
  EXPECT_EQ(ClosestMatch("wd", train), "weight_decay");
  EXPECT_EQ(ClosestMatch("bs", train), "batch_size");
  EXPECT_EQ(ClosestMatch("epochs", train), "num_epochs");
  EXPECT_EQ(ClosestMatch("learning_rte", train), "learning_rate");
  EXPECT_EQ(ClosestMatch("Batch-Size", train), "batch_size");
  EXPECT_EQ(ClosestMatch("--warmup", train), "warmup_epochs");
  EXPECT_EQ(ClosestMatch("vicerg", train), "vicreg");
  EXPECT_EQ(ClosestMatch("xyzzy", train), "");
  EXPECT_EQ(ClosestMatch("", train), "");
  EXPECT_EQ(ClosestMatch("gpu", {"cpu", "cuda"}), "cuda");
}

TEST(ConfigFiles, EveryFileInConfigsValidates) {
  DIR* dir = opendir(kConfigs.c_str());
  ASSERT_NE(dir, nullptr) << kConfigs;
  std::vector<std::string> names;
  while (dirent* ent = readdir(dir)) {
    std::string n = ent->d_name;
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".yaml") == 0) names.push_back(n);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  for (const char* required : {"data_config.yaml", "train_config_vicreg.yaml", "model_config_vicreg.yaml",
                               "job_vit_small_cifar10.yaml", "tiny_cpu.yaml"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << required;
  }
  for (const std::string& n : names) {
    std::string path = kConfigs + "/" + n;
    SCOPED_TRACE(path);
    try {
      if (n.rfind("data_config", 0) == 0) {
        LoadSeedFiles(path, "", "");
      } else if (n.rfind("train_config", 0) == 0) {
        LoadSeedFiles("", path, "");
      } else if (n.rfind("model_config", 0) == 0) {
        LoadSeedFiles("", "", path);
      } else {
        JobConfig c = LoadJobFile(path);
        // The resolved config of every shipped job round-trips too.
        EXPECT_EQ(DiffConfigs(c, ParseJobYaml(ToYaml(c))), std::vector<std::string>{});
      }
    } catch (const ConfigError& e) {
      ADD_FAILURE() << e.what();
    }
  }
  JobConfig tiny = LoadJobFile(kConfigs + "/tiny_cpu.yaml");
  EXPECT_EQ(tiny.data.dataset, "fashion_mnist");
  EXPECT_EQ(tiny.data.limit, 512);
  EXPECT_EQ(tiny.model.embed_dim, 64);
  EXPECT_EQ(tiny.train.vicreg.proj_dim, 128);
  EXPECT_EQ(tiny.train.num_epochs, 2);
  EXPECT_EQ(tiny.resources.device, "cpu");
  // The full example spells out every key: nothing in it is left to a default it doesn't show.
  std::string full = testing_util::ReadText(kConfigs + "/job_vit_small_cifar10.yaml");
  for (const std::string& path : AllKeyPaths()) {
    std::string key = path.substr(path.rfind('.') == std::string::npos ? 0 : path.rfind('.') + 1);
    EXPECT_NE(full.find(key + ":"), std::string::npos) << "job_vit_small_cifar10.yaml lacks " << path;
  }
}

}  // namespace
}  // namespace vicreg::config
