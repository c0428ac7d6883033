// Loopback ports for tests that need a server address (the fake API server) or an address nothing
// answers on (unreachable databases and API servers).
#ifndef SLUICE_TESTS_SUPPORT_LOOPBACK_H_
#define SLUICE_TESTS_SUPPORT_LOOPBACK_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/status/statusor.h"

namespace sluice::testing {

// Returns a TCP port on 127.0.0.1 that was free a moment ago: bound to learn it, then closed, so
// nothing listens on it and connections to it are refused (until someone else takes it).
inline absl::StatusOr<int> UnusedLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return absl::InternalError("cannot find a free port on 127.0.0.1");
  }
  close(fd);
  return ntohs(address.sin_port);
}

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_SUPPORT_LOOPBACK_H_
