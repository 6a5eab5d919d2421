// safetensors headers (common/safetensors.cc): ParseHeader on a whole file's bytes, then every
// tensor's bytes. Promises checked: a bad file is a UserError; an accepted header describes
// tensors whose byte count is exactly numel * dtype size (no wrap-around) inside the file.
#include <cstdint>
#include <string>

#include "common/errors.h"
#include "common/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace st = vicreg::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  st::Header h;
  try {
    h = st::ParseHeader(bytes, "fuzz.safetensors");
  } catch (const vicreg::UserError&) {
    return 0;
  } catch (const std::exception& e) {
    VICREG_FUZZ_FINDING(std::string("ParseHeader threw a non-UserError: ") + e.what());
  }
  for (const auto& t : h.tensors) {
    unsigned __int128 want = 1;
    for (int64_t d : t.shape) want *= static_cast<unsigned __int128>(d);
    want *= static_cast<unsigned __int128>(st::DTypeSize(t.dtype));
    if (want != static_cast<unsigned __int128>(t.nbytes()))
      VICREG_FUZZ_FINDING("tensor '" + t.name + "' accepted with " + std::to_string(t.nbytes()) +
                          " bytes, which is not numel * dtype size");
    std::string_view b = st::TensorBytes(bytes, h, t);
    volatile char sink = 0;
    if (!b.empty()) sink = static_cast<char>(b.front() ^ b.back());
    (void)sink;
  }
  return 0;
}
