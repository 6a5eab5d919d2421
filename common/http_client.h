// A blocking HTTP GET on cpp-httplib, for vicregctl (report) and the benchmarks: the other side
// of common/http_server.h.
//
//   auto r = vicreg::http::Get("127.0.0.1:9400", "/api/v1/jobs", {{"Authorization", "Bearer T"}});
//   if (!r.error.empty()) ...; if (r.status != 200) ...; use r.body
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vicreg::http {

struct ClientResponse {
  int status = 0;            // 0 when no response arrived (see error)
  std::string body;          // decompressed
  std::string content_type;
  std::multimap<std::string, std::string> headers;  // response headers, names lower-cased
  std::string error;         // connection error ("Connection refused (127.0.0.1:9400)"), empty on success
};

// GET http://<host_port><path>. host_port: "127.0.0.1:9400", "[::1]:9400", "localhost:9400".
// timeout_s bounds connecting and each read/write. Redirects are not followed.
ClientResponse Get(const std::string& host_port, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& headers = {}, double timeout_s = 30);

}  // namespace vicreg::http
