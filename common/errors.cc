#include "common/errors.h"

#include <sstream>

namespace vicreg {

namespace {
std::string FormatItems(const std::string& source, const std::vector<ConfigError::Item>& items) {
  std::ostringstream os;
  os << source << ": " << items.size() << (items.size() == 1 ? " problem" : " problems");
  for (const auto& it : items) os << "\n  " << it.field << ": " << it.message;
  return os.str();
}
}  // namespace

ConfigError::ConfigError(std::string source, std::vector<Item> items)
    : UserError(FormatItems(source, items)), source_(std::move(source)), items_(std::move(items)) {}

namespace detail {
void ThrowInternal(const char* file, int line, const char* cond, const std::string& msg) {
  std::ostringstream os;
  os << file << ":" << line << ": check `" << cond << "` failed";
  if (!msg.empty()) os << ": " << msg;
  throw InternalError(os.str());
}
}  // namespace detail

}  // namespace vicreg
