#include "server/cli/checkpoints.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/sha256.h"
#include "server/cli/format.h"

namespace vicreg::cli {
namespace {

std::string Size(int64_t bytes) {
  char buf[32];
  if (bytes >= (1LL << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(bytes));
  return buf;
}

}  // namespace

int ListCheckpoints(Client& client, bool json, const std::string& job_id) {
  v1::ListCheckpointsRequest req;
  req.set_job_id(job_id);
  v1::ListCheckpointsResponse resp;
  auto ctx = client.Context();
  grpc::Status st = client.stub().ListCheckpoints(ctx.get(), req, &resp);
  if (!st.ok()) return ReportError("checkpoints " + job_id, st);
  if (json) {
    std::cout << ToJson(resp, true) << std::endl;
    return kExitOk;
  }
  if (resp.checkpoints_size() == 0) {
    std::cout << "no checkpoints for " << job_id << " yet\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : resp.checkpoints()) {
    std::string evals;
    for (const auto& r : c.evals()) {
      if (r.model() != "vicreg") continue;  // the reference rows are in `vicregctl eval`
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %s %.2f%%", evals.empty() ? "" : ", ", r.dataset().c_str(),
                    r.probe().c_str(), 100 * r.top1());
      evals += buf;
    }
    rows.push_back({std::to_string(c.epoch()), std::to_string(c.global_step()), c.kind(), Size(c.size_bytes()),
                    Timestamp(TimeOf(c, "created_time", "")), c.latest() ? "yes" : "-", evals.empty() ? "-" : evals});
  }
  std::cout << RenderTable({"EPOCH", "STEP", "KIND", "SIZE", "CREATED", "LATEST", "EVAL (top-1)"}, rows);
  return kExitOk;
}

int ExportEncoder(Client& client, bool json, const std::string& job_id, int epoch, std::string out, double timeout_s) {
  v1::ExportEncoderRequest req;
  req.set_job_id(job_id);
  req.set_epoch(epoch);
  auto ctx = client.Context(timeout_s);
  auto reader = client.stub().ExportEncoder(ctx.get(), req);
  // Into a temporary file beside the output (created once the first chunk arrives), renamed at the end.
  std::string tmp;
  std::ofstream f;
  Sha256 sha;
  int64_t received = 0, next_report = 64LL << 20;
  v1::ExportChunk chunk, last;
  bool got_last = false;
  auto open_tmp = [&](const std::string& name) {
    if (out.empty()) out = name;
    tmp = out + ".part-" + std::to_string(getpid());
    f.open(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw UserError("-o " + out + ": cannot write " + tmp + " (does the directory exist?)");
  };
  auto fail = [&](const std::string& why) {
    if (f.is_open()) f.close();
    if (!tmp.empty()) std::remove(tmp.c_str());
    std::cerr << "vicregctl: export " << job_id << " epoch " << epoch << ": " << why << " (nothing written)\n";
    return kExitFailed;
  };
  while (reader->Read(&chunk)) {
    if (tmp.empty()) {
      char stem[64];
      std::snprintf(stem, sizeof stem, "-epoch_%04d-encoder.safetensors", epoch);
      open_tmp(job_id + stem);
    }
    if (chunk.offset() != received) {
      ctx->TryCancel();
      return fail("chunk at offset " + std::to_string(chunk.offset()) + " after " + std::to_string(received) +
                  " bytes: the stream is out of order");
    }
    if (!chunk.data().empty()) {
      f.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      sha.Update(chunk.data().data(), chunk.data().size());
      received += static_cast<int64_t>(chunk.data().size());
      if (received >= next_report && !json) {
        std::cerr << "export: " << Size(received) << " received\n";
        next_report += 64LL << 20;
      }
    }
    if (chunk.last()) {
      last = chunk;
      got_last = true;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    if (f.is_open()) f.close();
    if (!tmp.empty()) std::remove(tmp.c_str());
    return ReportError("export " + job_id, st);
  }
  if (!got_last) return fail("the stream ended without its final message (size and checksum)");
  const std::string digest = sha.HexDigest();
  if (received != last.total_bytes()) {
    return fail("received " + std::to_string(received) + " bytes, the coordinator sent " +
                std::to_string(last.total_bytes()));
  }
  if (digest != last.sha256()) return fail("SHA-256 " + digest + " differs from the coordinator's " + last.sha256());
  f.flush();
  if (!f) return fail("cannot write " + tmp);
  f.close();
  if (int fd = ::open(tmp.c_str(), O_RDONLY); fd >= 0) {
    ::fsync(fd);  // the data is on disk before the name appears
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) return fail("cannot rename " + tmp + " to " + out);
  if (json) {
    std::cout << nlohmann::json(
                     {{"file", out}, {"bytes", received}, {"sha256", digest}, {"job_id", job_id}, {"epoch", epoch}})
                     .dump()
              << std::endl;
  } else {
    std::cout << "wrote " << out << " (" << Size(received) << ", sha256 " << digest << "): the encoder of " << job_id
              << " epoch " << epoch << " (safetensors, timm keys)" << std::endl;
  }
  return kExitOk;
}

}  // namespace vicreg::cli
