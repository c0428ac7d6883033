// The operator's Prometheus metrics (issue 11) and the small HTTP server that exposes them and the
// health probes. prometheus-cpp keeps the registry and writes the text exposition format; callers
// see neither it nor the HTTP library.
//
// Example:
//   metrics::OperatorMetrics metrics;
//   metrics.RecordRun("succeeded", absl::Seconds(2));
//   auto server = metrics::HttpServer::Start(":8080", {{"/metrics", [&] {
//     return metrics::HttpResponse{200, metrics::kPrometheusTextContentType, metrics.RenderText()};
//   }}});
#ifndef SLUICE_PKG_METRICS_METRICS_H_
#define SLUICE_PKG_METRICS_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice::metrics {

// The Content-Type of Prometheus' text exposition format, version 0.0.4.
inline constexpr char kPrometheusTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Every metric is prefixed `sluice_operator_`. Thread-safe.
class OperatorMetrics {
 public:
  OperatorMetrics();
  ~OperatorMetrics();
  OperatorMetrics(const OperatorMetrics&) = delete;
  OperatorMetrics& operator=(const OperatorMetrics&) = delete;

  // runs_total{outcome} and run_duration_seconds (histogram).
  void RecordRun(const std::string& outcome, absl::Duration duration);
  // applied_revisions_total.
  void AddAppliedRevisions(int64_t count);
  // failures_total{kind}: a failure kind of product.md or a ConfigProblem reason.
  void RecordFailure(const std::string& kind);
  // lock_wait_seconds (histogram).
  void ObserveLockWait(absl::Duration wait);
  // leader (gauge, 0 or 1).
  void SetLeader(bool leader);
  // queue_depth and running_runs (gauges).
  void SetQueueDepth(int64_t depth);
  void SetRunning(int64_t running);

  // The whole registry in the text exposition format.
  std::string RenderText() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
};
using HttpHandler = std::function<HttpResponse()>;

// A plain-HTTP server for GET requests on a few fixed paths (probes and /metrics); other paths get
// 404, other methods 405. Handlers run on the server's threads and must be thread-safe.
class HttpServer {
 public:
  // Listens on `address`, "HOST:PORT" or ":PORT" (all interfaces); port 0 picks a free one.
  // Errors name the address and the reason (in use, bad address).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& address, std::map<std::string, HttpHandler> handlers);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port it listens on (the chosen one when started with port 0).
  int port() const;
  // Stops listening and waits for requests in flight. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::metrics

#endif  // SLUICE_PKG_METRICS_METRICS_H_
