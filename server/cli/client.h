// vicregctl's connection to the coordinator: channel (plaintext or TLS), bearer token, deadlines,
// and the mapping of gRPC status codes to vicregctl's exit codes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "vicreg/v1/coordinator.grpc.pb.h"

namespace vicreg::cli {

// Exit codes (vicregctl --help lists them): the codes of every binary (common/errors.h), plus two.
constexpr int kExitOk = vicreg::kExitOk;
constexpr int kExitFailed = vicreg::kExitFailure;  // the job failed/was cancelled, or a runtime/connection error
constexpr int kExitUsage = vicreg::kExitUsage;     // bad usage, or the coordinator rejected the request as invalid
constexpr int kExitNotFound = 3;  // unknown job / eval
constexpr int kExitAuth = 4;      // missing or wrong token

struct ClientOptions {
  std::string server = "127.0.0.1:50051";
  std::string token;  // "" = none
  bool tls = false;
  std::string tls_ca;     // PEM roots ("" = system roots) when tls
  double timeout_s = 10;  // deadline of unary calls
};

class Client {
 public:
  explicit Client(ClientOptions options);
  v1::Coordinator::Stub& stub() { return *stub_; }
  // A context with the token and a deadline (timeout_s; <= 0 = none).
  std::unique_ptr<grpc::ClientContext> Context(double timeout_s) const;
  std::unique_ptr<grpc::ClientContext> Context() const { return Context(options_.timeout_s); }
  const ClientOptions& options() const { return options_; }

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

int ExitCodeFor(const grpc::Status& s);
const char* StatusCodeName(grpc::StatusCode c);
// The field violations (field, description) of the google.rpc.BadRequest in the status details.
std::vector<std::pair<std::string, std::string>> FieldViolations(const grpc::Status& s);
// "vicregctl: <CODE>: message" on stderr, then "  field: description" for each violated field of
// the status details (the message's first line only when there are fields); returns ExitCodeFor(s).
int ReportError(const std::string& what, const grpc::Status& s);

}  // namespace vicreg::cli
