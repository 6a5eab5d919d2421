// Slurm launcher: one batch job per launch (training attempt or evaluation).
//
//   sbatch --parsable --job-name=<prefix>-<name> --ntasks=R [--nodes=N] [--ntasks-per-node=M]
//          [--cpus-per-task=C] [--gpus-per-task=1] --output=<output> --open-mode=append --chdir=<workdir>
//          [--partition P] [--account A] [extra sbatch args] <script>
//
// The generated script (every argument single-quoted) says where it runs, then execs:
//   echo "=== vicreg: <name> (Slurm job $SLURM_JOB_ID) on $(hostname), <UTC time> ==="
//   exec vicreg_job_shim supervise --status <status> -- srun --mpi=pmix [extra srun args]
//        vicreg_job_shim rank --log-dir <logs> --status-dir <ranks> --attempt <n> -- PROGRAM ...
// (a single program without ranks, e.g. vicreg_eval, runs directly under the supervisor: no srun).
//
// Polling: Refresh() runs ONE `squeue -h --me -t all -o %i|%j|%T|%r` for every job of this user
// (ended ones too, for MinJobAge: their final state, e.g. NODE_FAIL, without accounting), at most
// every squeue_interval_s (doubling up to squeue_max_backoff_s while it fails: a controller that is
// slow, down or restarting never ends a job). Poll answers from that snapshot: PENDING & co. are
// kQueued with Slurm's reason, RUNNING & co. kRunning unless the shim's status file says the
// program ended (Slurm may show a finished job as COMPLETING, or RUNNING until a node's completion
// message reaches a restarted controller); a job that left the queue (or shows a final state)
// ended: the shim's status file, else `sacct`, else lost. The status file is read first, also
// while the controller does not answer. A job submitted after the snapshot
// was taken is queued until the next one. A handle that was never recorded (sbatch timed out after
// the controller accepted the job; the coordinator died between sbatch and storing the id) is found
// by the job's name. Stop: `scancel ID` (force: `scancel --signal=KILL --full ID`); without an id,
// `scancel --me --name=<name>`; nothing for a job that already left the queue or whose status file
// exists; while the controller
// does not answer, deferred until it does (then sent only for jobs still in the queue). Handle: "slurm:<job id>".
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/fs.h"
#include "common/run_contract.h"
#include "server/launcher.h"
#include "server/process.h"

namespace vicreg::server {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string Trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

void MakeParentDir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) fs::MakeDirs(path.substr(0, slash));
}

bool ValidJobId(const std::string& id) {
  return !id.empty() && id.find_first_not_of("0123456789_") == std::string::npos;
}

std::string JobIdOf(const std::string& handle) {
  if (handle.rfind("slurm:", 0) != 0) return "";
  std::string id = handle.substr(6);
  return ValidJobId(id) ? id : "";
}

// Slurm job states in which the job still holds (or waits for) resources.
bool IsQueuedState(const std::string& s) {
  return s == "PENDING" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" || s == "RESV_DEL_HOLD" ||
         s == "CONFIGURING" || s == "SUSPENDED" || s == "STOPPED";
}
bool IsRunningState(const std::string& s) {
  return s == "RUNNING" || s == "COMPLETING" || s == "RESIZING" || s == "SIGNALING" || s == "STAGE_OUT";
}

// "<base>-a<n>" -> base, n; false for other names.
bool SplitAttempt(const std::string& name, std::string* base, int* n) {
  auto pos = name.rfind("-a");
  if (pos == std::string::npos || pos + 2 >= name.size()) return false;
  std::string digits = name.substr(pos + 2);
  if (digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  *base = name.substr(0, pos);
  *n = std::stoi(digits);
  return true;
}

class SlurmLauncher : public Launcher {
 public:
  explicit SlurmLauncher(LauncherOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "slurm"; }
  LauncherCapabilities capabilities() const override {
    LauncherCapabilities c;
    c.launch_failures_are_permanent = false;  // sbatch may fail transiently
    c.places_ranks = true;                    // Slurm places and queues the ranks
    return c;
  }

  std::string Launch(const LaunchSpec& spec) override {
    const std::string job_name = SlurmName(spec.name);
    for (const std::string* p : {&spec.status_path, &spec.output_path, &spec.script_path}) MakeParentDir(*p);
    if (!spec.rank_status_dir.empty()) fs::MakeDirs(spec.rank_status_dir);
    if (!spec.rank_log_dir.empty()) fs::MakeDirs(spec.rank_log_dir);

    std::vector<std::string> cmd = {options_.shim_binary, "supervise", "--status", spec.status_path, "--"};
    if (!spec.rank_log_dir.empty()) {
      cmd.insert(cmd.end(), {options_.srun, "--mpi=" + options_.srun_mpi});
      cmd.insert(cmd.end(), options_.srun_args.begin(), options_.srun_args.end());
      cmd.insert(cmd.end(), {options_.shim_binary, "rank", "--log-dir", spec.rank_log_dir, "--status-dir",
                             spec.rank_status_dir, "--attempt", std::to_string(spec.attempt), "--"});
    }
    cmd.insert(cmd.end(), spec.argv.begin(), spec.argv.end());
    std::ostringstream script;
    script << "#!/bin/bash\n"
           << "# Generated by vicreg_coordinator: " << job_name << ".\n"
           << "echo \"=== vicreg: \"" << ShellQuote(job_name)
           << "\" (Slurm job $SLURM_JOB_ID) on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ) ===\"\n"
           << "exec";
    for (const auto& a : cmd) script << " " << ShellQuote(a);
    script << "\n";
    fs::AtomicWriteFile(spec.script_path, script.str());

    std::vector<std::string> argv = {options_.sbatch,
                                     "--parsable",
                                     "--job-name=" + job_name,
                                     "--ntasks=" + std::to_string(spec.ranks),
                                     "--output=" + spec.output_path,
                                     "--open-mode=append"};
    if (spec.nodes > 0) argv.push_back("--nodes=" + std::to_string(spec.nodes));
    if (spec.ranks_per_node > 0) argv.push_back("--ntasks-per-node=" + std::to_string(spec.ranks_per_node));
    if (spec.cpus_per_rank > 0) argv.push_back("--cpus-per-task=" + std::to_string(spec.cpus_per_rank));
    if (spec.gpu_per_rank) argv.push_back("--gpus-per-task=1");
    if (!spec.workdir.empty()) argv.push_back("--chdir=" + spec.workdir);
    if (!options_.partition.empty()) argv.push_back("--partition=" + options_.partition);
    if (!options_.account.empty()) argv.push_back("--account=" + options_.account);
    argv.insert(argv.end(), options_.sbatch_args.begin(), options_.sbatch_args.end());
    argv.push_back(spec.script_path);
    CommandResult r = RunCommand(argv, options_.command_timeout_s);
    std::string out = Trim(r.out);
    // --parsable prints "<id>" or "<id>;<cluster>".
    std::string id = out.substr(0, out.find(';'));
    if (r.exit_code == kExitOk && ValidJobId(id)) {
      submitted_[id] = Now();
      return "slurm:" + id;
    }
    const std::string why = "sbatch failed (exit " + std::to_string(r.exit_code) + (r.timed_out ? ", timed out" : "") +
                            "): " + Trim(r.err + " " + r.out);
    // The controller may have accepted the job although sbatch did not say so (timeout, lost reply):
    // look for it by name before reporting a failure that would launch it a second time.
    CommandResult q =
        RunCommand({options_.squeue, "-h", "--me", "--name=" + job_name, "-o", "%i"}, options_.command_timeout_s);
    if (q.exit_code == kExitOk && !q.timed_out) {
      std::string found = Trim(q.out.substr(0, q.out.find('\n')));
      if (ValidJobId(found)) {
        spdlog::warn("slurm: {}; but the controller has {} as job {}: keeping it", why, job_name, found);
        submitted_[found] = Now();
        return "slurm:" + found;
      }
      throw std::runtime_error(why);
    }
    // The controller does not answer: the job may or may not exist. Poll finds it by name later;
    // if it never appears, the attempt is lost and relaunched under another name.
    spdlog::warn("slurm: {}; the controller does not answer, {} will be looked up by name", why, job_name);
    unresolved_since_[job_name] = Now();
    return "";
  }

  void Refresh() override {
    const double now = Now();
    if (now < next_refresh_) return;
    ++squeue_calls_;
    CommandResult q =
        RunCommand({options_.squeue, "-h", "--me", "-t", "all", "-o", "%i|%j|%T|%r"}, options_.command_timeout_s);
    if (q.exit_code != kExitOk || q.timed_out) {
      ++failures_;
      double backoff = std::min(options_.squeue_max_backoff_s,
                                std::max(options_.squeue_interval_s, 0.5) * std::pow(2.0, std::min(failures_, 16)));
      next_refresh_ = now + backoff;
      fresh_ = false;
      if (failures_ == 1 || failures_ % 10 == 0)
        spdlog::warn("slurm: squeue failed ({} in a row{}): {}; keeping every job as it was, next try in {:.0f} s",
                     failures_, q.timed_out ? ", timed out" : "", Trim(q.err).substr(0, 300), backoff);
      return;
    }
    if (failures_ > 0) spdlog::info("slurm: squeue answers again after {} failure(s)", failures_);
    Prune(now);
    failures_ = 0;
    next_refresh_ = now + options_.squeue_interval_s;
    snapshot_time_ = now;
    fresh_ = true;
    by_id_.clear();
    ids_by_name_.clear();
    const std::string prefix = options_.job_name_prefix + "-";
    std::istringstream lines(q.out);
    std::string line;
    while (std::getline(lines, line)) {
      // id|name|state|reason (the name may contain '|' only if someone else's job does: ignored)
      std::vector<std::string> f;
      std::stringstream ss(Trim(line));
      std::string item;
      while (std::getline(ss, item, '|')) f.push_back(item);
      if (f.size() < 3 || !ValidJobId(f[0]) || f[1].rfind(prefix, 0) != 0) continue;
      Entry e{f[0], f[1], f[2], f.size() > 3 ? f[3] : ""};
      by_id_[e.id] = e;
      ids_by_name_.emplace(e.name, e.id);
    }
    SendDeferredStops();
  }

  AttemptStatus Poll(const AttemptRef& ref) override {
    const std::string job_name = SlurmName(ref.name);
    std::string id = JobIdOf(ref.handle);
    AttemptStatus s;
    if (id.empty()) {
      // Never recorded: find it by name (the newest job of that name).
      if (!fresh_) return Unknown(job_name);
      auto range = ids_by_name_.equal_range(job_name);
      for (auto it = range.first; it != range.second; ++it)
        if (id.empty() || std::stoll(it->second) > std::stoll(id)) id = it->second;
      if (id.empty()) id = FindInAccounting(job_name);
      if (id.empty()) {
        auto u = unresolved_since_.find(job_name);
        if (u != unresolved_since_.end() && snapshot_time_ < u->second + options_.command_timeout_s) {
          return Unknown(job_name);  // sbatch may still be on its way to the controller
        }
        s.phase = AttemptStatus::Phase::kLost;
        s.detail = "no Slurm job named " + job_name + " (sbatch never reached the controller)";
        return s;
      }
      unresolved_since_.erase(job_name);
      s.handle = "slurm:" + id;
      spdlog::info("slurm: found {} as job {}", job_name, id);
    }
    AttemptStatus st = PollId(id, job_name, ref);
    if (!s.handle.empty()) st.handle = s.handle;
    return st;
  }

  void Stop(const AttemptRef& ref, bool force) override {
    // The program ended (the shim wrote its status, the last thing the batch script does): Slurm
    // ends the job and whatever is left of it by itself; a scancel would only mark it CANCELLED.
    if (!ref.status_path.empty() && contract::ReadExitRecord(ref.status_path)) return;
    const std::string id = JobIdOf(ref.handle);
    const std::string job_name = SlurmName(ref.name);
    if (failures_ > 0) {
      // The controller does not answer: scancel would wait for it too (seconds per job, e.g. for
      // every job that ended while it was down). Sent when it answers again, if the job is still there.
      bool& f = deferred_stops_[id.empty() ? "name:" + job_name : id];
      f = f || force;
      return;
    }
    if (!id.empty() && fresh_ && !Active(id)) {
      auto sub = submitted_.find(id);
      if (sub == submitted_.end() || sub->second <= snapshot_time_) return;  // left the queue: nothing to stop
    }
    Scancel(id, job_name, force);
  }

  int CancelStrays(const std::string& spec_name) override {
    std::string base;
    int n = 0;
    if (!fresh_ || !SplitAttempt(SlurmName(spec_name), &base, &n)) return 0;
    int cancelled = 0;
    for (const auto& [id, e] : by_id_) {
      std::string other_base;
      int m = 0;
      if (!SplitAttempt(e.name, &other_base, &m) || other_base != base || m >= n) continue;
      if (!IsQueuedState(e.state) && !IsRunningState(e.state)) continue;
      if (!stray_cancelled_.insert(id).second) continue;  // once per stray
      spdlog::warn("slurm: job {} ({}, {}) is an older attempt of {}: cancelling the stray", id, e.name, e.state,
                   SlurmName(spec_name));
      RunCommand({options_.scancel, id}, options_.command_timeout_s);
      ++cancelled;
    }
    return cancelled;
  }

  int squeue_calls() const { return squeue_calls_; }

 private:
  struct Entry {
    std::string id, name, state, reason;
  };

  std::string SlurmName(const std::string& spec_name) const { return options_.job_name_prefix + "-" + spec_name; }

  // scancel ID (force: --signal=KILL --full); without an id, every job of ours with that name.
  void Scancel(const std::string& id, const std::string& job_name, bool force) {
    std::vector<std::string> argv = {options_.scancel};
    if (force) argv.insert(argv.end(), {"--signal=KILL", "--full"});
    if (id.empty()) {
      argv.insert(argv.end(), {"--me", "--name=" + job_name});
    } else {
      argv.push_back(id);
    }
    CommandResult r = RunCommand(argv, options_.command_timeout_s);
    if (r.exit_code != kExitOk && r.err.find("already completing or completed") == std::string::npos &&
        r.err.find("Invalid job id") == std::string::npos) {
      spdlog::warn("slurm: scancel {} failed (exit {}): {}", argv.back(), r.exit_code, Trim(r.err).substr(0, 300));
    }
  }

  // In the last snapshot, queued or running.
  bool Active(const std::string& id) const {
    auto it = by_id_.find(id);
    return it != by_id_.end() && (IsQueuedState(it->second.state) || IsRunningState(it->second.state));
  }

  // Stops asked for while the controller did not answer, for the jobs still in the new snapshot.
  void SendDeferredStops() {
    for (const auto& [key, force] : deferred_stops_) {
      if (key.rfind("name:", 0) == 0) {
        const std::string job_name = key.substr(5);
        auto range = ids_by_name_.equal_range(job_name);
        if (std::any_of(range.first, range.second, [&](const auto& e) { return Active(e.second); }))
          Scancel("", job_name, force);
      } else if (Active(key)) {
        Scancel(key, "", force);
      }
    }
    deferred_stops_.clear();
  }

  // While the controller does not answer (or before the first answer): the last known status.
  AttemptStatus Unknown(const std::string& job_name) {
    AttemptStatus s;
    auto it = last_.find(job_name);
    if (it != last_.end()) {
      s = it->second;
    } else {
      s.phase = AttemptStatus::Phase::kQueued;
    }
    s.stale = true;
    return s;
  }

  AttemptStatus PollId(const std::string& id, const std::string& job_name, const AttemptRef& ref) {
    auto done = final_.find(id);
    if (done != final_.end()) return done->second.status;
    AttemptStatus s;
    auto it = fresh_ ? by_id_.find(id) : by_id_.end();
    if (!(it != by_id_.end() && IsQueuedState(it->second.state))) {
      // The shim writes its status when the program ended, the last thing the batch script does:
      // the job is done although Slurm may still show it (COMPLETING, or RUNNING until a node's
      // completion message reaches a restarted controller) or the controller does not answer.
      if (auto rec = contract::ReadExitRecord(ref.status_path)) {
        s.phase = AttemptStatus::Phase::kExited;
        s.exit_code = rec->exit_code;
        s.signal = rec->signal;
        if (it != by_id_.end() && !IsRunningState(it->second.state)) s.detail = "slurm state " + it->second.state;
        return Final(id, s);
      }
    }
    if (!fresh_) return Unknown(job_name);
    if (it != by_id_.end() && (IsQueuedState(it->second.state) || IsRunningState(it->second.state))) {
      const Entry& e = it->second;
      s.phase = IsQueuedState(e.state) ? AttemptStatus::Phase::kQueued : AttemptStatus::Phase::kRunning;
      s.queue_state = e.state;
      s.queue_reason = e.reason == "None" ? "" : e.reason;
      last_[job_name] = s;
      submitted_.erase(id);
      return s;
    }
    if (it == by_id_.end()) {
      auto sub = submitted_.find(id);
      if (sub != submitted_.end() && sub->second > snapshot_time_) return Unknown(job_name);  // not seen yet
    }
    const std::string state = it != by_id_.end() ? it->second.state : "";
    // Left the queue (or shown in a final state) without a status file (read above): sacct.
    CommandResult a =
        RunCommand({options_.sacct, "-n", "-P", "-X", "-j", id, "-o", "State,ExitCode"}, options_.command_timeout_s);
    std::string line = Trim(a.out.substr(0, a.out.find('\n')));
    if (a.exit_code == kExitOk && !line.empty()) {
      // "FAILED|1:0"
      auto bar = line.find('|');
      std::string st = line.substr(0, bar);
      s.phase = AttemptStatus::Phase::kExited;
      s.detail = "slurm state " + st;
      if (bar != std::string::npos) {
        std::string code = line.substr(bar + 1);
        auto colon = code.find(':');
        try {
          s.exit_code = std::stoi(code.substr(0, colon));
          if (colon != std::string::npos) s.signal = std::stoi(code.substr(colon + 1));
        } catch (const std::exception&) {
        }
      }
      if (st.rfind("COMPLETED", 0) != 0 && s.exit_code == kExitOk) s.exit_code = -1;
      return Final(id, s);
    }
    if (!state.empty()) {
      // A final state in squeue (kept for MinJobAge) without a status file: it never ran to the
      // end of the shim (cancelled while pending, node failure, time limit).
      s.phase = AttemptStatus::Phase::kExited;
      s.detail = "slurm state " + state + " (no " + ref.status_path + ")";
      return Final(id, s);
    }
    s.phase = AttemptStatus::Phase::kLost;
    s.detail = "slurm job " + id + " left the queue without writing " + ref.status_path + " (and sacct has no record)";
    return Final(id, s);
  }

  AttemptStatus Final(const std::string& id, const AttemptStatus& s) {
    final_[id] = {s, Now()};
    submitted_.erase(id);
    return s;
  }

  // Bookkeeping of jobs long gone (the coordinator polls an ended job a few times at most).
  void Prune(double now) {
    for (auto it = final_.begin(); it != final_.end();)
      it = now - it->second.when > 3600 ? final_.erase(it) : std::next(it);
    for (auto it = submitted_.begin(); it != submitted_.end();)
      it = now - it->second > 3600 ? submitted_.erase(it) : std::next(it);
    for (auto it = unresolved_since_.begin(); it != unresolved_since_.end();)
      it = now - it->second > 3600 ? unresolved_since_.erase(it) : std::next(it);
    if (last_.size() > 100000) last_.clear();
  }

  // A job of that name in the accounting (it ended before anyone recorded its id); "" if none.
  std::string FindInAccounting(const std::string& job_name) {
    CommandResult a =
        RunCommand({options_.sacct, "-n", "-P", "-X", "--name=" + job_name, "-S", "now-7days", "-o", "JobID"},
                   options_.command_timeout_s);
    if (a.exit_code != kExitOk) return "";
    std::string newest;
    std::istringstream lines(a.out);
    std::string line;
    while (std::getline(lines, line)) {
      line = Trim(line);
      if (ValidJobId(line) && (newest.empty() || std::stoll(line) > std::stoll(newest))) newest = line;
    }
    return newest;
  }

  LauncherOptions options_;
  // The last squeue snapshot (this user's jobs whose names start with the prefix).
  std::map<std::string, Entry> by_id_;
  std::multimap<std::string, std::string> ids_by_name_;
  double snapshot_time_ = 0;
  bool fresh_ = false;  // the last squeue answered
  int failures_ = 0;
  double next_refresh_ = 0;
  int squeue_calls_ = 0;
  std::map<std::string, double> submitted_;         // job id -> when sbatch returned it
  std::map<std::string, double> unresolved_since_;  // job name -> when its sbatch failed without answer
  struct Ended {
    AttemptStatus status;
    double when = 0;
  };
  std::map<std::string, Ended> final_;         // job id -> how it ended (asked once)
  std::map<std::string, AttemptStatus> last_;  // job name -> last status seen in squeue
  std::set<std::string> stray_cancelled_;
  std::map<std::string, bool> deferred_stops_;  // job id (or "name:<job name>") -> force
};

}  // namespace

std::unique_ptr<Launcher> MakeSlurmLauncher(const LauncherOptions& options) {
  return std::make_unique<SlurmLauncher>(options);
}

}  // namespace vicreg::server
