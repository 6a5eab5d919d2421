// Regression tests for the size bounds of issue 17's review on common/: YAML aliases cannot
// expand a small job file into a huge one (nor into huge error texts), did-you-mean costs
// nothing for huge keys, fs::ReadFile refuses devices (model.init_from: /dev/zero), and
// safetensors shapes whose byte count wraps around 2^64 are refused.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"
#include "common/fs.h"
#include "common/safetensors.h"
#include "tests/common/test_util.h"

namespace vicreg {
namespace {

using Clock = std::chrono::steady_clock;

// Total size of every item's field + message.
size_t ErrorBytes(const ConfigError& e) {
  size_t n = 0;
  for (const auto& item : e.items()) n += item.field.size() + item.message.size();
  return n;
}

ConfigError ParseError(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    config::ParseJobYaml(yaml, "job.yaml", overrides);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << yaml.substr(0, 200);
  return ConfigError("none", {});
}

TEST(ConfigLimits, AliasAmplificationIsRefused) {
  // 50 KB of text that would resolve to 1000 copies of a 50 KB string (50 MB) in memory and in
  // the error messages ("must be one of linear|knn, got ...").
  std::string yaml = "name: amp\neval:\n  probes: [&p \"" + std::string(50000, 'x') + "\"";
  for (int i = 0; i < 1000; ++i) yaml += ", *p";
  yaml += "]\n";
  auto t0 = Clock::now();
  ConfigError e = ParseError(yaml);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  ASSERT_FALSE(e.items().empty());
  EXPECT_EQ(e.items()[0].field, "<document>");
  EXPECT_NE(e.items()[0].message.find("aliases"), std::string::npos) << e.items()[0].message;
  EXPECT_LT(ErrorBytes(e), 4096u);
}

TEST(ConfigLimits, NestedAliasBombIsRefusedQuickly) {
  // Nine levels of ten aliases each: 10^9 leaves.
  std::string yaml = "name: bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) yaml += (k ? ", *a" : "*a") + std::to_string(i - 1);
    yaml += "]\n";
  }
  auto t0 = Clock::now();
  ConfigError e = ParseError(yaml);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  EXPECT_NE(std::string(e.what()).find("aliases"), std::string::npos) << e.what();
}

TEST(ConfigLimits, SmallAliasesStillWork) {
  auto cfg = config::ParseJobYaml(
      "name: &n ok\ntrain: {batch_size: &b 16}\neval: {probes: &p [knn], datasets: []}\n"
      "resources: {ranks: 1}\n",
      "job.yaml");
  EXPECT_EQ(cfg.name, "ok");
  EXPECT_EQ(cfg.train.batch_size, 16);
}

TEST(ConfigLimits, HugeValuesAndKeysGiveShortMessagesFast) {
  const std::string big(1 << 20, 'q');
  auto t0 = Clock::now();
  // An unknown 1 MB key (did-you-mean over every valid key), a 1 MB enum value, a 1 MB number.
  // (An explicit key "? K" because YAML limits implicit keys to 1024 characters.)
  ConfigError e = ParseError("name: x\n? " + big + "\n: 1\nresources: {device: \"" + big +
                             "\"}\ntrain: {batch_size: 1" + std::string(1 << 20, '0') + "}\n");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  EXPECT_GE(e.items().size(), 3u) << e.what();
  for (const auto& item : e.items()) {
    EXPECT_LE(item.field.size(), 200u);
    EXPECT_LE(item.message.size(), 700u) << item.field;
  }
  EXPECT_EQ(config::ClosestMatch(big, {"batch_size", "qqqq"}), "");
  EXPECT_EQ(config::ClosestMatch("batch_sise", {"batch_size"}), "batch_size");  // unchanged for short keys
}

TEST(FsReadFile, RefusesDevicesInsteadOfReadingForever) {
  // Before the fix this read /dev/zero until bad_alloc: run it in a child with a deadline.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);
    try {
      fs::ReadFile("/dev/zero");
    } catch (const UserError& e) {
      _exit(std::strstr(e.what(), "/dev/zero") && std::strstr(e.what(), "not a regular file") ? 0 : 2);
    } catch (...) {
      _exit(3);
    }
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // Regular files (and size-0 /proc files) still read whole.
  testing_util::TempDir dir("fsread");
  testing_util::WriteText(dir.path() + "/f", "hello");
  EXPECT_EQ(fs::ReadFile(dir.path() + "/f"), "hello");
  EXPECT_NE(fs::ReadFile("/proc/self/status").find("Pid:"), std::string::npos);
}

std::string SafetensorsBytes(const std::string& header_json, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = header_json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header_json + std::string(data_bytes, '\0');
}

TEST(SafetensorsLimits, ByteCountThatWrapsAroundIsRefused) {
  // 2^61 F64 elements = 2^64 bytes, which wraps to 0 and matched data_offsets [0, 0].
  const std::string bytes =
      SafetensorsBytes(R"({"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0);
  try {
    safetensors::ParseHeader(bytes, "wrap.safetensors");
    FAIL() << "accepted a tensor of 2^64 bytes stored in 0 bytes";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("overflows"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsLimits, ErrorsNeverQuoteTheFilesBytes) {
  // Any file can be named as a dataset or init_from: its content must not reach error texts.
  const std::string secret = "SECRET-KEY-abcdefgh-0123456789";
  std::vector<std::string> files = {
      secret + secret,                                          // length field from the secret
      SafetensorsBytes("{\"" + secret + "\": tru", 0),          // invalid JSON after the secret
      SafetensorsBytes("{\"a\": 1, \"b\": " + secret + "}", 0)  // invalid JSON at the secret
  };
  for (const auto& f : files) {
    try {
      safetensors::ParseHeader(f, "any.file");
      ADD_FAILURE() << "accepted";
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find("SECRET"), std::string::npos) << what;
      EXPECT_EQ(what.find("KEY"), std::string::npos) << what;
      uint64_t n = 0;
      std::memcpy(&n, f.data(), 8);
      EXPECT_EQ(what.find(std::to_string(n)), std::string::npos) << what;
    }
  }
}

// Found by fuzz_config_yaml in CI: a data_dir with a control character and bytes that are not
// UTF-8 was accepted, and the resolved job.yaml written from it read back as a different path.
// Text values are now refused naming the field, the byte and its offset.
TEST(ConfigText, ControlCharactersAndInvalidUtf8AreRefusedNamingTheField) {
  const std::string head = "name: t\ndata:\n  dataset: fashion_mnist\n  data_dir: \"/data/";
  struct Case {
    std::string bytes, expect;
  } cases[] = {
      {"\\x02", "control character 0x02 at byte 6"},
      {"\xff\xff", "byte 0xFF, which is not part of well-formed UTF-8"},
      {"\xc0\xaf", "byte 0xC0"},              // overlong '/'
      {"\xed\xa0\x80", "byte 0xED"},          // UTF-16 surrogate
      {"\\x7f", "control character 0x7F"},
      {"\\u0085", "control character U+0085"},  // NEL
  };
  for (const auto& c : cases) {
    ConfigError e = ParseError(head + c.bytes + "x\"\n");
    ASSERT_EQ(e.items().size(), 1u) << e.what();
    EXPECT_EQ(e.items()[0].field, "data.data_dir");
    EXPECT_NE(e.items()[0].message.find(c.expect), std::string::npos) << e.items()[0].message;
    EXPECT_NE(e.items()[0].message.find("printable UTF-8"), std::string::npos);
  }
  // The same through a --set override.
  ConfigError e = ParseError("name: t\ndata:\n  dataset: fashion_mnist\n", {"data.data_dir=/a\x01" "b"});
  ASSERT_EQ(e.items().size(), 1u) << e.what();
  EXPECT_EQ(e.items()[0].field, "data.data_dir");
  // Printable UTF-8 (accents, CJK, emoji) and tabs stay accepted.
  config::JobConfig cfg = config::ParseJobYaml(
      "name: t\ndata:\n  dataset: fashion_mnist\n  data_dir: \"/caf\xc3\xa9 \xe6\x95\xb0\xe6\x8d\xae \xf0\x9f\x98\x80\tx\"\n",
      "job.yaml");
  EXPECT_EQ(cfg.data.data_dir, "/caf\xc3\xa9 \xe6\x95\xb0\xe6\x8d\xae \xf0\x9f\x98\x80\tx");
}

}  // namespace
}  // namespace vicreg
