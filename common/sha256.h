// SHA-256 of bytes fed in pieces, as lowercase hex (OpenSSL's EVP): the checksum of a streamed
// encoder export, computed by the coordinator as it sends and by vicregctl as it receives. Its own
// library (vicreg_sha256, libcrypto), built with the server side only.
#pragma once

#include <cstddef>
#include <string>

namespace vicreg {

class Sha256 {
 public:
  Sha256();  // throws std::runtime_error if OpenSSL cannot set it up
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  std::string HexDigest();  // once, after the last Update

 private:
  void* ctx_;  // EVP_MD_CTX (kept out of this header)
};

}  // namespace vicreg
