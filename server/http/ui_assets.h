// The web UI's static files (server/http/ui/), embedded at build time by server/http/embed_assets.cmake
// into the generated ui_assets.cc: the coordinator serves them without reading the source tree.
#pragma once

#include <cstddef>
#include <string>

namespace vicreg::web {

struct Asset {
  const char* name;          // file name under server/http/ui/ ("app.js")
  const char* content_type;  // "text/javascript; charset=utf-8"
  const unsigned char* data;
  size_t size;
  std::string text() const { return std::string(reinterpret_cast<const char*>(data), size); }
};

// nullptr when there is no such asset.
const Asset* FindAsset(const std::string& name);

}  // namespace vicreg::web
