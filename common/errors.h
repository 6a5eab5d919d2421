// Error types shared by every binary, and the internal-check macro.
//
//   UserError      bad input a user controls (config, flag, dataset file, checkpoint) -> exit 2
//   ConfigError    a UserError carrying one or more field errors
//   RuntimeFailure something failed at run time (peer died, disk full, non-finite loss) -> exit 1
//   InternalError  a broken invariant (VICREG_CHECK), with file:line -> exit 1
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vicreg {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ConfigError : public UserError {
 public:
  struct Item {
    std::string field;
    std::string message;
  };
  ConfigError(std::string source, std::vector<Item> items);
  const std::string& source() const { return source_; }
  const std::vector<Item>& items() const { return items_; }

 private:
  std::string source_;
  std::vector<Item> items_;
};

class RuntimeFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] void ThrowInternal(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

// Exit codes of every binary (README.md "Command-line interface").
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

}  // namespace vicreg

// VICREG_CHECK(cond, "message " + std::to_string(x)): throws InternalError("file:line: check `cond` failed: message").
#define VICREG_CHECK(cond, ...)                                                                        \
  do {                                                                                                 \
    if (!(cond)) ::vicreg::detail::ThrowInternal(__FILE__, __LINE__, #cond, std::string(__VA_ARGS__)); \
  } while (0)
