// Static checks of what cannot run on a CI machine without Docker, Kubernetes, a Slurm cluster or
// systemd as PID 1: the deployment kit parses and follows the project's conventions, the README's
// commands exist, its job-file reference lists every key with its true default, and the quickstart
// script and job are valid for every time budget. tests/deploy/check_deploy.py does the file checks;
// every check is also shown to fail on a file that breaks its rule.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/config_loader.h"
#include "common/errors.h"

namespace {

const std::string kSrc = VICREG_SOURCE_DIR;
const std::string kBin = VICREG_BINARY_DIR;
const std::string kChecker = kSrc + "/tests/deploy/check_deploy.py";

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Result {
  int code = -1;
  std::string out;
};

// Runs a command line (test-controlled strings only) and captures stdout+stderr.
Result Sh(const std::string& cmd) {
  Result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

bool Have(const std::string& tool) { return Sh("command -v " + tool).code == 0; }
std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class TempDir {
 public:
  TempDir() {
    std::string t = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + std::string("/vicreg-deploy-XXXXXX");
    path_ = ::mkdtemp(t.data()) ? t : "";
  }
  ~TempDir() {
    if (!path_.empty() && !::testing::Test::HasFailure()) Sh("rm -rf " + Quote(path_));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Result Check(const std::string& args) { return Sh("/usr/bin/python3 " + Quote(kChecker) + " " + args); }

// ---- Dockerfiles --------------------------------------------------------------------------

TEST(DeployDocker, DockerfilesFollowTheConventions) {
  for (const std::string name : {"cpu", "coordinator", "worker-cuda"}) {
    std::string args = "dockerfile " + Quote(kSrc + "/docker/Dockerfile." + name) + " --context " + Quote(kSrc);
    if (name == "coordinator" || name == "cpu") args += " --require-healthcheck";
    Result r = Check(args);
    EXPECT_EQ(r.code, 0) << "Dockerfile." << name << ":\n" << r.out;
  }
  Result r = Check("dockerignore " + Quote(kSrc + "/.dockerignore"));
  EXPECT_EQ(r.code, 0) << r.out;
}

// The CUDA image builds on the LibTorch / CUDA / NCCL line that the GPU kit last ran on
// (tests/gpu/LIBTORCH_TESTED), and the check fails when either side moves alone.
TEST(DeployDocker, CudaImageUsesTheLibTorchTheGpuKitTested) {
  const std::string dockerfile = kSrc + "/docker/Dockerfile.worker-cuda", pin = kSrc + "/tests/gpu/LIBTORCH_TESTED";
  Result r = Check("libtorch-pin " + Quote(dockerfile) + " " + Quote(pin));
  EXPECT_EQ(r.code, 0) << r.out;
  TempDir tmp;
  WriteFile(tmp.path() + "/pin", "# another line\ntorch 2.9.1+cu128\nnccl 2.27.5\n");
  r = Check("libtorch-pin " + Quote(dockerfile) + " " + Quote(tmp.path() + "/pin"));
  EXPECT_EQ(r.code, 1) << r.out;
  for (const char* arg : {"LIBTORCH_VERSION", "LIBTORCH_CUDA", "CUDA_VERSION", "NCCL_VERSION"})
    EXPECT_NE(r.out.find(std::string("ARG ") + arg), std::string::npos) << arg << ":\n" << r.out;
  WriteFile(tmp.path() + "/pin", "torch 2.11.0\n");  // no CUDA tag
  r = Check("libtorch-pin " + Quote(dockerfile) + " " + Quote(tmp.path() + "/pin"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("torch X.Y.Z+cuNNN"), std::string::npos) << r.out;
}

TEST(DeployDocker, CheckerRejectsEachViolation) {
  TempDir tmp;
  struct Case {
    const char* what;
    std::string text;
    std::string expect;
  };
  const std::string good_tail =
      "FROM debian:12.8-slim\nCOPY --from=build /o /o\nUSER app\nHEALTHCHECK CMD true\nCMD [\"x\"]\n";
  const std::vector<Case> cases = {
      {"latest", "FROM debian:latest AS build\nRUN true\n" + good_tail, "':latest' is not pinned"},
      {"untagged", "FROM debian AS build\nRUN true\n" + good_tail, "no tag"},
      {"single stage", "FROM debian:12.8-slim\nUSER app\nHEALTHCHECK CMD true\nCMD [\"x\"]\n", "single-stage"},
      {"no user", "FROM debian:12.8-slim AS build\nFROM debian:12.8-slim\nHEALTHCHECK CMD true\nCMD [\"x\"]\n",
       "never sets USER"},
      {"root user",
       "FROM debian:12.8-slim AS build\nFROM debian:12.8-slim\nUSER root\nHEALTHCHECK CMD true\nCMD [\"x\"]\n",
       "runs as root"},
      {"no healthcheck", "FROM debian:12.8-slim AS build\nFROM debian:12.8-slim\nUSER app\nCMD [\"x\"]\n",
       "no HEALTHCHECK"},
      {"unknown stage",
       "FROM debian:12.8-slim AS build\nFROM debian:12.8-slim\nCOPY --from=bild /a /a\nUSER app\n"
       "HEALTHCHECK CMD true\nCMD [\"x\"]\n",
       "no earlier stage"},
      {"missing source", "FROM debian:12.8-slim AS build\nCOPY no/such/file /x\n" + good_tail, "does not exist"},
      {"apt recommends",
       "FROM debian:12.8-slim AS build\nRUN apt-get update && apt-get install -y curl && rm -rf "
       "/var/lib/apt/lists/*\n" +
           good_tail,
       "--no-install-recommends"},
      {"unchecked download",
       "FROM debian:12.8-slim AS build\nRUN curl -fsSL -o /x.zip https://example.org/x.zip\n" + good_tail,
       "without a checksum"},
      {"bad instruction", "FROM debian:12.8-slim AS build\nRUNN true\n" + good_tail, "unknown or non-uppercase"},
      {"no revision", "FROM debian:12.8-slim AS build\nRUN cmake -S . -B /b\n" + good_tail,
       "without -DVICREG_GIT_REVISION"},
      {"revision without ARG",
       "FROM debian:12.8-slim AS build\nRUN cmake -S . -B /b -DVICREG_GIT_REVISION=${VICREG_GIT_REVISION}\n" +
           good_tail,
       "without ARG VICREG_GIT_REVISION"},
  };
  for (const auto& c : cases) {
    std::string f = tmp.path() + "/Dockerfile";
    WriteFile(f, c.text);
    Result r = Check("dockerfile " + Quote(f) + " --context " + Quote(tmp.path()) + " --require-healthcheck");
    EXPECT_EQ(r.code, 1) << c.what << ":\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.what << ": expected '" << c.expect << "' in\n" << r.out;
  }
  WriteFile(tmp.path() + "/Dockerfile", "FROM debian:12.8-slim AS build\n" + good_tail);
  Result ok = Check("dockerfile " + Quote(tmp.path() + "/Dockerfile") + " --require-healthcheck");
  EXPECT_EQ(ok.code, 0) << ok.out;
}

// A real Dockerfile linter from the npm registry (dockerfile-utils), installed into the build tree
// once; skipped where npm or the registry is unavailable.
TEST(DeployDocker, DockerfileUtilsLint) {
  if (!Have("npm")) GTEST_SKIP() << "npm is not installed: the dockerfile-utils lint is skipped";
  const std::string prefix = kBin + "/tests/deploy/npm";
  const std::string lint = prefix + "/node_modules/.bin/dockerfile-utils";
  if (::access(lint.c_str(), X_OK) != 0) {
    Result inst = Sh("timeout 180 npm install --no-save --no-audit --no-fund --loglevel=error --prefix " +
                     Quote(prefix) + " dockerfile-utils@0.16.3");
    if (inst.code != 0 || ::access(lint.c_str(), X_OK) != 0)
      GTEST_SKIP() << "npm install dockerfile-utils@0.16.3 failed (no registry?): the lint is skipped\n" << inst.out;
  }
  for (const std::string name : {"cpu", "coordinator", "worker-cuda"}) {
    Result r = Sh(Quote(lint) + " lint " + Quote(kSrc + "/docker/Dockerfile." + name));
    EXPECT_EQ(r.code, 0) << "dockerfile-utils lint Dockerfile." << name << ":\n" << r.out;
  }
  TempDir tmp;
  WriteFile(tmp.path() + "/Dockerfile", "FROM debian:12.8-slim\nEXPOSE notaport\nHEALTHCHECK CMD\n");
  Result bad = Sh(Quote(lint) + " lint " + Quote(tmp.path() + "/Dockerfile"));
  EXPECT_NE(bad.code, 0) << bad.out;
}

// ---- Kubernetes, Slurm, systemd -------------------------------------------------------------

TEST(DeployKubernetes, ManifestsParseAndFollowTheConventions) {
  Result r = Check("k8s " + Quote(kSrc + "/deploy/k8s"));
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(DeployKubernetes, CheckerRejectsRootPodsAndMissingGpus) {
  TempDir tmp;
  Sh("cp " + Quote(kSrc) + "/deploy/k8s/*.yaml " + Quote(tmp.path()));
  std::string job = ReadFile(tmp.path() + "/mpijob-train.yaml");
  std::string coord = ReadFile(tmp.path() + "/coordinator.yaml");
  ASSERT_NE(job.find("nvidia.com/gpu: 4}"), std::string::npos);
  WriteFile(
      tmp.path() + "/mpijob-train.yaml",
      std::regex_replace(
          std::regex_replace(job, std::regex("limits: \\{memory: 200Gi, nvidia.com/gpu: 4\\}"), "limits: {memory: 200Gi}"),
          std::regex("prometheus.io/port: \"9464\""), "prometheus.io/port: \"9999\""));
  WriteFile(tmp.path() + "/coordinator.yaml",
            std::regex_replace(coord, std::regex("runAsNonRoot: true"), "runAsNonRoot: false"));
  Result r = Check("k8s " + Quote(tmp.path()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no nvidia.com/gpu limit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("runAsNonRoot is not true"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prometheus.io/port 9999 != metrics.port 9464"), std::string::npos) << r.out;
  WriteFile(tmp.path() + "/coordinator.yaml", coord + "\n  bad: [unclosed\n");
  r = Check("k8s " + Quote(tmp.path()));
  EXPECT_NE(r.out.find("YAML does not parse"), std::string::npos) << r.out;
}

TEST(DeploySlurm, SbatchTemplateAndLauncherConfig) {
  Result r = Check("slurm " + Quote(kSrc + "/deploy/slurm"));
  EXPECT_EQ(r.code, 0) << r.out;
  TempDir tmp;
  std::string sb = ReadFile(kSrc + "/deploy/slurm/vicreg-train.sbatch");
  WriteFile(tmp.path() + "/broken.sbatch",
            std::regex_replace(sb, std::regex("--mpi=pmix"), "--mpi=pmi2") + "\nif then\n");
  r = Check("slurm " + Quote(tmp.path()));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("bash -n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("srun --mpi=pmix"), std::string::npos) << r.out;
}

TEST(DeploySystemd, UnitVerifiesAndIsHardened) {
  const std::string exe_dir = kBin + "/server";
  if (::access((exe_dir + "/vicreg_coordinator").c_str(), X_OK) != 0)
    GTEST_SKIP() << "vicreg_coordinator is not built (VICREG_BUILD_SERVER=OFF)";
  if (!Have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  Result r =
      Check("systemd " + Quote(kSrc + "/deploy/systemd/vicreg-coordinator.service") + " --exec " + Quote(exe_dir));
  EXPECT_EQ(r.code, 0) << r.out;
  TempDir tmp;
  std::string unit = ReadFile(kSrc + "/deploy/systemd/vicreg-coordinator.service");
  WriteFile(tmp.path() + "/vicreg-coordinator.service",
            std::regex_replace(std::regex_replace(unit, std::regex("ProtectSystem=strict"), "ProtectSystm=strict"),
                               std::regex("NoNewPrivileges=yes"), "NoNewPrivileges=maybe"));
  r = Check("systemd " + Quote(tmp.path() + "/vicreg-coordinator.service") + " --exec " + Quote(exe_dir));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("ProtectSystm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing hardening option ProtectSystem=strict"), std::string::npos) << r.out;
}

// The coordinator YAMLs shipped in docker/ and deploy/ are loaded by the real coordinator (unknown
// keys and bad values exit 2). Paths that only exist on a deployment host are overridden by flags.
TEST(DeployCoordinatorConfigs, TheRealCoordinatorAcceptsThem) {
  const std::string coord = kBin + "/server/vicreg_coordinator";
  if (::access(coord.c_str(), X_OK) != 0) GTEST_SKIP() << "vicreg_coordinator is not built (VICREG_BUILD_SERVER=OFF)";
  TempDir tmp;
  // The ConfigMap's coordinator.yaml, extracted with a YAML parser.
  Result cm =
      Sh("/usr/bin/python3 -c \"import yaml,sys; d=[x for x in yaml.safe_load_all(open(sys.argv[1])) if x and "
         "x['kind']=='ConfigMap'][0]; open(sys.argv[2],'w').write(d['data']['coordinator.yaml'])\" " +
         Quote(kSrc + "/deploy/k8s/coordinator.yaml") + " " + Quote(tmp.path() + "/k8s.yaml"));
  ASSERT_EQ(cm.code, 0) << cm.out;
  WriteFile(tmp.path() + "/token", "0123456789abcdef\n");
  ::chmod((tmp.path() + "/token").c_str(), 0600);
  // The k8s config names the TLS Secret's files (TLS is required off loopback): a test pair.
  Result cert = Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
                   Quote(tmp.path() + "/tls.key") + " -out " + Quote(tmp.path() + "/tls.crt") + " 2>&1");
  ASSERT_EQ(cert.code, 0) << cert.out;
  const std::vector<std::string> configs = {kSrc + "/docker/coordinator.yaml",
                                            kSrc + "/deploy/systemd/coordinator.yaml",
                                            kSrc + "/deploy/slurm/coordinator-slurm.yaml", tmp.path() + "/k8s.yaml"};
  int n = 0;
  for (const auto& cfg : configs) {
    const std::string state = tmp.path() + "/state" + std::to_string(n++);
    const std::string cmd = Quote(coord) + " --config " + Quote(cfg) + " --state-dir " + Quote(state) + " --workdir " +
                            Quote(tmp.path()) + " --listen 127.0.0.1:0 --metrics-port off" + " --token-file " +
                            Quote(tmp.path() + "/token") + " --tls-cert " + Quote(tmp.path() + "/tls.crt") +
                            " --tls-key " + Quote(tmp.path() + "/tls.key") + " --launcher none" + " --worker-binary " +
                            Quote(kBin + "/worker/vicreg_worker") + " --shim-binary " +
                            Quote(kBin + "/server/vicreg_job_shim") + " --eval-binary off --log-level warn";
    // Start it in the background, wait for coordinator.json, stop it with SIGTERM (exit 0).
    Result r =
        Sh("( " + cmd + " & pid=$!; for i in $(seq 1 100); do [ -s " + Quote(state + "/coordinator.json") +
           " ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -TERM $pid 2>/dev/null; wait $pid )");
    EXPECT_EQ(r.code, 0) << cfg << " was refused:\n" << r.out;
    EXPECT_EQ(::access((state + "/coordinator.json").c_str(), R_OK), 0) << cfg << ": never served\n" << r.out;
  }
  // And the same start with a misspelled key is refused with exit 2 and the key named.
  WriteFile(tmp.path() + "/typo.yaml", ReadFile(kSrc + "/docker/coordinator.yaml") + "slot: 2\n");
  Result bad = Sh(Quote(coord) + " --config " + Quote(tmp.path() + "/typo.yaml") + " --state-dir " +
                  Quote(tmp.path() + "/typo") + " --listen 127.0.0.1:0 --metrics-port off --launcher none");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("slot"), std::string::npos) << bad.out;
}

// ---- README -------------------------------------------------------------------------------

TEST(DeployReadme, TheTwoCommandsExistAndAreExecutable) {
  const std::string readme = ReadFile(kSrc + "/README.md");
  for (const std::string cmd : {"deploy/quickstart.sh", "tests/run.sh"}) {
    EXPECT_NE(readme.find("\n" + cmd + " "), std::string::npos) << "README's command block lacks " << cmd;
    EXPECT_EQ(::access((kSrc + "/" + cmd).c_str(), X_OK), 0) << cmd << " is missing or not executable";
    Result r = Sh("bash -n " + Quote(kSrc + "/" + cmd));
    EXPECT_EQ(r.code, 0) << r.out;
  }
  EXPECT_EQ(::access((kSrc + "/deploy/install-deps.sh").c_str(), X_OK), 0);
  // Every file the README points at exists.
  std::regex link(R"(\]\(((?:docs|configs|deploy|docker|tests)/[^)#\s]+)\))");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), link); it != std::sregex_iterator(); ++it)
    EXPECT_EQ(::access((kSrc + "/" + (*it)[1].str()).c_str(), R_OK), 0) << "README links to missing " << (*it)[1];
}

// A value cell of the reference table ("`[0.2, 1]`", "`bicubic`", "`\"\"`") as YAML.
YAML::Node CellValue(std::string cell) {
  cell = std::regex_replace(cell, std::regex("^\\s+|\\s+$"), "");
  if (cell.size() >= 2 && cell.front() == '`' && cell.back() == '`') cell = cell.substr(1, cell.size() - 2);
  return YAML::Load(cell);
}

// Equal as YAML values: numbers numerically, strings and sequences element-wise.
bool SameValue(const YAML::Node& a, const YAML::Node& b) {
  if (a.IsSequence() || b.IsSequence()) {
    if (!a.IsSequence() || !b.IsSequence() || a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!SameValue(a[i], b[i])) return false;
    return true;
  }
  if (!a.IsScalar() || !b.IsScalar()) return a.IsNull() && b.IsNull();
  try {
    return std::abs(a.as<double>() - b.as<double>()) <= 1e-12 * std::max(1.0, std::abs(a.as<double>()));
  } catch (const YAML::Exception&) {
    return a.as<std::string>() == b.as<std::string>();
  }
}

YAML::Node At(const YAML::Node& root, const std::string& path) {
  // "eval.datasets[].name" -> the default of one EvalDatasetConfig.
  if (path.rfind("eval.datasets[].", 0) == 0) {
    vicreg::config::JobConfig c;
    c.eval.datasets.push_back({});
    YAML::Node r = YAML::Load(vicreg::config::ToYaml(c));
    return r["eval"]["datasets"][0][path.substr(16)];
  }
  YAML::Node n = YAML::Clone(root);
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) n = n[part];
  return n;
}

// The key tables of README.md and docs/DEFAULTS.md: rows "| `key`[, `key2`] | default[ / default2] | ...",
// the second column parsed as YAML (one value per key, or one for all). A cell that does not parse fails.
std::map<std::string, YAML::Node> KeyTable(const std::string& file) {
  const std::string text = ReadFile(kSrc + "/" + file);
  std::map<std::string, YAML::Node> documented;
  std::regex row(R"(^\| (`[a-z0-9_.\[\]]+`(?:, `[a-z0-9_.\[\]]+`)*) \| ([^|]*) \|)");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    std::vector<std::string> keys, cells;
    std::string ks = m[1];
    static const std::regex backticked("`([^`]+)`");
    for (auto it = std::sregex_iterator(ks.begin(), ks.end(), backticked); it != std::sregex_iterator(); ++it)
      keys.push_back((*it)[1]);
    std::string cs = m[2];
    size_t pos;
    while ((pos = cs.find(" / ")) != std::string::npos) {
      cells.push_back(cs.substr(0, pos));
      cs = cs.substr(pos + 3);
    }
    cells.push_back(cs);
    for (size_t i = 0; i < keys.size(); ++i) {
      try {
        documented[keys[i]] = CellValue(cells.size() == keys.size() ? cells[i] : cells.front());
      } catch (const YAML::Exception& e) {
        ADD_FAILURE() << file << " row for " << keys[i] << ": default cell does not parse: " << e.what();
      }
    }
  }
  return documented;
}

TEST(DeployReadme, JobFileReferenceListsEveryKeyWithItsDefault) {
  const std::map<std::string, YAML::Node> documented = KeyTable("README.md");
  const vicreg::config::JobConfig default_config;  // named: GCC 12 warns (falsely) about a temporary here
  const YAML::Node defaults = YAML::Load(vicreg::config::ToYaml(default_config));
  int leaves = 0;
  for (const auto& path : vicreg::config::AllKeyPaths()) {
    YAML::Node def = At(defaults, path);
    if (def.IsMap()) continue;  // a section
    if (path == "eval.datasets") def = YAML::Load("[]");
    ++leaves;
    auto it = documented.find(path);
    if (it == documented.end()) {
      ADD_FAILURE() << "README's job file reference has no row for `" << path << "` (default " << YAML::Dump(def)
                    << ")";
      continue;
    }
    EXPECT_TRUE(SameValue(it->second, def)) << "README says `" << path << "` defaults to " << YAML::Dump(it->second)
                                            << ", the code says " << YAML::Dump(def);
  }
  EXPECT_GT(leaves, 90);
  for (const auto& [k, v] : documented) {
    const auto all = vicreg::config::AllKeyPaths();
    EXPECT_NE(std::find(all.begin(), all.end(), k), all.end()) << "README documents `" << k << "`, which is not a key";
  }
}

// docs/DEFAULTS.md (ours vs the seed's vs facebookresearch's, and why): every learning key of
// train.*, augment.* and the model keys the seed sets has a row, and its "ours" column is the code's.
TEST(DeployDefaults, TableMatchesTheCode) {
  const std::map<std::string, YAML::Node> documented = KeyTable("docs/DEFAULTS.md");
  const vicreg::config::JobConfig default_config;  // named: GCC 12 warns (falsely) about a temporary here
  const YAML::Node defaults = YAML::Load(vicreg::config::ToYaml(default_config));
  // Operational train keys (how a run is logged and stopped, not what it learns) need no row.
  const std::set<std::string> operational = {"train.training_mode", "train.seed", "train.log_every",
                                             "train.diagnostics_every", "train.max_consecutive_nonfinite",
                                             "train.max_steps"};
  int rows = 0;
  for (const auto& path : vicreg::config::AllKeyPaths()) {
    YAML::Node def = At(defaults, path);
    if (def.IsMap()) continue;
    const bool required = (path.rfind("train.", 0) == 0 || path.rfind("augment.", 0) == 0 ||
                           path == "model.backbone_name" || path == "model.image_size") &&
                          !operational.count(path);
    auto it = documented.find(path);
    if (it == documented.end()) {
      if (required) ADD_FAILURE() << "docs/DEFAULTS.md has no row for `" << path << "` (default " << YAML::Dump(def) << ")";
      continue;
    }
    ++rows;
    EXPECT_TRUE(SameValue(it->second, def)) << "docs/DEFAULTS.md says `" << path << "` defaults to "
                                            << YAML::Dump(it->second) << ", the code says " << YAML::Dump(def);
  }
  EXPECT_GT(rows, 50);
  const auto all = vicreg::config::AllKeyPaths();
  for (const auto& [k, v] : documented)
    EXPECT_NE(std::find(all.begin(), all.end(), k), all.end()) << "docs/DEFAULTS.md documents `" << k
                                                                << "`, which is not a key";
}

// ---- The quickstart script and job --------------------------------------------------------

TEST(DeployQuickstart, ScriptUsageAndShellcheck) {
  const std::string qs = Quote(kSrc + "/deploy/quickstart.sh");
  Result r = Sh(qs + " --help");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("--minutes"), std::string::npos);
  r = Sh(qs + " --frobnicate");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("unknown option '--frobnicate'"), std::string::npos) << r.out;
  r = Sh(qs + " --minutes 1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--minutes: '1' is not valid"), std::string::npos) << r.out;
  r = Sh(qs + " --config /no/such.yaml");
  EXPECT_EQ(r.code, 2) << r.out;
  if (Have("shellcheck")) {
    for (const std::string f : {"deploy/quickstart.sh", "deploy/install-deps.sh", "tests/run.sh"}) {
      r = Sh("shellcheck -S warning " + Quote(kSrc + "/" + f));
      EXPECT_EQ(r.code, 0) << f << ":\n" << r.out;
    }
  }
}

// The default budget is stated once in the script's variable; its --help, its header and the README
// say the same number.
TEST(DeployQuickstart, DefaultBudgetIsTheSameEverywhere) {
  const std::string script = ReadFile(kSrc + "/deploy/quickstart.sh");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(script, m, std::regex(R"(\nMINUTES=\$\{VICREG_QUICKSTART_MINUTES:-(\d+)\})"))) << script;
  const std::string minutes = m[1];
  Result help = Sh(Quote(kSrc + "/deploy/quickstart.sh") + " --help");
  ASSERT_EQ(help.code, 0) << help.out;
  EXPECT_NE(help.out.find("(default " + minutes + "; env VICREG_QUICKSTART_MINUTES)"), std::string::npos)
      << "--help does not say the default is " << minutes << ":\n" << help.out;
  EXPECT_NE(script.find("within " + minutes + " minutes"), std::string::npos) << "the script's header";
  EXPECT_NE(script.find("(default " + minutes + ":"), std::string::npos) << "the script's header";
  const std::string readme = ReadFile(kSrc + "/README.md");
  EXPECT_NE(readme.find("install and build included (default " + minutes + ")"), std::string::npos)
      << "README does not say the default budget is " << minutes << " minutes";
}

// For every budget, the overrides the quickstart would submit give a valid job with a training time
// budget whose last checkpoint is the one evaluated, and whose training grows with the budget.
TEST(DeployQuickstart, EveryBudgetGivesAValidJob) {
  int64_t last_images = 0;
  double last_budget = 0;
  for (const std::string args : {"--smoke", "--minutes 5", "--minutes 14", "--minutes 30", "--minutes 120"}) {
    Result r = Sh(Quote(kSrc + "/deploy/quickstart.sh") + " --plan-only " + args);
    ASSERT_EQ(r.code, 0) << args << ":\n" << r.out;
    std::vector<std::string> sets;
    std::regex set(R"(--set (\S+))");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), set); it != std::sregex_iterator(); ++it)
      sets.push_back((*it)[1]);
    ASSERT_GE(sets.size(), 4u) << r.out;
    vicreg::config::JobConfig cfg;
    try {
      cfg = vicreg::config::LoadJobFile(kSrc + "/configs/quickstart.yaml", sets);
    } catch (const std::exception& e) {
      FAIL() << args << ": the quickstart job is invalid with " << r.out << "\n" << e.what();
    }
    EXPECT_EQ(cfg.resources.ranks, 2);
    EXPECT_EQ(cfg.data.dataset, "fashion_mnist");
    // The workers end the run when its training time budget is spent (an epoch not known at submit):
    // the coordinator evaluates the last checkpoint (eval.final), and no other.
    EXPECT_TRUE(cfg.eval.final) << args;
    EXPECT_TRUE(cfg.eval.epochs.empty()) << args;
    EXPECT_EQ(cfg.eval.every_epochs, 0) << args;
    EXPECT_GT(cfg.train.time_budget_s, 0) << args;
    EXPECT_GT(cfg.data.limit, 0);
    EXPECT_LE(cfg.data.limit, 60000);
    EXPECT_EQ(cfg.data.limit % (cfg.train.batch_size * cfg.resources.ranks), 0) << "whole global batches";
    const int64_t images = cfg.data.limit * cfg.train.num_epochs;
    if (args != "--smoke") {
      EXPECT_GE(images, last_images) << args;
      last_images = images;
      EXPECT_GT(cfg.train.time_budget_s, last_budget) << args;
      last_budget = cfg.train.time_budget_s;
    }
  }
  // 2 hours trains on the whole dataset for several epochs.
  EXPECT_GT(last_images, 3 * 60000);
}

// The first plan follows the rate the run measured (here given through VICREG_QUICKSTART_RATE, which
// skips the calibration): on a machine 2x slower or 2x faster the training images halve or double, and
// the planned training time stays most of the budget without exceeding it; the job's training time
// budget (which the workers keep whatever rate they reach) is most of the budget at every rate.
TEST(DeployQuickstart, PlanFollowsTheMeasuredRate) {
  const int budget_s = 14 * 60;
  double last_images = 0;
  for (int rate : {450, 900, 1800, 3600}) {
    Result r = Sh("VICREG_QUICKSTART_RATE=" + std::to_string(rate) + " " + Quote(kSrc + "/deploy/quickstart.sh") +
                  " --plan-only --minutes 14");
    ASSERT_EQ(r.code, 0) << rate << ":\n" << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(data\.limit=(\d+) --set train\.num_epochs=(\d+))"))) << r.out;
    const double images = std::stod(m[1]) * std::stod(m[2]);
    const double train_s = images / rate;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(--set train\.time_budget_s=(\d+))"))) << r.out;
    EXPECT_LT(std::stod(m[1]), 0.97 * budget_s) << rate << " img/s:\n" << r.out;
    EXPECT_GT(std::stod(m[1]), 0.85 * budget_s) << rate << " img/s:\n" << r.out;
    EXPECT_LE(train_s, std::stod(m[1]) + 1) << "the first plan fits in the time budget\n" << r.out;
    EXPECT_LT(train_s, 0.97 * budget_s) << rate << " img/s:\n" << r.out;
    EXPECT_GT(train_s, 0.80 * budget_s) << rate << " img/s:\n" << r.out;
    if (last_images > 0) {
      EXPECT_GT(images / last_images, 1.8) << rate << " img/s:\n" << r.out;
      EXPECT_LT(images / last_images, 2.3) << rate << " img/s:\n" << r.out;
    }
    last_images = images;
  }
  Result r = Sh("VICREG_QUICKSTART_RATE=fast " + Quote(kSrc + "/deploy/quickstart.sh") + " --plan-only");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("VICREG_QUICKSTART_RATE: 'fast' is not valid"), std::string::npos) << r.out;
}

}  // namespace
