#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/metrics/metrics.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"

namespace sluice::metrics {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

// Samples of a text exposition, "name{labels}" -> value; HELP and TYPE lines go to `comments`.
struct Exposition {
  std::map<std::string, double> samples;
  std::vector<std::string> comments;
};

Exposition Parse(const std::string& text) {
  Exposition parsed;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) {
      parsed.comments.emplace_back(line);
      continue;
    }
    // Values never hold spaces and prometheus-cpp writes no timestamps: the last field is it.
    const size_t space = line.rfind(' ');
    EXPECT_NE(space, absl::string_view::npos) << line;
    if (space == absl::string_view::npos) continue;
    const std::string value(line.substr(space + 1));
    parsed.samples[std::string(line.substr(0, space))] = std::strtod(value.c_str(), nullptr);
  }
  return parsed;
}

TEST(OperatorMetricsTest, RendersRecordedValues) {
  OperatorMetrics metrics;
  metrics.RecordRun("succeeded", absl::Seconds(1));
  metrics.RecordRun("succeeded", absl::Milliseconds(2500));
  metrics.RecordRun("failed", absl::Milliseconds(500));
  metrics.AddAppliedRevisions(3);
  metrics.AddAppliedRevisions(4);
  metrics.AddAppliedRevisions(-2);  // dropped: counters only go up
  metrics.RecordFailure("LockTimeout");
  metrics.RecordFailure("LockTimeout");
  metrics.RecordFailure("InvalidManifest");
  metrics.ObserveLockWait(absl::Milliseconds(250));
  metrics.SetLeader(true);
  metrics.SetQueueDepth(7);
  metrics.SetRunning(2);

  const Exposition got = Parse(metrics.RenderText());
  const std::map<std::string, double> want = {
      {"sluice_operator_runs_total{outcome=\"succeeded\"}", 2},
      {"sluice_operator_runs_total{outcome=\"failed\"}", 1},
      {"sluice_operator_applied_revisions_total", 7},
      {"sluice_operator_failures_total{kind=\"LockTimeout\"}", 2},
      {"sluice_operator_failures_total{kind=\"InvalidManifest\"}", 1},
      {"sluice_operator_run_duration_seconds_count", 3},
      {"sluice_operator_run_duration_seconds_sum", 4},
      {"sluice_operator_run_duration_seconds_bucket{le=\"0.05\"}", 0},
      {"sluice_operator_run_duration_seconds_bucket{le=\"0.5\"}", 1},
      {"sluice_operator_run_duration_seconds_bucket{le=\"1\"}", 2},
      {"sluice_operator_run_duration_seconds_bucket{le=\"2.5\"}", 3},
      {"sluice_operator_run_duration_seconds_bucket{le=\"3600\"}", 3},
      {"sluice_operator_run_duration_seconds_bucket{le=\"+Inf\"}", 3},
      {"sluice_operator_lock_wait_seconds_count", 1},
      {"sluice_operator_lock_wait_seconds_sum", 0.25},
      {"sluice_operator_lock_wait_seconds_bucket{le=\"0.1\"}", 0},
      {"sluice_operator_lock_wait_seconds_bucket{le=\"0.5\"}", 1},
      {"sluice_operator_leader", 1},
      {"sluice_operator_queue_depth", 7},
      {"sluice_operator_running_runs", 2},
  };
  for (const auto& [name, value] : want) {
    auto it = got.samples.find(name);
    ASSERT_NE(it, got.samples.end()) << name << " missing from:\n" << metrics.RenderText();
    EXPECT_DOUBLE_EQ(it->second, value) << name;
  }
  for (const char* name : {"sluice_operator_runs_total", "sluice_operator_applied_revisions_total",
                           "sluice_operator_failures_total", "sluice_operator_run_duration_seconds",
                           "sluice_operator_lock_wait_seconds", "sluice_operator_leader",
                           "sluice_operator_queue_depth", "sluice_operator_running_runs"}) {
    bool help = false;
    for (const std::string& comment : got.comments) {
      help = help || absl::StartsWith(comment, absl::StrCat("# HELP ", name, " "));
    }
    EXPECT_TRUE(help) << "no HELP for " << name;
  }

  metrics.SetLeader(false);
  EXPECT_DOUBLE_EQ(Parse(metrics.RenderText()).samples["sluice_operator_leader"], 0);
}

TEST(OperatorMetricsTest, ConcurrentRecordingKeepsExactTotals) {
  OperatorMetrics metrics;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics.RecordRun(i % 2 == 0 ? "succeeded" : "failed", absl::Milliseconds(10));
        metrics.AddAppliedRevisions(1);
        metrics.RecordFailure(absl::StrCat("kind", t % 2));
        metrics.ObserveLockWait(absl::Milliseconds(1));
        metrics.SetRunning(t);
        if (i % 500 == 0) metrics.RenderText();  // scrapes race with recording
      }
    });
  }
  for (auto& thread : threads) thread.join();

  Exposition got = Parse(metrics.RenderText());
  constexpr double kTotal = kThreads * kPerThread;
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_runs_total{outcome=\"succeeded\"}"], kTotal / 2);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_runs_total{outcome=\"failed\"}"], kTotal / 2);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_applied_revisions_total"], kTotal);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_failures_total{kind=\"kind0\"}"], kTotal / 2);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_failures_total{kind=\"kind1\"}"], kTotal / 2);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_run_duration_seconds_count"], kTotal);
  EXPECT_DOUBLE_EQ(got.samples["sluice_operator_lock_wait_seconds_count"], kTotal);
  EXPECT_NEAR(got.samples["sluice_operator_run_duration_seconds_sum"], kTotal * 0.01, 1e-6);
}

// A tiny HTTP/1.1 client: one request, reads to EOF (the server closes), bounded by a timeout.
struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

absl::StatusOr<Reply> Request(int port, const std::string& method, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, " failed"));
  }
  const std::string request = absl::StrCat(method, " ", path,
                                           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                                           "Connection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string raw;
  char buffer[4096];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      close(fd);
      return absl::DeadlineExceededError(absl::StrCat("no full reply; got: ", raw));
    }
    if (n == 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);

  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return absl::DataLossError(absl::StrCat("bad reply: ", raw));
  Reply reply;
  reply.body = raw.substr(end + 4);
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &reply.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> header = absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    reply.headers[absl::AsciiStrToLower(header.first)] =
        std::string(absl::StripAsciiWhitespace(header.second));
  }
  return reply;
}

std::map<std::string, HttpHandler> MetricsHandlers(const OperatorMetrics& metrics) {
  return {
      {"/metrics",
       [&metrics] {
         return HttpResponse{200, kPrometheusTextContentType, metrics.RenderText()};
       }},
      {"/healthz",
       [] {
         return HttpResponse{200, "", "ok\n"};
       }},
      {"/readyz",
       [] {
         return HttpResponse{503, "", "not leader\n"};
       }},
  };
}

TEST(HttpServerTest, ServesHandlersAndRejectsOtherPathsAndMethods) {
  OperatorMetrics metrics;
  metrics.SetQueueDepth(3);
  absl::StatusOr<int> port = testing::UnusedLoopbackPort();
  ASSERT_THAT(port, IsOk());
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  auto server = HttpServer::Start(address, MetricsHandlers(metrics));
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->port(), *port);

  absl::StatusOr<Reply> reply = Request(*port, "GET", "/metrics");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->headers["content-type"], kPrometheusTextContentType);
  EXPECT_EQ(reply->body, metrics.RenderText());
  EXPECT_THAT(reply->body, HasSubstr("\nsluice_operator_queue_depth 3\n"));

  reply = Request(*port, "GET", "/metrics?name=x");  // the query is not part of the path
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 200);

  reply = Request(*port, "GET", "/readyz");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 503);
  EXPECT_EQ(reply->body, "not leader\n");
  EXPECT_THAT(reply->headers["content-type"], HasSubstr("text/plain"));

  for (const char* path : {"/", "/nothing", "/metrics/extra"}) {
    reply = Request(*port, "GET", path);
    ASSERT_THAT(reply, IsOk());
    EXPECT_EQ(reply->status, 404) << path;
  }

  reply = Request(*port, "POST", "/metrics");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 405);
  EXPECT_EQ(reply->headers["allow"], "GET");

  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_FALSE(Request(*port, "GET", "/healthz").ok()) << "still listening after Stop";
}

TEST(HttpServerTest, HandlerExceptionIs500) {
  absl::StatusOr<int> port = testing::UnusedLoopbackPort();
  ASSERT_THAT(port, IsOk());
  auto server =
      HttpServer::Start(absl::StrCat("127.0.0.1:", *port),
                        {{"/boom", []() -> HttpResponse { throw std::runtime_error("x"); }}});
  ASSERT_THAT(server, IsOk());
  absl::StatusOr<Reply> reply = Request(*port, "GET", "/boom");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 500);
}

TEST(HttpServerTest, PortZeroPicksAFreePort) {
  auto server = HttpServer::Start("127.0.0.1:0", {{"/healthz", [] {
                                                     return HttpResponse{200, "", "ok"};
                                                   }}});
  ASSERT_THAT(server, IsOk());
  ASSERT_GT((*server)->port(), 0);
  absl::StatusOr<Reply> reply = Request((*server)->port(), "GET", "/healthz");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "ok");
}

TEST(HttpServerTest, SecondServerOnThePortFails) {
  absl::StatusOr<int> port = testing::UnusedLoopbackPort();
  ASSERT_THAT(port, IsOk());
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  auto first = HttpServer::Start(address, {{"/a", [] { return HttpResponse{200, "", "a"}; }}});
  ASSERT_THAT(first, IsOk());

  auto second = HttpServer::Start(address, {{"/b", [] { return HttpResponse{200, "", "b"}; }}});
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable, address));
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  auto wildcard = HttpServer::Start(absl::StrCat(":", *port), {});
  EXPECT_THAT(wildcard, StatusIs(absl::StatusCode::kUnavailable, "in use"));

  // The first one still serves, and only its own paths.
  absl::StatusOr<Reply> reply = Request(*port, "GET", "/a");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 200);
  reply = Request(*port, "GET", "/b");
  ASSERT_THAT(reply, IsOk());
  EXPECT_EQ(reply->status, 404);
}

TEST(HttpServerTest, PortHeldByAnotherSocketFails) {
  // A listening socket that is not cpprest's: the failure comes from bind() itself.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string listen_address = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));

  auto server = HttpServer::Start(listen_address, {});
  close(fd);
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kUnavailable, listen_address));
  EXPECT_THAT(server.status().message(), HasSubstr("address already in use"));
}

TEST(HttpServerTest, BadAddressesFail) {
  for (const char* address :
       {"nonsense", ":99999", ":", "127.0.0.1:http", "127.0.0.1:-1", "host/path:80", "[::1]:80"}) {
    auto server = HttpServer::Start(address, {});
    EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument, address)) << address;
  }
  // Well-formed, but not an address of this host.
  auto server = HttpServer::Start("192.0.2.1:0", {});
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument, "192.0.2.1:0"));
  EXPECT_THAT(server.status().message(), HasSubstr("not an address of this host"));
  server = HttpServer::Start("no-such-host.invalid:8080", {});
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument, "no-such-host.invalid:8080"));
}

}  // namespace
}  // namespace sluice::metrics
