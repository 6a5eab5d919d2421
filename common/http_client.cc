#include "common/http_client.h"

#include <httplib.h>

#include <cmath>

#include "common/http_server.h"

namespace vicreg::http {

ClientResponse Get(const std::string& host_port, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& headers, double timeout_s) {
  ClientResponse out;
  httplib::Client client("http://" + host_port);
  const auto sec = static_cast<time_t>(std::floor(timeout_s));
  const auto usec = static_cast<time_t>((timeout_s - std::floor(timeout_s)) * 1e6);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  client.set_decompress(true);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  h.emplace("Accept-Encoding", "gzip");
  auto res = client.Get(path, h);
  if (!res) {
    std::string why;
    switch (res.error()) {
      case httplib::Error::Connection: why = "cannot connect (nothing listens there, or it is unreachable)"; break;
      case httplib::Error::ConnectionTimeout: why = "timed out connecting"; break;
      case httplib::Error::Read: why = "the connection failed or timed out while reading the answer"; break;
      case httplib::Error::Write: why = "the connection failed while sending the request"; break;
      default: why = "HTTP client error '" + httplib::to_string(res.error()) + "'"; break;
    }
    out.error = why + " (" + host_port + ")";
    return out;
  }
  out.status = res->status;
  out.body = res->body;
  out.content_type = res->get_header_value("Content-Type");
  for (const auto& [k, v] : res->headers) {
    out.headers.emplace(AsciiLower(k), v);
  }
  return out;
}

}  // namespace vicreg::http
