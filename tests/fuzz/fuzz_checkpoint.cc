// Checkpoint manifests and archives (worker/train/checkpoint.cc) as the trainer meets them in a
// run dir: <dir>/epoch_0001.pt, its manifest <dir>/epoch_0001.json and <dir>/latest. Input: one
// mode byte, a 2-byte-length-prefixed manifest, then the archive bytes. In "matching manifest"
// mode the harness writes a manifest with the archive's true size and CRC32, so the archive
// itself (torch's pickle/zip reader and the key checks) is reached. Then CheckpointManager::List,
// Load and Resume("auto"). Promise checked: a bad checkpoint is a UserError, never another
// exception or a crash.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/errors.h"
#include "common/fs.h"
#include "tests/fuzz/fuzz_util.h"
#include "worker/train/checkpoint.h"

namespace fz = vicreg::fuzz;
namespace train = vicreg::train;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  fz::Bytes in(bytes, size);
  const uint8_t mode = in.U8();
  std::string manifest(in.Chunk());
  std::string archive(in.Rest());
  const std::string dir = fz::FreshDir("ckpt");
  if (mode & 1) {
    nlohmann::json m = {{"file", "epoch_0001.pt"}, {"bytes", archive.size()},   {"crc32", vicreg::fs::Crc32(archive)},
                        {"epoch", 1},              {"global_step", mode >> 4}, {"kind", "epoch"},
                        {"format", train::kCheckpointFormat}};
    manifest = m.dump();
  }
  fz::WriteFile(dir + "/epoch_0001.pt", archive);
  if (!(mode & 2)) fz::WriteFile(dir + "/epoch_0001.json", manifest);
  fz::WriteFile(dir + "/latest", "epoch_0001.pt\n");
  try {
    train::CheckpointManager mgr({dir, 3, {}});
    (void)mgr.List();
    (void)mgr.Latest();
    if (mode & 4) {
      (void)mgr.Resume("auto");
    } else {
      (void)train::CheckpointManager::Load(dir + "/epoch_0001.pt", !(mode & 2));
    }
  } catch (const vicreg::UserError&) {
    return 0;
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING(std::string("checkpoint loading threw a non-UserError: ") + e.what());
  }
  return 0;
}
