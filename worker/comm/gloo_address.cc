#include "worker/comm/gloo_address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "common/errors.h"

namespace vicreg::comm {
namespace {

bool IsLoopback(uint32_t a) { return (a >> 24) == 127; }
bool IsLinkLocal(uint32_t a) { return (a >> 16) == 0xa9fe; }  // 169.254/16

int PrefixLength(uint32_t mask) {
  int n = 0;
  while (mask & 0x80000000u) {
    ++n;
    mask <<= 1;
  }
  return n;
}

uint32_t MaskOfPrefix(int n) { return n <= 0 ? 0 : (n >= 32 ? 0xffffffffu : ~((1u << (32 - n)) - 1)); }

bool ParseIpv4(const std::string& s, uint32_t* out) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *out = ntohl(a.s_addr);
  return true;
}

std::string Describe(const HostAddresses& h) {
  std::string s;
  for (const auto& i : h.interfaces) {
    if (IsLoopback(i.addr)) continue;
    s += (s.empty() ? "" : ", ") + i.name + " " + FormatIpv4(i.addr) + "/" + std::to_string(PrefixLength(i.netmask));
  }
  return s.empty() ? "none besides loopback" : s;
}

}  // namespace

std::string FormatIpv4(uint32_t addr) {
  in_addr a{};
  a.s_addr = htonl(addr);
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::vector<Ipv4Interface> LocalIpv4Interfaces() {
  std::vector<Ipv4Interface> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP)) continue;
    Ipv4Interface x;
    x.name = i->ifa_name ? i->ifa_name : "?";
    x.addr = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    x.netmask = i->ifa_netmask ? ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_netmask)->sin_addr.s_addr) : 0;
    out.push_back(x);
  }
  freeifaddrs(list);
  return out;
}

std::string EncodeHostAddresses(const HostAddresses& h) {
  std::string s = h.host;
  for (const auto& i : h.interfaces)
    s += "\t" + i.name + "=" + FormatIpv4(i.addr) + "/" + std::to_string(PrefixLength(i.netmask));
  return s;
}

HostAddresses DecodeHostAddresses(const std::string& text, const std::string& what) {
  HostAddresses h;
  std::stringstream ss(text);
  std::string field;
  bool first = true;
  while (std::getline(ss, field, '\t')) {
    if (first) {
      h.host = field;
      first = false;
      continue;
    }
    const auto eq = field.find('=');
    const auto slash = field.rfind('/');
    Ipv4Interface x;
    int prefix = -1;
    if (eq != std::string::npos && slash != std::string::npos && slash > eq) {
      x.name = field.substr(0, eq);
      try {
        prefix = std::stoi(field.substr(slash + 1));
      } catch (const std::exception&) {
        prefix = -1;
      }
    }
    if (x.name.empty() || prefix < 0 || prefix > 32 || !ParseIpv4(field.substr(eq + 1, slash - eq - 1), &x.addr)) {
      throw RuntimeFailure("gloo address exchange: malformed entry '" + field + "' in " + what +
                           " (expected name=a.b.c.d/prefix)");
    }
    x.netmask = MaskOfPrefix(prefix);
    h.interfaces.push_back(x);
  }
  if (h.host.empty()) throw RuntimeFailure("gloo address exchange: " + what + " has no hostname");
  return h;
}

uint32_t RouteSourceAddress(uint32_t dst) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in d{};
  d.sin_family = AF_INET;
  d.sin_port = htons(9);  // discard; connect() on a UDP socket only looks up the route
  d.sin_addr.s_addr = htonl(dst);
  uint32_t src = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d) == 0) {
    sockaddr_in s{};
    socklen_t len = sizeof s;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&s), &len) == 0) src = ntohl(s.sin_addr.s_addr);
  }
  close(fd);
  return src;
}

BindChoice ChooseBindAddress(int rank, const std::vector<HostAddresses>& all, const RouteFn& route) {
  VICREG_CHECK(rank >= 0 && rank < static_cast<int>(all.size()), "rank out of range");
  const int world = static_cast<int>(all.size());
  const HostAddresses& me = all[rank];
  bool alone = true;
  for (const auto& h : all) alone = alone && h.host == me.host;
  if (alone) return {"127.0.0.1", "all " + std::to_string(world) + " ranks on host " + me.host};

  auto own = [&](uint32_t a) {
    for (const auto& i : me.interfaces)
      if (i.addr == a) return true;
    return false;
  };
  auto usable = [&](uint32_t a) { return !IsLoopback(a) && !IsLinkLocal(a) && !own(a); };
  // 1. An interface of ours on the same subnet as a peer address.
  for (int k = 1; k < world; ++k) {
    const int p = (rank + k) % world;
    if (all[p].host == me.host) continue;
    for (const auto& pa : all[p].interfaces) {
      if (!usable(pa.addr)) continue;
      for (const auto& mine : me.interfaces) {
        if (IsLoopback(mine.addr) || IsLinkLocal(mine.addr) || mine.netmask == 0) continue;
        if ((mine.addr & mine.netmask) == (pa.addr & mine.netmask)) {
          return {FormatIpv4(mine.addr), mine.name + ", same subnet as rank " + std::to_string(p) + " on host " +
                                             all[p].host + " (" + FormatIpv4(pa.addr) + ")"};
        }
      }
    }
  }
  // 2. Whatever address the routing table uses towards a peer.
  for (int k = 1; k < world; ++k) {
    const int p = (rank + k) % world;
    if (all[p].host == me.host) continue;
    for (const auto& pa : all[p].interfaces) {
      if (!usable(pa.addr)) continue;
      const uint32_t src = route(pa.addr);
      if (src != 0 && !IsLoopback(src) && own(src)) {
        return {FormatIpv4(src),
                "route to rank " + std::to_string(p) + " on host " + all[p].host + " (" + FormatIpv4(pa.addr) + ")"};
      }
    }
  }
  int other = -1;
  for (int k = 1; k < world && other < 0; ++k)
    if (all[(rank + k) % world].host != me.host) other = (rank + k) % world;
  throw RuntimeFailure("gloo: rank " + std::to_string(rank) + " on host " + me.host +
                       " has no address that reaches rank " + std::to_string(other) + " on host " + all[other].host +
                       " (addresses of " + me.host + ": " + Describe(me) + "; of " + all[other].host + ": " +
                       Describe(all[other]) + "); set GLOO_SOCKET_IFNAME to the interface that connects the nodes");
}

std::vector<BindChoice> AddressesOfInterfaces(const std::string& names, const std::vector<Ipv4Interface>& local,
                                              const std::string& variable) {
  std::vector<BindChoice> out;
  std::stringstream ss(names);
  std::string name;
  while (std::getline(ss, name, ',')) {
    if (name.empty()) continue;
    bool found = false;
    for (const auto& i : local) {
      if (i.name == name) {
        out.push_back({FormatIpv4(i.addr), name + " (" + variable + ")"});
        found = true;
        break;
      }
    }
    if (!found) {
      std::string have;
      for (const auto& i : local) have += (have.empty() ? "" : ", ") + i.name + " " + FormatIpv4(i.addr);
      char host[256] = {0};
      gethostname(host, sizeof host - 1);
      throw UserError("environment variable " + variable + "='" + names + "' names interface '" + name +
                      "', which has no IPv4 address on host " + host +
                      " (interfaces with one: " + (have.empty() ? "none" : have) + ")");
    }
  }
  if (out.empty()) {
    throw UserError("environment variable " + variable + "='" + names +
                    "' names no interface (expected e.g. eth0 or ib0,eth0)");
  }
  return out;
}

}  // namespace vicreg::comm
