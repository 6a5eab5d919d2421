// Which address the Gloo transport binds on several hosts (worker/comm/gloo_address.h): loopback on
// one host, the interface on a peer's subnet, the routed source address, never a peer address we
// also own (docker0-style bridges), GLOO_SOCKET_IFNAME errors that name the interface.
#include "worker/comm/gloo_address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "common/errors.h"

namespace vicreg::comm {
namespace {

uint32_t Ip(const char* s) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, s, &a), 1) << s;
  return ntohl(a.s_addr);
}

Ipv4Interface If(const char* name, const char* addr, int prefix) {
  return {name, Ip(addr), prefix == 0 ? 0u : ~((1u << (32 - prefix)) - 1)};
}

HostAddresses Host(const std::string& host, std::vector<Ipv4Interface> ifs) {
  ifs.insert(ifs.begin(), If("lo", "127.0.0.1", 8));
  return {host, ifs};
}

uint32_t NoRoute(uint32_t) { return 0; }

TEST(GlooAddress, LoopbackWhenAllRanksShareAHost) {
  std::vector<HostAddresses> all = {Host("a", {If("eth0", "10.0.0.1", 24)}), Host("a", {If("eth0", "10.0.0.1", 24)})};
  auto c = ChooseBindAddress(1, all, NoRoute);
  EXPECT_EQ(c.address, "127.0.0.1");
  EXPECT_NE(c.reason.find("on host a"), std::string::npos) << c.reason;
}

TEST(GlooAddress, InterfaceOnThePeersSubnet) {
  // node1 has a management network and the cluster network; node2 only the cluster network.
  std::vector<HostAddresses> all = {
      Host("node1", {If("mgmt", "192.168.7.5", 24), If("eth0", "10.233.0.11", 24)}),
      Host("node1", {If("mgmt", "192.168.7.5", 24), If("eth0", "10.233.0.11", 24)}),
      Host("node2", {If("eth0", "10.233.0.12", 24)}),
      Host("node2", {If("eth0", "10.233.0.12", 24)}),
  };
  auto c0 = ChooseBindAddress(0, all, NoRoute);
  EXPECT_EQ(c0.address, "10.233.0.11") << c0.reason;
  EXPECT_NE(c0.reason.find("eth0, same subnet as rank 2 on host node2 (10.233.0.12)"), std::string::npos) << c0.reason;
  EXPECT_EQ(ChooseBindAddress(3, all, NoRoute).address, "10.233.0.12");
}

TEST(GlooAddress, SameAddressOnEveryHostIsNotAPath) {
  // docker0 172.17.0.1/16 exists on both hosts: "on-link" but it is our own address, never the peer.
  std::vector<HostAddresses> all = {
      Host("a", {If("docker0", "172.17.0.1", 16), If("ib0", "10.1.0.1", 16)}),
      Host("b", {If("docker0", "172.17.0.1", 16), If("ib0", "10.1.0.2", 16)}),
  };
  EXPECT_EQ(ChooseBindAddress(0, all, NoRoute).address, "10.1.0.1");
  EXPECT_EQ(ChooseBindAddress(1, all, NoRoute).address, "10.1.0.2");
}

TEST(GlooAddress, RoutedSourceAddressWhenNoSubnetIsShared) {
  std::vector<HostAddresses> all = {
      Host("a", {If("eth0", "10.1.0.5", 24)}),
      Host("b", {If("eth0", "10.2.0.7", 24)}),
  };
  auto route = [](uint32_t dst) { return dst == Ip("10.2.0.7") ? Ip("10.1.0.5") : 0u; };
  auto c = ChooseBindAddress(0, all, route);
  EXPECT_EQ(c.address, "10.1.0.5");
  EXPECT_NE(c.reason.find("route to rank 1 on host b (10.2.0.7)"), std::string::npos) << c.reason;
}

TEST(GlooAddress, NoPathNamesBothHostsAndTheVariable) {
  std::vector<HostAddresses> all = {Host("a", {}), Host("b", {If("eth0", "10.2.0.7", 24)})};
  try {
    ChooseBindAddress(0, all, NoRoute);
    FAIL() << "expected a failure";
  } catch (const RuntimeFailure& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 0 on host a has no address that reaches rank 1 on host b"), std::string::npos) << m;
    EXPECT_NE(m.find("eth0 10.2.0.7/24"), std::string::npos) << m;
    EXPECT_NE(m.find("GLOO_SOCKET_IFNAME"), std::string::npos) << m;
  }
}

TEST(GlooAddress, EncodeDecodeRoundTrip) {
  HostAddresses h = Host("node7", {If("eth0", "10.233.0.17", 24), If("ib0", "10.9.0.1", 16)});
  auto d = DecodeHostAddresses(EncodeHostAddresses(h), "test");
  EXPECT_EQ(d.host, "node7");
  ASSERT_EQ(d.interfaces.size(), 3u);
  EXPECT_EQ(d.interfaces[1].name, "eth0");
  EXPECT_EQ(d.interfaces[1].addr, Ip("10.233.0.17"));
  EXPECT_EQ(d.interfaces[2].netmask, Ip("255.255.0.0"));
  EXPECT_THROW(DecodeHostAddresses("node7\teth0=10.233.0.300/24", "rank 3"), RuntimeFailure);
  EXPECT_THROW(DecodeHostAddresses("node7\teth0", "rank 3"), RuntimeFailure);
  EXPECT_THROW(DecodeHostAddresses("", "rank 3"), RuntimeFailure);
}

TEST(GlooAddress, SocketIfnameNamesTheMissingInterface) {
  std::vector<Ipv4Interface> local = {If("lo", "127.0.0.1", 8), If("eth0", "10.233.0.11", 24)};
  auto ok = AddressesOfInterfaces("eth0", local);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].address, "10.233.0.11");
  EXPECT_EQ(AddressesOfInterfaces("eth0,lo", local).size(), 2u);
  try {
    AddressesOfInterfaces("ib0", local);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("GLOO_SOCKET_IFNAME='ib0' names interface 'ib0'"), std::string::npos) << m;
    EXPECT_NE(m.find("eth0 10.233.0.11"), std::string::npos) << m;
  }
  EXPECT_THROW(AddressesOfInterfaces(",", local), UserError);
}

TEST(GlooAddress, LocalInterfacesIncludeLoopbackAndRouteWorks) {
  auto local = LocalIpv4Interfaces();
  bool lo = false;
  for (const auto& i : local) lo = lo || FormatIpv4(i.addr) == "127.0.0.1";
  EXPECT_TRUE(lo);
  EXPECT_EQ(FormatIpv4(RouteSourceAddress(Ip("127.0.0.1"))), "127.0.0.1");
}

}  // namespace
}  // namespace vicreg::comm
