// The coordinator's torch-free view of a run's checkpoints: the manifests the worker writes beside
// each complete checkpoint (<run>/checkpoints/<stem>.json: file, bytes, crc32, epoch, global_step,
// kind, created; worker/train/checkpoint.h), the file `latest` names, and the encoder export that
// runs `vicreg_eval export` as a child process (argv array, output under the run dir).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vicreg::server {

struct CheckpointFile {
  std::string file;  // "epoch_0003.pt"
  std::string kind;  // epoch | step
  int64_t epoch = 0;
  int64_t global_step = 0;
  int64_t bytes = 0;
  double created_unix = 0;  // the manifest's "created" (UTC), else the archive's mtime
  bool latest = false;
};

// Complete checkpoints (manifest parseable, archive present) of checkpoints_dir, by global_step then
// step before epoch checkpoints; [] when the directory does not exist. Malformed manifests are skipped.
std::vector<CheckpointFile> ListCheckpointFiles(const std::string& checkpoints_dir);

// Runs `eval_binary export --checkpoint CKPT --out OUT` (no shell) and waits for it (timeout_s).
// Throws std::runtime_error with the exit status and the tail of its output when it fails.
void ExportEncoderFile(const std::string& eval_binary, const std::string& checkpoint, const std::string& out,
                       double timeout_s);

}  // namespace vicreg::server
