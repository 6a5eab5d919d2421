// Human-readable rendering for vicregctl: tables, durations, timestamps, progress bars.
#pragma once

#include <string>
#include <vector>

#include "vicreg/v1/coordinator.pb.h"

namespace vicreg::cli {

// Text from the coordinator (job logs, last_error, event messages, causes) made safe to print on a
// terminal: escape sequences (CSI "ESC [ ... final", OSC "ESC ] ... BEL|ESC \\", other "ESC x")
// are removed, other C0/C1 control characters and DEL become '?'. Newlines are kept, tabs too
// (keep_newlines false turns newlines into spaces); valid UTF-8 text is unchanged.
std::string TerminalSafe(const std::string& s, bool keep_newlines = true);

// Column-aligned table (cells made TerminalSafe, one line each); the last column is not padded.
std::string RenderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// 3725 -> "1h02m05s", 65 -> "1m05s", 4.2 -> "4s"; negative/0 -> "-".
std::string Duration(double seconds);
// Local time "2026-11-28 12:00:01"; 0 -> "-".
std::string Timestamp(double unix_s);
// A time field of a coordinator message in seconds since the epoch (0 = never): the Timestamp
// field `name`_time (e.g. "created" -> created_time; JobEvent's is "time") when the coordinator
// set it, else the deprecated double `legacy` (e.g. "created_unix") that older coordinators send.
double TimeOf(const google::protobuf::Message& m, const std::string& time_field, const std::string& legacy_field);
std::string StateName(v1::JobState s);
std::string EvalStateName(v1::EvalTask::State s);
// "step 120/400 (30%), epoch 2/5, loss 12.3456, 3.2 steps/s, 123 img/s, ETA 1m27s" ("" when no progress).
std::string ProgressLine(const v1::Progress& p);
// A job waiting in the cluster's queue: "PENDING (Resources) for 5m12s"; "" otherwise.
std::string ClusterWait(const v1::Job& j, double now_unix);
// "[#######.......]  45%" of width `width` (including brackets).
std::string ProgressBar(const v1::Progress& p, int width);
// Proto message as JSON (field names as in the .proto, defaults printed).
std::string ToJson(const google::protobuf::Message& m, bool pretty);

}  // namespace vicreg::cli
