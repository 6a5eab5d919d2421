// The Slurm launcher against a real single-node Slurm (slurmctld + slurmd, auth/none, private
// ports and state under a temp dir) started by the test: a 2-rank job of the real worker through
// sbatch + `srun --mpi=pmix`, its logs, and a cancel through scancel. Skipped (with the reason)
// when Slurm is not installed or does not come up.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "server/process.h"
#include "tests/server/test_util.h"

namespace vicreg {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

class SlurmCluster {
 public:
  explicit SlurmCluster(const std::string& dir) : dir_(dir) {}
  ~SlurmCluster() {
    // Jobs first (SLURM_CONF points at this cluster), then the daemons.
    if (slurmctld_.pid > 0) server::RunCommand({"scancel", "--full", "--signal=KILL", "-u", "root"}, 10);
    for (auto* p : {&slurmd_, &slurmctld_}) {
      if (p->pid > 0) {
        server::SignalSessionOf(*p, SIGTERM);
        for (int i = 0; i < 100 && !server::TryReap(p->pid); ++i) usleep(50000);
        server::SignalSessionOf(*p, SIGKILL);
        server::TryReap(p->pid);
      }
    }
  }
  // "" when the cluster is up, else why not.
  std::string Start() {
    for (const char* b : {"slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun", "sinfo"}) {
      if (server::FindInPath(b).empty() && access((std::string("/usr/sbin/") + b).c_str(), X_OK) != 0)
        return std::string(b) + " is not installed (apt-get install slurm-wlm)";
    }
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    server::CommandResult node = server::RunCommand({"/usr/sbin/slurmd", "-C"}, 30);
    std::string node_line = node.out.substr(0, node.out.find('\n'));
    if (node.exit_code != 0 || node_line.rfind("NodeName=", 0) != 0) return "slurmd -C failed: " + node.err;
    for (const char* sub : {"/state", "/spool", "/log"}) server::RunCommand({"/bin/mkdir", "-p", dir_ + sub}, 10);
    std::ostringstream conf;
    conf << "ClusterName=vicregtest\n"
         << "SlurmctldHost=" << host << "(127.0.0.1)\n"
         << "SlurmctldPort=" << FreePort() << "\nSlurmdPort=" << FreePort() << "\n"
         << "SlurmUser=root\nSlurmdUser=root\n"
         << "AuthType=auth/none\nCredType=cred/none\n"
         << "StateSaveLocation=" << dir_ << "/state\nSlurmdSpoolDir=" << dir_ << "/spool\n"
         << "SlurmctldPidFile=" << dir_ << "/slurmctld.pid\nSlurmdPidFile=" << dir_ << "/slurmd.pid\n"
         << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\nSlurmdLogFile=" << dir_ << "/log/slurmd.log\n"
         << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
         << "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nSchedulerType=sched/backfill\n"
         << "MpiDefault=none\nReturnToService=2\nJobAcctGatherType=jobacct_gather/none\n"
         << "AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n"
         << "KillWait=5\nMinJobAge=300\n"
         << node_line << " State=UNKNOWN\n"
         << "PartitionName=debug Nodes=" << host << " Default=YES MaxTime=INFINITE State=UP\n";
    conf_ = dir_ + "/slurm.conf";
    testutil::WriteText(conf_, conf.str());
    setenv("SLURM_CONF", conf_.c_str(), 1);
    server::SpawnOptions so;
    so.argv = {"/usr/sbin/slurmctld", "-D", "-i", "-f", conf_};
    so.output_path = dir_ + "/log/slurmctld.out";
    slurmctld_ = server::Spawn(so);
    so.argv = {"/usr/sbin/slurmd", "-D", "-f", conf_};
    so.output_path = dir_ + "/log/slurmd.out";
    slurmd_ = server::Spawn(so);
    bool idle = testutil::WaitFor(
        [&] {
          auto r = server::RunCommand({"sinfo", "-h", "-o", "%t"}, 10);
          return r.exit_code == 0 && r.out.find("idle") != std::string::npos;
        },
        30);
    if (!idle) {
      return "the test's Slurm did not become idle in 30 s; slurmctld log:\n" +
             testutil::ReadText(dir_ + "/log/slurmctld.log").substr(0, 3000) + "\nslurmd log:\n" +
             testutil::ReadText(dir_ + "/log/slurmd.log").substr(0, 3000);
    }
    return "";
  }

 private:
  std::string dir_, conf_;
  server::ProcessRef slurmctld_, slurmd_;
};

TEST(SlurmLauncherTest, RunsAndCancelsJobsThroughSbatchAndSrun) {
  ASSERT_EQ(access(testutil::RealWorkerBinary().c_str(), X_OK), 0) << testutil::RealWorkerBinary();
  testutil::TempDir dir("slurm");
  SlurmCluster cluster(dir.path() + "/slurm");
  std::string why = cluster.Start();
  if (!why.empty()) GTEST_SKIP() << "no single-node Slurm: " << why;

  testutil::Coordinator c(dir.path() + "/state",
                          {"--launcher", "slurm", "--slots", "2", "--worker-binary", testutil::RealWorkerBinary(),
                           "--eval-binary", "off", "--poll-interval", "0.3", "--stop-grace", "5"});
  c.Start();
  std::string tiny = testutil::SourceDir() + "/configs/tiny_cpu.yaml";
  auto r = c.Ctl({"submit", tiny, "--set", "resources.ranks=2", "--wait"}, 600);
  std::string id = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\n"
                            << c.log() << "\nlauncher log:\n"
                            << testutil::ReadText(c.RunDir(id) + "/logs/launcher.log");
  v1::Job job = c.Get(id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  ASSERT_EQ(job.attempts_size(), 1);
  EXPECT_EQ(job.attempts(0).launcher(), "slurm");
  EXPECT_EQ(job.attempts(0).handle().rfind("slurm:", 0), 0u) << job.attempts(0).handle();
  EXPECT_EQ(job.attempts(0).exit_code(), 0);
  auto logs = c.Ctl({"logs", id});
  EXPECT_NE(logs.out.find("[rank 0] "), std::string::npos) << logs.out.substr(0, 2000);
  EXPECT_NE(logs.out.find("[rank 1] "), std::string::npos) << logs.out.substr(0, 2000);
  // The generated batch script quotes every argument.
  std::string script = testutil::ReadText(c.RunDir(id) + "/attempts/1/job.sbatch");
  EXPECT_NE(script.find("'srun' '--mpi=pmix'"), std::string::npos) << script;

  // Cancel goes through scancel: the Slurm job leaves the queue.
  std::string long_id = c.Ctl({"submit", tiny, "--set", "resources.ranks=2", "--set", "train.num_epochs=200"}).out;
  long_id = long_id.substr(0, long_id.find('\n'));
  ASSERT_TRUE(testutil::WaitFor([&] { return c.Get(long_id).state() == v1::RUNNING; }, 120)) << c.log();
  std::string slurm_id = c.Get(long_id).attempts(0).handle().substr(6);
  auto cancel = c.Ctl({"cancel", long_id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(c.Get(long_id).state(), v1::CANCELLED);
  EXPECT_TRUE(testutil::WaitFor(
      [&] {
        auto q = server::RunCommand({"squeue", "-h", "-j", slurm_id, "-o", "%T"}, 10);
        return q.out.find("RUNNING") == std::string::npos && q.out.find("PENDING") == std::string::npos &&
               q.out.find("COMPLETING") == std::string::npos;
      },
      60));
}

}  // namespace
}  // namespace vicreg
