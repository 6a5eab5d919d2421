// Scheduler: all-or-nothing placement, priority then FIFO, strict head-of-line blocking,
// pending reasons, never-placeable jobs, GPU placements.
#include "server/scheduler.h"

#include <gtest/gtest.h>

namespace vicreg::server {
namespace {

Scheduler Cpu(int n) {
  SchedulerOptions o;
  o.kind = SlotKind::kCpu;
  for (int i = 0; i < n; ++i) o.slots.push_back(i);
  return Scheduler(o);
}

TEST(SchedulerTest, PlacesWholeGangsOnly) {
  Scheduler s = Cpu(2);
  auto d = s.Schedule({{"a", 2, 0, 1}, {"b", 2, 0, 2}});
  ASSERT_EQ(d.placements.size(), 1u);
  EXPECT_EQ(d.placements[0].first, "a");
  EXPECT_EQ(d.placements[0].second, (std::vector<int>{0, 1}));
  EXPECT_EQ(s.free_count(), 0);
  ASSERT_TRUE(d.pending.count("b"));
  EXPECT_EQ(d.pending["b"], "waiting for 2 slots, 0 free (a holds 2)");
  // Nothing changes until a is released; then b gets both slots.
  EXPECT_TRUE(s.Schedule({{"b", 2, 0, 2}}).placements.empty());
  s.Release("a");
  auto d2 = s.Schedule({{"b", 2, 0, 2}});
  ASSERT_EQ(d2.placements.size(), 1u);
  EXPECT_EQ(d2.placements[0].first, "b");
}

TEST(SchedulerTest, NeverSplitsAJobAcrossPartialFreeSlots) {
  Scheduler s = Cpu(3);
  ASSERT_EQ(s.Schedule({{"one", 1, 0, 1}}).placements.size(), 1u);
  auto d = s.Schedule({{"three", 3, 0, 2}});
  EXPECT_TRUE(d.placements.empty());
  EXPECT_EQ(s.free_count(), 2);  // nothing partially reserved
  EXPECT_EQ(d.pending["three"], "waiting for 3 slots, 2 free (one holds 1)");
}

TEST(SchedulerTest, PriorityThenFifoWithStrictHeadOfLine) {
  Scheduler s = Cpu(2);
  ASSERT_EQ(s.Schedule({{"running", 1, 0, 1}}).placements.size(), 1u);
  // 1 slot free. Queue: low-priority 1-rank (older), high-priority 2-rank (newer), another high 1-rank.
  auto d = s.Schedule({{"low", 1, 0, 2}, {"high2", 2, 5, 3}, {"high1", 1, 5, 4}});
  // high2 is the head (priority 5, older than high1) and does not fit: nobody passes it.
  EXPECT_TRUE(d.placements.empty());
  EXPECT_EQ(d.pending["high2"], "waiting for 2 slots, 1 free (running holds 1)");
  EXPECT_EQ(d.pending["high1"], "queued behind high2 (priority 5, waiting for 2 slots, 1 free (running holds 1))");
  EXPECT_NE(d.pending["low"].find("queued behind high2"), std::string::npos);
  s.Release("running");
  auto d2 = s.Schedule({{"low", 1, 0, 2}, {"high2", 2, 5, 3}, {"high1", 1, 5, 4}});
  ASSERT_EQ(d2.placements.size(), 1u);
  EXPECT_EQ(d2.placements[0].first, "high2");
  EXPECT_EQ(d2.pending.count("high1"), 1u);
}

TEST(SchedulerTest, FifoWithinPriorityPlacesSeveral) {
  Scheduler s = Cpu(4);
  auto d = s.Schedule({{"c", 1, 0, 30}, {"a", 1, 0, 10}, {"b", 2, 0, 20}, {"d", 1, 0, 40}});
  ASSERT_EQ(d.placements.size(), 3u);
  EXPECT_EQ(d.placements[0].first, "a");
  EXPECT_EQ(d.placements[1].first, "b");
  EXPECT_EQ(d.placements[2].first, "c");
  EXPECT_EQ(d.placements[1].second, (std::vector<int>{1, 2}));
  EXPECT_EQ(d.pending["d"], "waiting for 1 slot, 0 free (a holds 1, b holds 2, c holds 1)");
}

TEST(SchedulerTest, ReportsJobsThatCanNeverBePlaced) {
  Scheduler s = Cpu(2);
  EXPECT_EQ(s.WhyNeverPlaceable(2), "");
  std::string why = s.WhyNeverPlaceable(3);
  EXPECT_NE(why.find("needs 3 slots"), std::string::npos) << why;
  EXPECT_NE(why.find("only 2 CPU slots"), std::string::npos) << why;
  EXPECT_NE(why.find("never"), std::string::npos) << why;
}

TEST(SchedulerTest, GpuSlotsAreIndicesAndReservationsAreExclusive) {
  SchedulerOptions o;
  o.kind = SlotKind::kGpu;
  o.slots = {2, 3, 5};
  Scheduler s(o);
  auto d = s.Schedule({{"a", 2, 0, 1}});
  ASSERT_EQ(d.placements.size(), 1u);
  EXPECT_EQ(s.PlacementString(d.placements[0].second), "gpu:2,3");
  EXPECT_EQ(Scheduler::JoinSlots(d.placements[0].second), "2,3");
  EXPECT_FALSE(s.Reserve("b", {3}));  // held by a
  EXPECT_FALSE(s.Reserve("b", {4}));  // not a slot
  EXPECT_TRUE(s.Reserve("b", {5}));
  EXPECT_TRUE(s.Reserve("a", {2, 3}));  // idempotent for the holder
  EXPECT_EQ(s.free_count(), 0);
  EXPECT_EQ(s.HeldBy("a"), (std::vector<int>{2, 3}));
  EXPECT_NE(s.WhyNeverPlaceable(4).find("--gpus 2,3,5"), std::string::npos);
}

TEST(SchedulerTest, PlacementStringsRoundTrip) {
  EXPECT_EQ(Scheduler::ParsePlacement("cpu:0,1"), (std::vector<int>{0, 1}));
  EXPECT_EQ(Scheduler::ParsePlacement("gpu:7"), (std::vector<int>{7}));
  EXPECT_FALSE(Scheduler::ParsePlacement("tpu:0"));
  EXPECT_FALSE(Scheduler::ParsePlacement("cpu:0,,1"));
  EXPECT_FALSE(Scheduler::ParsePlacement("cpu:-1"));
  EXPECT_FALSE(Scheduler::ParsePlacement("0,1"));
}

// With a cluster that places the ranks (Slurm), slots only cap the jobs handed to it: one per job,
// whatever its ranks; never "can never be placed" for lack of local slots.
TEST(SchedulerTest, ClusterSubmissionSlotsCountJobsNotRanks) {
  SchedulerOptions o;
  o.kind = SlotKind::kCluster;
  o.slots = {0, 1};
  Scheduler s(o);
  EXPECT_EQ(s.WhyNeverPlaceable(4096), "");
  auto d = s.Schedule({{"a", 512, 0, 1}, {"b", 64, 0, 2}, {"c", 1, 0, 3}});
  ASSERT_EQ(d.placements.size(), 2u);
  EXPECT_EQ(d.placements[0].second, (std::vector<int>{0}));
  EXPECT_EQ(s.PlacementString(d.placements[0].second), "cluster:0");
  EXPECT_EQ(d.pending["c"], "waiting for a submission slot: 2 jobs are in the cluster (this coordinator's cap)");
  EXPECT_EQ(Scheduler::ParsePlacement("cluster:1"), (std::vector<int>{1}));
}

}  // namespace
}  // namespace vicreg::server
