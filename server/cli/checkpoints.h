// vicregctl checkpoints / export: a job's checkpoints (with the evaluation results of their epoch)
// and an epoch's encoder fetched through the coordinator (ExportEncoder: streamed in chunks, the
// SHA-256 and size of the last message verified, the file written atomically).
#pragma once

#include <string>

#include "server/cli/client.h"

namespace vicreg::cli {

// Table (EPOCH, STEP, KIND, SIZE, CREATED, LATEST, EVAL) or, json, the ListCheckpointsResponse.
int ListCheckpoints(Client& client, bool json, const std::string& job_id);
// Writes the encoder of `epoch` to `out` ("" = the name the coordinator suggests); 0 ok, 1 when the
// stream broke or the checksum differs (nothing written), 2/3/4 as the coordinator's status maps.
int ExportEncoder(Client& client, bool json, const std::string& job_id, int epoch, std::string out,
                  double timeout_s);

}  // namespace vicreg::cli
