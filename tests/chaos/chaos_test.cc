// The chaos soak (issue 17): a real vicreg_coordinator with the local launcher (mpirun, the job
// shims) runs small jobs of tests/chaos/chaos_worker.py (1-2 ranks, some with scheduled
// evaluations by tests/chaos/chaos_eval.py) while a seeded fault injector, at random:
//   SIGKILLs a rank, SIGSTOPs a rank (SIGCONT after 0.5-10 s: past no_progress_timeout_s the
//   coordinator stops the attempt), SIGKILLs a rank shim or a supervising shim, SIGKILLs mpirun,
//   kills the coordinator (kill -9) or stops it (SIGTERM) and starts it again, SIGKILLs a running
//   evaluation, fills the state dir's filesystem (a size-limited tmpfs in a private mount namespace,
//   when run as root) for 1-3 s, and cancels a job.
// New jobs are submitted (idempotently, with request ids) to keep a few in flight. When the fault
// phase ends the soak waits for every job and evaluation to end, stops the coordinator and checks
// the invariant:
//   - no job lost or duplicated: one job per request id, ListJobs counts exactly those;
//   - every job SUCCEEDED, or FAILED after max_restarts with a fault that hit it (a fault on one of
//     its processes, or a full disk while it ran), or CANCELLED by the soak;
//   - no two attempts of a job ran at once (each rank holds a flock: chaos-violations.log);
//   - every SUCCEEDED job's final checkpoint is whole and at the planned step, result.json agrees;
//   - the store passes PRAGMA integrity_check;
//   - no process of the soak's state dir is left (no orphan rank, shim, mpirun or evaluation).
// The seed, every fault (time, kind, target) and an outcome table are printed: a failure replays
// with VICREG_CHAOS_SEED=<seed> (the same schedule of draws; targets depend on what runs then).
//
// ctest runs a short soak (15 s of faults, at most 8 jobs, well under a minute). By hand:
//   tests/chaos/run.sh --minutes 60 [--seed S]     (VICREG_CHAOS_MINUTES, VICREG_CHAOS_SEED,
//                                                   VICREG_CHAOS_JOBS: 0 = no cap)
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/run_contract.h"
#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

using Clock = std::chrono::steady_clock;
using testutil::Coordinator;

double EnvDouble(const char* name, double dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : dflt;
}

// ---- the processes of the soak's state dir --------------------------------------------------------

struct Proc {
  int pid = 0;
  std::vector<std::string> argv;
  std::string Arg(const std::string& flag) const {
    for (size_t i = 0; i + 1 < argv.size(); ++i)
      if (argv[i] == flag) return argv[i + 1];
    return "";
  }
  // The program is the script `name` (python3 <dir>/name ...), not a shim or mpirun running it.
  bool Runs(const std::string& name) const {
    auto ends = [&](const std::string& a) {
      return a.size() >= name.size() && a.compare(a.size() - name.size(), name.size(), name) == 0;
    };
    return (!argv.empty() && ends(argv[0])) || (argv.size() > 1 && argv[0].find("python") != std::string::npos &&
                                                ends(argv[1]));
  }
  std::string Exe() const {
    if (argv.empty()) return "";
    auto s = argv[0].rfind('/');
    return s == std::string::npos ? argv[0] : argv[0].substr(s + 1);
  }
  // job-NNNNNN from --job-id (ranks) or a run dir in an argument (shims, mpirun, evaluations).
  std::string Job() const {
    std::string id = Arg("--job-id");
    if (!id.empty()) return id;
    for (const auto& a : argv) {
      auto p = a.find("/runs/job-");
      if (p != std::string::npos) return a.substr(p + 6, 10);
    }
    return "";
  }
};

// /proc/<pid>/cmdline, or "" once the process is gone: a read of a process that exits between the
// open and the read fails with ESRCH (an ifstream's istreambuf_iterator throws on that).
std::string ReadCmdline(const std::string& pid) {
  const int fd = ::open(("/proc/" + pid + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return n < 0 ? "" : out;
}

// Live (not zombie) processes whose command line mentions `marker`, except `exclude`.
std::vector<Proc> ProcessesOf(const std::string& marker, int exclude) {
  std::vector<Proc> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const int pid = std::atoi(e->d_name);
    if (pid == exclude || pid == getpid()) continue;
    const std::string raw = ReadCmdline(e->d_name);
    if (raw.find(marker) == std::string::npos) continue;
    auto st = server::ReadProcStat(pid);
    if (!st || st->state == 'Z' || st->state == 'X') continue;
    Proc p;
    p.pid = pid;
    std::string cur;
    for (char c : raw) {
      if (c == '\0') {
        p.argv.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(c);
      }
    }
    out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

// ---- the soak -----------------------------------------------------------------------------------

enum class Fault { kRankKill, kRankStop, kShimKill, kLauncherKill, kCoordKill, kCoordStop, kEvalKill, kDiskFull, kCancel };
const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kRankKill: return "rank SIGKILL";
    case Fault::kRankStop: return "rank SIGSTOP/SIGCONT";
    case Fault::kShimKill: return "shim SIGKILL";
    case Fault::kLauncherKill: return "mpirun SIGKILL";
    case Fault::kCoordKill: return "coordinator kill -9 + restart";
    case Fault::kCoordStop: return "coordinator SIGTERM + restart";
    case Fault::kEvalKill: return "evaluation SIGKILL";
    case Fault::kDiskFull: return "state filesystem full";
    case Fault::kCancel: return "cancel";
  }
  return "?";
}

struct Submitted {
  std::string request_id, yaml, job_id;
  int max_steps = 0, max_restarts = 0;
  bool eval = false;
  bool ended = false;  // seen SUCCEEDED/FAILED/CANCELLED: final, never asked again while faults run
};

class ChaosSoak {
 public:
  ChaosSoak(std::string root, uint64_t seed, double fault_s, int max_jobs)
      : root_(std::move(root)), seed_(seed), fault_s_(fault_s), max_jobs_(max_jobs), rng_(seed) {}

  void Run() {
    SetUpFilesystem();
    const std::string src = testutil::SourceDir() + "/tests/chaos";
    coord_ = std::make_unique<Coordinator>(
        state_, std::vector<std::string>{"--slots", "4", "--worker-binary", src + "/chaos_worker.py", "--eval-binary",
                                         src + "/chaos_eval.py", "--eval-slots", "1", "--eval-retry-backoff", "0.5",
                                         "--poll-interval", "0.1", "--restart-backoff", "0.2", "--stop-grace", "1",
                                         "--no-progress-timeout", "8"});
    coord_->Start();
    t0_ = Clock::now();
    std::printf("chaos: seed %llu, %.0f s of faults, %s jobs, state filesystem %s\n",
                static_cast<unsigned long long>(seed_), fault_s_,
                max_jobs_ > 0 ? std::to_string(max_jobs_).c_str() : "unlimited",
                tmpfs_ ? (std::to_string(tmpfs_mib_) + " MiB tmpfs (disk-full faults on)").c_str()
                       : "the test's (not root: no disk-full faults)");
    std::fflush(stdout);
    FaultPhase();
    Settle();
    Check();
    Report();
  }

  ~ChaosSoak() {
    for (const auto& p : ProcessesOf(state_, -1)) ::kill(p.pid, SIGKILL);
    coord_.reset();
    if (tmpfs_) ::umount2(fs_.c_str(), MNT_DETACH);
  }

 private:
  double Now() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  double Uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void Log(Fault f, const std::string& target) {
    ++fault_counts_[f];
    ++faults_;
    std::printf("chaos: t=%7.2f %-30s %s\n", Now(), FaultName(f), target.c_str());
    std::fflush(stdout);
  }

  // A private mount namespace (root only) holding a size-limited tmpfs for the state dir: the
  // mount dies with this test process whatever happens.
  // Its size grows with the fault phase: every job leaves its run dir (~200 KiB) and the store
  // grows, so a fixed 64 MiB was really full after ~370 jobs (13 minutes) of a 60-minute soak, and
  // only the injected fills may make it full.
  void SetUpFilesystem() {
    fs_ = root_ + "/fs";
    fs::MakeDirs(fs_);
    tmpfs_mib_ = 64 + 16 * static_cast<int>(fault_s_ / 60);
    const std::string opts = "size=" + std::to_string(tmpfs_mib_) + "m,mode=0700";
    if (::geteuid() == 0 && ::unshare(CLONE_NEWNS) == 0 &&
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
        ::mount("tmpfs", fs_.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      tmpfs_ = true;
    }
    state_ = fs_ + "/state";
  }

  int CoordPid() const {
    std::ifstream f(state_ + "/coordinator.json");
    std::stringstream ss;
    ss << f.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    return j.is_object() ? j.value("pid", 0) : 0;
  }

  std::vector<Proc> Ours() { return ProcessesOf(state_, coord_->running() ? CoordPid() : -1); }

  void RestartCoordinator() {
    for (int tries = 0;; ++tries) {
      try {
        coord_->Start(60);
        return;
      } catch (const std::exception& e) {
        if (tries >= 3) throw;
        std::printf("chaos: coordinator restart failed (%s); retrying\n", e.what());
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
    }
  }

  // Keeps `inflight` jobs open (at most max_jobs_ in all); idempotent across coordinator restarts.
  void SubmitMore(int inflight) {
    if (!coord_->running()) return;
    // Only the open jobs are asked (one GetJob each per loop): asking every job ever submitted made
    // the loop O(jobs), and after 30 minutes of a long soak a fault came only every ~70 s.
    int open = 0;
    for (auto& s : jobs_) {
      if (s.ended) continue;
      if (s.job_id.empty()) {
        ++open;
        continue;
      }
      v1::Job j;
      if (s.job_id == "refused" || (GetJob(s.job_id, &j) && j.state() >= v1::SUCCEEDED)) {
        s.ended = true;
        continue;
      }
      ++open;
    }
    while (open < inflight && (max_jobs_ <= 0 || static_cast<int>(jobs_.size()) < max_jobs_)) {
      Submitted s;
      s.request_id = "chaos-" + std::to_string(seed_) + "-" + std::to_string(jobs_.size());
      const int ranks = 1 + Pick(2);
      s.max_steps = 5 * (4 + Pick(9));  // 20..60 steps, 0.8..2.4 s of work
      s.max_restarts = 4;
      s.eval = Pick(3) == 0;
      s.yaml = "name: chaos-" + std::to_string(jobs_.size()) + "\nresources: {ranks: " + std::to_string(ranks) +
               "}\ntrain: {max_steps: " + std::to_string(s.max_steps) +
               "}\nmax_restarts: " + std::to_string(s.max_restarts) + "\n" +
               (s.eval ? "eval: {every_epochs: 4, datasets: [{name: fashion_mnist}], max_attempts: 4}\n" : "");
      jobs_.push_back(s);
      ++open;
    }
    for (auto& s : jobs_) {
      if (!s.job_id.empty()) continue;
      v1::SubmitJobRequest req;
      req.set_job_yaml(s.yaml);
      req.set_client_request_id(s.request_id);
      v1::SubmitJobResponse resp;
      auto ctx = Coordinator::Ctx("", 5);
      grpc::Status st = coord_->Stub()->SubmitJob(ctx.get(), req, &resp);
      if (st.ok()) {
        s.job_id = resp.job_id();
        submitted_at_[s.job_id] = Now();
      } else if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
                 st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
                 st.error_code() != grpc::StatusCode::INTERNAL) {  // INTERNAL: the disk is full
        ADD_FAILURE() << "submit " << s.request_id << " refused: " << st.error_message();
        s.job_id = "refused";
      }
    }
  }

  bool GetJob(const std::string& id, v1::Job* out) {
    auto ctx = Coordinator::Ctx("", 5);
    v1::GetJobRequest req;
    req.set_job_id(id);
    return coord_->Stub()->GetJob(ctx.get(), req, out).ok();
  }

  void Hit(const std::string& job) {
    if (!job.empty()) ++hits_[job];
  }

  void FaultPhase() {
    struct Stopped {
      int pid;
      double until;
    };
    std::vector<Stopped> stopped;
    double disk_until = -1;
    std::string filler;
    std::vector<std::pair<Fault, int>> weights = {{Fault::kRankKill, 4},   {Fault::kRankStop, 2},
                                                  {Fault::kShimKill, 2},   {Fault::kLauncherKill, 1},
                                                  {Fault::kCoordKill, 2},  {Fault::kCoordStop, 1},
                                                  {Fault::kEvalKill, 2},   {Fault::kDiskFull, tmpfs_ ? 1 : 0},
                                                  {Fault::kCancel, 1}};
    int total_weight = 0;
    for (auto& w : weights) total_weight += w.second;
    double next_fault = Uniform(0.5, 1.5);
    while (Now() < fault_s_) {
      SubmitMore(4);
      for (auto it = stopped.begin(); it != stopped.end();) {
        if (Now() >= it->until) {
          ::kill(it->pid, SIGCONT);
          it = stopped.erase(it);
        } else {
          ++it;
        }
      }
      if (disk_until >= 0 && Now() >= disk_until) {
        ::unlink(filler.c_str());
        disk_until = -1;
        disk_windows_.back().second = Now();
        std::printf("chaos: t=%7.2f   state filesystem freed\n", Now());
      }
      if (Now() < next_fault) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      next_fault = Now() + Uniform(0.3, 1.2);
      int r = Pick(total_weight);
      Fault f = weights[0].first;
      for (auto& w : weights) {
        if (r < w.second) {
          f = w.first;
          break;
        }
        r -= w.second;
      }
      const std::vector<Proc> procs = Ours();
      auto pick_of = [&](const std::function<bool(const Proc&)>& pred) -> const Proc* {
        std::vector<const Proc*> c;
        for (const auto& p : procs)
          if (pred(p)) c.push_back(&p);
        return c.empty() ? nullptr : c[static_cast<size_t>(Pick(static_cast<int>(c.size())))];
      };
      auto is_rank = [](const Proc& p) { return p.Runs("chaos_worker.py"); };
      switch (f) {
        case Fault::kRankKill:
        case Fault::kRankStop: {
          const Proc* p = pick_of(is_rank);
          if (!p) break;
          if (f == Fault::kRankKill) {
            ::kill(p->pid, SIGKILL);
            Log(f, p->Job() + " pid " + std::to_string(p->pid));
          } else {
            const double for_s = Uniform(0.5, 10);
            ::kill(p->pid, SIGSTOP);
            stopped.push_back({p->pid, Now() + for_s});
            char buf[64];
            std::snprintf(buf, sizeof buf, " for %.1f s", for_s);
            Log(f, p->Job() + " pid " + std::to_string(p->pid) + buf);
          }
          Hit(p->Job());
          break;
        }
        case Fault::kShimKill: {
          const Proc* p = pick_of([](const Proc& x) { return x.Exe() == "vicreg_job_shim"; });
          if (!p) break;
          ::kill(p->pid, SIGKILL);
          Log(f, p->Job() + " " + (p->argv.size() > 1 ? p->argv[1] : "") + " pid " + std::to_string(p->pid));
          Hit(p->Job());
          break;
        }
        case Fault::kLauncherKill: {
          const Proc* p = pick_of([](const Proc& x) {
            const std::string e = x.Exe();
            return e == "mpirun" || e == "orterun" || e == "mpiexec" || e == "prterun";
          });
          if (!p) break;
          ::kill(p->pid, SIGKILL);
          Log(f, p->Job() + " pid " + std::to_string(p->pid));
          Hit(p->Job());
          break;
        }
        case Fault::kCoordKill:
        case Fault::kCoordStop: {
          if (disk_until >= 0) break;  // it could not write coordinator.json: restart after the window
          Log(f, "");
          if (f == Fault::kCoordKill)
            coord_->Kill(SIGKILL);
          else
            coord_->Stop();
          std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.1, 1.5)));
          RestartCoordinator();
          ++coordinator_restarts_;
          break;
        }
        case Fault::kEvalKill: {
          const Proc* p = pick_of([](const Proc& x) { return x.Runs("chaos_eval.py"); });
          if (!p) break;
          ::kill(p->pid, SIGKILL);
          Log(f, p->Job() + " pid " + std::to_string(p->pid));
          break;
        }
        case Fault::kDiskFull: {
          if (disk_until >= 0) break;
          filler = fs_ + "/filler";
          int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
          if (fd < 0) break;
          std::vector<char> mb(1 << 20, 'x');
          while (::write(fd, mb.data(), mb.size()) > 0) {
          }
          ::close(fd);
          const double for_s = Uniform(1, 3);
          disk_until = Now() + for_s;
          disk_windows_.push_back({Now(), disk_until});
          char buf[64];
          std::snprintf(buf, sizeof buf, "for %.1f s", for_s);
          Log(f, buf);
          break;
        }
        case Fault::kCancel: {
          std::vector<std::string> open;
          for (const auto& s : jobs_) {
            v1::Job j;
            if (!s.ended && !s.job_id.empty() && s.job_id != "refused" && GetJob(s.job_id, &j) &&
                j.state() < v1::SUCCEEDED)
              open.push_back(s.job_id);
          }
          if (open.empty()) break;
          const std::string id = open[static_cast<size_t>(Pick(static_cast<int>(open.size())))];
          v1::CancelJobRequest req;
          req.set_job_id(id);
          req.set_reason("chaos");
          v1::Job resp;
          auto ctx = Coordinator::Ctx("", 40);
          grpc::Status st = coord_->Stub()->CancelJob(ctx.get(), req, &resp);
          if (st.ok() || st.error_code() == grpc::StatusCode::INTERNAL) {
            cancelled_.insert(id);  // INTERNAL (disk full): the cancel may or may not be stored
            Log(f, id);
          }
          break;
        }
      }
    }
    for (const auto& s : stopped) ::kill(s.pid, SIGCONT);
    if (disk_until >= 0) {
      ::unlink(filler.c_str());
      disk_windows_.back().second = Now();
    }
    if (!coord_->running()) RestartCoordinator();
    fault_end_ = Now();
  }

  // Every submitted job and every evaluation ends.
  void Settle() {
    const double limit = 120 + fault_s_ / 2;
    const double until = Now() + limit;
    bool done = false;
    while (!done && Now() < until) {
      SubmitMore(0);  // submits still unanswered
      done = true;
      for (const auto& s : jobs_) {
        v1::Job j;
        if (s.job_id.empty() || (s.job_id != "refused" && (!GetJob(s.job_id, &j) || j.state() < v1::SUCCEEDED))) {
          done = false;
          break;
        }
        if (!s.eval || j.state() != v1::SUCCEEDED) continue;
        v1::ListEvalsRequest req;
        req.set_job_id(s.job_id);
        v1::ListEvalsResponse resp;
        auto ctx = Coordinator::Ctx("", 5);
        if (!coord_->Stub()->ListEvals(ctx.get(), req, &resp).ok()) {
          done = false;
          break;
        }
        for (const auto& t : resp.tasks())
          if (t.state() == v1::EvalTask::PENDING || t.state() == v1::EvalTask::RUNNING) done = false;
      }
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    settled_ = Now();
    ASSERT_TRUE(done) << "the jobs did not all end within " << limit << " s of the fault phase\n" << coord_->log();
  }

  void Check() {
    std::set<std::string> ids;
    for (const auto& s : jobs_) {
      ASSERT_FALSE(s.job_id.empty()) << s.request_id << " was never accepted";
      if (s.job_id == "refused") continue;
      EXPECT_TRUE(ids.insert(s.job_id).second) << "two requests got " << s.job_id;
    }
    v1::ListJobsRequest lreq;
    lreq.set_page_size(1000);
    v1::ListJobsResponse list;
    auto ctx = Coordinator::Ctx("", 10);
    ASSERT_TRUE(coord_->Stub()->ListJobs(ctx.get(), lreq, &list).ok());
    EXPECT_EQ(list.total_size(), static_cast<int64_t>(ids.size())) << "jobs lost or duplicated";
    for (const auto& s : jobs_) {
      if (s.job_id == "refused") continue;
      v1::Job j;
      ASSERT_TRUE(GetJob(s.job_id, &j)) << s.job_id << " lost";
      ++outcomes_[v1::JobState_Name(j.state())];
      const contract::RunPaths d(j.run_dir());
      EXPECT_FALSE(fs::Exists(d.root() + "/chaos-violations.log"))
          << s.job_id << ": two attempts ran at once:\n"
          << testutil::ReadText(d.root() + "/chaos-violations.log");
      if (fs::Exists(d.eval_dir() + "/chaos-eval-violations.log")) {
        ++eval_duplicates_;
        std::printf("chaos: %s: evaluation ran twice at once:\n%s", s.job_id.c_str(),
                    testutil::ReadText(d.eval_dir() + "/chaos-eval-violations.log").c_str());
      }
      if (j.state() == v1::SUCCEEDED) {
        auto result = nlohmann::json::parse(testutil::ReadText(d.result_json()), nullptr, false);
        EXPECT_EQ(result.is_object() ? result.value("step", -1) : -1, s.max_steps) << s.job_id << " result.json";
        std::string latest = testutil::ReadText(d.checkpoints_dir() + "/latest");
        latest = latest.substr(0, latest.find('\n'));
        char want[32];
        std::snprintf(want, sizeof want, "epoch_%04d.pt", s.max_steps / 5);
        EXPECT_EQ(latest, want) << s.job_id;
        auto ck = nlohmann::json::parse(testutil::ReadText(d.checkpoints_dir() + "/" + latest), nullptr, false);
        EXPECT_TRUE(ck.is_object() && ck.value("step", -1) == s.max_steps && ck.value("job", "") == s.job_id &&
                    ck.value("digest", "").size() == 64)
            << s.job_id << " final checkpoint " << latest << " is not whole: " << ck.dump();
      } else if (j.state() == v1::FAILED) {
        const bool disk = std::any_of(disk_windows_.begin(), disk_windows_.end(), [&](auto& w) {
          return w.first >= submitted_at_[s.job_id] - 1;
        });
        EXPECT_TRUE(j.restarts() == j.max_restarts() && (hits_[s.job_id] > 0 || disk || coordinator_restarts_ > 0))
            << s.job_id << " FAILED without the faults to explain it (restarts " << j.restarts() << "/"
            << j.max_restarts() << ", " << hits_[s.job_id] << " faults on its processes): " << j.last_error();
      } else if (j.state() == v1::CANCELLED) {
        EXPECT_TRUE(cancelled_.count(s.job_id)) << s.job_id << " CANCELLED, but the soak never cancelled it";
      } else {
        ADD_FAILURE() << s.job_id << " ended in state " << v1::JobState_Name(j.state());
      }
    }
    // No orphan: every process of the state dir ends with its job (the coordinator frees slots only
    // then; a straggler's SIGKILL takes a moment to land).
    coord_->Stop();
    std::vector<Proc> left;
    testutil::WaitFor(
        [&] {
          left = ProcessesOf(state_, -1);
          return left.empty();
        },
        10);
    for (const auto& p : left) {
      std::string cmd;
      for (const auto& a : p.argv) cmd += a + " ";
      ADD_FAILURE() << "orphan process " << p.pid << ": " << cmd;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((state_ + "/coordinator.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    std::string integrity;
    sqlite3_exec(
        db, "PRAGMA integrity_check",
        [](void* out, int, char** v, char**) {
          *static_cast<std::string*>(out) += v[0] ? v[0] : "";
          return 0;
        },
        &integrity, nullptr);
    sqlite3_close(db);
    EXPECT_EQ(integrity, "ok");
  }

  void Report() {
    std::printf("chaos: seed %llu: %zu jobs, %d faults in %.0f s (+%d coordinator restarts), settled %.1f s later, "
                "wall %.1f s\n",
                static_cast<unsigned long long>(seed_), jobs_.size(), faults_, fault_end_, coordinator_restarts_,
                settled_ - fault_end_, Now());
    std::printf("chaos: %-32s %s\n", "fault", "count");
    for (const auto& [f, n] : fault_counts_) std::printf("chaos: %-32s %d\n", FaultName(f), n);
    std::printf("chaos: %-32s %s\n", "outcome", "jobs");
    for (const auto& [s, n] : outcomes_) std::printf("chaos: %-32s %d\n", s.c_str(), n);
    std::printf("chaos: evaluations that ran twice at once: %d\n", eval_duplicates_);
    std::fflush(stdout);
    ::testing::Test::RecordProperty("seed", std::to_string(seed_));
    ::testing::Test::RecordProperty("faults", faults_);
  }

  std::string root_, fs_, state_;
  uint64_t seed_;
  double fault_s_;
  int max_jobs_;
  std::mt19937_64 rng_;
  bool tmpfs_ = false;
  int tmpfs_mib_ = 0;
  std::unique_ptr<Coordinator> coord_;
  Clock::time_point t0_;
  std::vector<Submitted> jobs_;
  std::map<std::string, double> submitted_at_;
  std::map<std::string, int> hits_;
  std::set<std::string> cancelled_;
  std::vector<std::pair<double, double>> disk_windows_;
  std::map<Fault, int> fault_counts_;
  std::map<std::string, int> outcomes_;
  int faults_ = 0, coordinator_restarts_ = 0, eval_duplicates_ = 0;
  double fault_end_ = 0, settled_ = 0;
};

TEST(Chaos, RandomFaultsKeepTheInvariant) {
  uint64_t seed = static_cast<uint64_t>(EnvDouble("VICREG_CHAOS_SEED", 0));
  if (seed == 0) seed = std::random_device{}() ^ (static_cast<uint64_t>(::time(nullptr)) << 20);
  const double minutes = EnvDouble("VICREG_CHAOS_MINUTES", 0);
  const double fault_s = minutes > 0 ? minutes * 60 : 15;
  const int max_jobs = static_cast<int>(EnvDouble("VICREG_CHAOS_JOBS", minutes > 0 ? 0 : 8));
  testutil::TempDir dir("chaos");
  ChaosSoak soak(dir.path(), seed, fault_s, max_jobs);
  soak.Run();
}

}  // namespace
}  // namespace vicreg
