// The standard Prometheus process metrics (the names every client library exports), read from /proc
// at each scrape and appended to every /metrics a MetricsServer serves (worker ranks, coordinator):
//   process_cpu_seconds_total        user + system CPU time (/proc/self/stat utime + stime)
//   process_resident_memory_bytes    resident set size (/proc/self/stat rss x page size)
//   process_virtual_memory_bytes     virtual memory size (/proc/self/stat vsize)
//   process_start_time_seconds       start time, Unix seconds (/proc/self/stat starttime + /proc/stat btime)
//   process_open_fds                 open file descriptors (entries of /proc/self/fd)
//   process_max_fds                  the RLIMIT_NOFILE soft limit
// prometheus-cpp has no process collector; a family whose source cannot be read is left out.
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

namespace vicreg::metrics {

std::vector<prometheus::MetricFamily> ProcessMetricFamilies();

}  // namespace vicreg::metrics
