// Domain errors of the coordinator, each mapped to one gRPC status code by the service layer
// (server/service.cc). Thrown by the store, the job manager and request validation.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::server {

enum class ErrorCode {
  kInvalidArgument,     // bad spec / id / token / filter          -> INVALID_ARGUMENT
  kNotFound,            // unknown job or eval                      -> NOT_FOUND
  kFailedPrecondition,  // job can never be placed                  -> FAILED_PRECONDITION
  kAlreadyExists,       // client_request_id reused, other spec     -> ALREADY_EXISTS
  kResourceExhausted,   // request over a configured limit          -> RESOURCE_EXHAUSTED
  kUnauthenticated,     // missing / wrong bearer token             -> UNAUTHENTICATED
  kInternal,            // store failure, broken invariant          -> INTERNAL
};

struct FieldViolation {
  std::string field;        // "train.batch_size"
  std::string description;  // "must be > 0, got -1"
};

class ServiceError : public std::runtime_error {
 public:
  ServiceError(ErrorCode code, std::string message, std::vector<FieldViolation> fields = {})
      : std::runtime_error(std::move(message)), code_(code), fields_(std::move(fields)) {}
  ErrorCode code() const { return code_; }
  const std::vector<FieldViolation>& fields() const { return fields_; }

 private:
  ErrorCode code_;
  std::vector<FieldViolation> fields_;
};

}  // namespace vicreg::server
