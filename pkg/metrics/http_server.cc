// HttpServer on cpprestsdk's asio listener. Three of its traits shape this file:
//  - all listeners of a process share one asio server keyed by "host:port"; a second listener on a
//    host:port already open is merely added to it, and when that fails cpprest drops the first
//    one's socket too. So this file keeps its own set of ports in use and refuses a second server
//    on one before cpprest sees it;
//  - it cannot report the port it bound, so port 0 is resolved here by probing for a free port;
//  - a closed listener's socket stays bound while another listener of the process is open.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cpprest/http_listener.h>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pkg/metrics/metrics.h"

namespace sluice::metrics {
namespace {

namespace http = web::http;
using Listener = http::experimental::listener::http_listener;

// A port probed free can be taken by another process before the listener binds it.
constexpr int kFreePortAttempts = 5;

struct Endpoint {
  std::string host;  // never empty: "0.0.0.0" for all interfaces
  int port = 0;
};

absl::StatusOr<Endpoint> ParseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen address \"", address, "\": want HOST:PORT or :PORT"));
  }
  Endpoint endpoint;
  endpoint.host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(port, &endpoint.port) || endpoint.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen address \"", address, "\": port must be 0 to 65535"));
  }
  if (endpoint.host.empty()) endpoint.host = "0.0.0.0";
  // cpprest would take a path or credentials in the host as part of the URI it builds.
  if (endpoint.host.find_first_of("/@?#[] ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen address \"", address, "\": host must be a name or IPv4 address"));
  }
  return endpoint;
}

absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed while looking for a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof address;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!ok) return absl::UnavailableError("no free TCP port");
  return ntohs(address.sin_port);
}

// Ports of this process's open servers (see the file comment).
std::mutex ports_mu;
std::set<int>& PortsInUse() {
  static auto* ports = new std::set<int>();
  return *ports;
}

bool ClaimPort(int port) {
  std::lock_guard<std::mutex> lock(ports_mu);
  return PortsInUse().insert(port).second;
}

void ReleasePort(int port) {
  std::lock_guard<std::mutex> lock(ports_mu);
  PortsInUse().erase(port);
}

void Reply(const http::http_request& request, const HttpResponse& response) {
  http::http_response reply(static_cast<http::status_code>(response.status));
  if (response.status == http::status_codes::MethodNotAllowed) reply.headers().add("Allow", "GET");
  // Without keep-alive no idle connection outlives a request: cpprest only closes those when the
  // last listener of the process closes, and closing races with their own socket work.
  reply.headers().add("Connection", "close");
  reply.set_body(std::string(response.body), response.content_type.empty()
                                                 ? "text/plain; charset=utf-8"
                                                 : response.content_type);
  request.reply(reply);
}

}  // namespace

struct HttpServer::Impl {
  std::string address;
  Endpoint endpoint;
  std::map<std::string, HttpHandler> handlers;
  std::unique_ptr<Listener> listener;
  std::mutex mu;  // guards listener across Stop calls

  void Serve(const http::http_request& request) {
    try {
      if (request.method() != http::methods::GET) {
        Reply(request, HttpResponse{405, "", "method not allowed\n"});
        return;
      }
      // The listener sits at "/", so the path relative to it is the whole path.
      const std::string path = http::uri::decode(request.relative_uri().path());
      const auto handler = handlers.find(path);
      if (handler == handlers.end()) {
        Reply(request, HttpResponse{404, "", "not found\n"});
        return;
      }
      Reply(request, handler->second());
    } catch (const std::exception& e) {
      Reply(request, HttpResponse{500, "", absl::StrCat("internal error: ", e.what(), "\n")});
    }
  }

  // Opens the listener on endpoint.port; the port must be claimed.
  absl::Status Open() {
    const std::string url = absl::StrCat("http://", endpoint.host, ":", endpoint.port, "/");
    try {
      auto opened = std::make_unique<Listener>(url);
      opened->support([this](const http::http_request& request) { Serve(request); });
      opened->open().wait();
      listener = std::move(opened);
      return absl::OkStatus();
    } catch (const boost::system::system_error& e) {
      // bind() and the resolver report through boost; what() reads "bind: Address already in use".
      if (e.code().value() == EADDRINUSE) {
        return absl::UnavailableError(
            absl::StrCat("cannot listen on ", address, ": address already in use"));
      }
      if (e.code().value() == EADDRNOTAVAIL) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot listen on ", address, ": ", endpoint.host, " is not an address of this host"));
      }
      return absl::InvalidArgumentError(absl::StrCat("cannot listen on ", address, ": ", e.what()));
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("cannot listen on ", address, ": ", e.what()));
    }
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& address, std::map<std::string, HttpHandler> handlers) {
  absl::StatusOr<Endpoint> endpoint = ParseAddress(address);
  if (!endpoint.ok()) return endpoint.status();
  auto impl = std::make_unique<Impl>();
  impl->address = address;
  impl->endpoint = *endpoint;
  impl->handlers = std::move(handlers);

  const bool pick_port = endpoint->port == 0;
  absl::Status status;
  for (int attempt = 0; attempt < (pick_port ? kFreePortAttempts : 1); ++attempt) {
    if (pick_port) {
      absl::StatusOr<int> port = FreePort();
      if (!port.ok()) {
        return absl::UnavailableError(
            absl::StrCat("cannot listen on ", address, ": ", port.status().message()));
      }
      impl->endpoint.port = *port;
    }
    if (!ClaimPort(impl->endpoint.port)) {
      status = absl::UnavailableError(
          absl::StrCat("cannot listen on ", address,
                       ": address already in use (by another server of this process)"));
      continue;
    }
    status = impl->Open();
    if (status.ok()) return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
    ReleasePort(impl->endpoint.port);
    if (status.code() != absl::StatusCode::kUnavailable) break;
  }
  return status;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return impl_->endpoint.port; }

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!impl_->listener) return;
  try {
    // Returns once no handler runs: cpprest takes the listener's write lock on close.
    impl_->listener->close().wait();
  } catch (const std::exception&) {
    // Nothing to do about a failed close: the listener is gone either way.
  }
  impl_->listener.reset();
  ReleasePort(impl_->endpoint.port);
}

}  // namespace sluice::metrics
