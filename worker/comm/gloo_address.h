// Which local IPv4 address the Gloo transport binds when a job's ranks sit on several hosts.
//
// Loopback is right when every rank is on this host. Otherwise each rank publishes its hostname and
// IPv4 interfaces (through the rendezvous store) and binds, in this order of preference:
//   1. the address of its interface on the same subnet as an address of a rank on another host
//      (peers tried from rank+1 on, so ranks pick consistently);
//   2. the source address the routing table picks for such a peer address (a UDP connect():
//      nothing is sent).
// Peer addresses that are loopback, link-local (169.254/16) or also one of our own addresses (a
// docker0-style bridge that exists on every host) are never used. GLOO_SOCKET_IFNAME (PyTorch's
// variable, "eth0" or "ib0,eth0") overrides the choice: the IPv4 addresses of those interfaces.
// No torch here: the choice is a pure function of the exchanged data (unit-tested).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vicreg::comm {

struct Ipv4Interface {
  std::string name;      // "eth0"
  uint32_t addr = 0;     // host byte order
  uint32_t netmask = 0;  // host byte order
};

struct HostAddresses {
  std::string host;  // gethostname()
  std::vector<Ipv4Interface> interfaces;
};

struct BindChoice {
  std::string address;  // dotted quad to bind
  std::string reason;   // for the log, e.g. "eth0, same subnet as rank 2 on node2 (10.233.0.12)"
};

// Up IPv4 interfaces of this host (network namespace), loopback included, in getifaddrs order.
std::vector<Ipv4Interface> LocalIpv4Interfaces();
std::string FormatIpv4(uint32_t addr);

// One line per host for the store: "host<TAB>name=a.b.c.d/prefix<TAB>...". Decode throws
// RuntimeFailure naming `what` on malformed input.
std::string EncodeHostAddresses(const HostAddresses& h);
HostAddresses DecodeHostAddresses(const std::string& text, const std::string& what);

// route(dst): the local source address the kernel would use to reach dst (0 = unreachable).
using RouteFn = std::function<uint32_t(uint32_t)>;
uint32_t RouteSourceAddress(uint32_t dst);

// all[r] describes rank r. Throws RuntimeFailure (naming the ranks, hosts and addresses, and
// suggesting GLOO_SOCKET_IFNAME) when no address of this host reaches a rank on another host.
BindChoice ChooseBindAddress(int rank, const std::vector<HostAddresses>& all, const RouteFn& route);

// GLOO_SOCKET_IFNAME value -> one address per named interface (UserError naming the variable,
// the missing interface and the interfaces that exist).
std::vector<BindChoice> AddressesOfInterfaces(const std::string& names, const std::vector<Ipv4Interface>& local,
                                              const std::string& variable = "GLOO_SOCKET_IFNAME");

}  // namespace vicreg::comm
