#include "server/cli/client.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/errors.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/cli/format.h"

namespace vicreg::cli {

Client::Client(ClientOptions options) : options_(std::move(options)) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options_.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options_.tls_ca.empty()) {
      std::ifstream f(options_.tls_ca);
      if (!f) throw UserError("--tls-ca " + options_.tls_ca + ": cannot read the file");
      std::stringstream ss;
      ss << f.rdbuf();
      ssl.pem_root_certs = ss.str();
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  channel_ = grpc::CreateCustomChannel(options_.server, creds, args);
  stub_ = v1::Coordinator::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::Context(double timeout_s) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (timeout_s > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  }
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
  return ctx;
}

const char* StatusCodeName(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

int ExitCodeFor(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::OK: return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE: return kExitUsage;
    case grpc::StatusCode::NOT_FOUND: return kExitNotFound;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED: return kExitAuth;
    default: return kExitFailed;
  }
}

std::vector<std::pair<std::string, std::string>> FieldViolations(const grpc::Status& s) {
  std::vector<std::pair<std::string, std::string>> out;
  if (s.error_details().empty()) return out;
  google::rpc::Status details;
  if (!details.ParseFromString(s.error_details())) return out;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    if (!any.Is<google::rpc::BadRequest>() || !any.UnpackTo(&bad)) continue;
    for (const auto& v : bad.field_violations()) out.emplace_back(v.field(), v.description());
  }
  return out;
}

int ReportError(const std::string& what, const grpc::Status& s) {
  const auto fields = FieldViolations(s);
  if (!fields.empty()) {
    // One line per violated field (from the standard google.rpc.BadRequest details); the message
    // repeats them, so only its first line is shown.
    std::string head = s.error_message().substr(0, s.error_message().find('\n'));
    std::cerr << "vicregctl: " << TerminalSafe(what) << ": " << StatusCodeName(s.error_code()) << ": "
              << TerminalSafe(head, false) << "\n";
    for (const auto& [field, description] : fields) {
      std::cerr << "  " << TerminalSafe(field, false) << ": " << TerminalSafe(description, false) << "\n";
    }
    return ExitCodeFor(s);
  }
  std::string msg = s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) msg += " (is vicreg_coordinator running there? see --server)";
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) msg += " (raise --timeout?)";
  std::cerr << "vicregctl: " << TerminalSafe(what) << ": " << StatusCodeName(s.error_code()) << ": " << TerminalSafe(msg)
            << "\n";
  return ExitCodeFor(s);
}

}  // namespace vicreg::cli
