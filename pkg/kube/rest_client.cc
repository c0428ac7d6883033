// The HTTPS Client on cpprestsdk 2.10. cpprest's own timeout only bounds inactivity, so each
// attempt is also bounded by waiting for its answer with a deadline and cancelling it when passed.
//
// Lifetime of a request. http_client::request() starts a pplx continuation chain that runs on
// cpprest's thread pool: our continuations (read the body, hand over the answer) and cpprest's
// own work around them. The caller stops waiting as soon as the answer is handed over, at its
// deadline, or at Shutdown (which wakes it at once); the chain goes on a little longer. A chain
// still running when the process exits runs while static destructors tear down cpprest's thread
// pool and what it uses (LSan then reports the tasks it left pending), and one that used its
// client after the client was destroyed would use freed memory. So the client owns every request
// until its whole chain has finished: each continuation of a chain holds a ticket of the
// client's InFlight count, released only when the last of them has run and been destroyed, and
// the chain holds the http_client itself. Shutdown cancels the chains (closing their sockets); the
// destructor waits for them to end (bounded, then logs what is left: those chains keep the
// http_client and the count alive on their own).
#include <cpprest/http_client.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <memory>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/backoff.h"
#include "pkg/base/log.h"
#include "pkg/base/status_macros.h"
#include "pkg/kube/api_error.h"
#include "pkg/kube/client.h"
#include "pkg/kube/json_codec.h"
#include "pkg/kube/token_source.h"

namespace sluice::kube {
namespace {

namespace http = web::http;

constexpr absl::Duration kMinAttemptBudget = absl::Milliseconds(50);
// How long the destructor waits for the chains still running (Shutdown has cancelled them,
// which closes their sockets, so they end within milliseconds).
constexpr absl::Duration kDestructorDrain = absl::Seconds(5);

struct Response {
  int code = 0;
  std::string body;
  std::string retry_after;
};

// The number of pplx continuation chains of one client that have not finished yet.
class InFlight {
 public:
  // Returns a ticket: the count goes down when the last copy of it is destroyed.
  static std::shared_ptr<void> Enter(const std::shared_ptr<InFlight>& self) {
    {
      absl::MutexLock lock(&self->mu_);
      ++self->running_;
    }
    return std::shared_ptr<void>(nullptr, [self](void*) {
      absl::MutexLock lock(&self->mu_);
      --self->running_;
    });
  }

  // Waits until no chain is running, at most `timeout`. Returns how many still are.
  int WaitIdle(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; };
    mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
    return running_;
  }

 private:
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// One HTTP exchange, shared by the attempt waiting for it, the chain that answers it and
// Shutdown.
struct Exchange {
  pplx::cancellation_token_source cts;
  absl::Mutex mu;
  bool answered ABSL_GUARDED_BY(mu) = false;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  Response response ABSL_GUARDED_BY(mu);
  std::exception_ptr error ABSL_GUARDED_BY(mu);
};

// Returns `pem` loaded into a scratch TLS context, to report a bad certificate or key before any
// request (cpprest would only fail inside its connection setup, with a vague message).
absl::Status CheckPem(const ClusterConfig& config) {
  try {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    if (!config.ca_pem.empty()) ctx.add_certificate_authority(boost::asio::buffer(config.ca_pem));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the certificate authority of ", config.source,
                                                   " is not valid PEM: ", e.what()));
  }
  try {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    if (!config.client_cert_pem.empty()) {
      ctx.use_certificate_chain(boost::asio::buffer(config.client_cert_pem));
      ctx.use_private_key(boost::asio::buffer(config.client_key_pem),
                          boost::asio::ssl::context::pem);
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("the client certificate or key of ",
                                                   config.source, " is not valid: ", e.what()));
  }
  return absl::OkStatus();
}

class RestClient final : public Client {
 public:
  RestClient(const ClusterConfig& config, const ClientOptions& options,
             std::unique_ptr<TokenSource> tokens)
      : config_(config),
        options_(options),
        tokens_(std::move(tokens)),
        http_(std::make_shared<http::client::http_client>(config.server,
                                                          MakeHttpConfig(config, options))) {}

  ~RestClient() override {
    Shutdown();
    const int left = in_flight_->WaitIdle(kDestructorDrain);
    if (left > 0) {
      // They hold the http_client and the count themselves, so nothing they use goes away.
      log::Warning("Kubernetes API requests still running when their client was destroyed",
                   {{"requests", absl::StrCat(left)}, {"server", config_.server}});
    }
  }

  // Client
  absl::StatusOr<MigrationJob> GetMigrationJob(const ObjectRef& ref, absl::Time deadline) override {
    const std::string op = absl::StrCat("getting ", Describe(ref));
    SLUICE_ASSIGN_OR_RETURN(Response r,
                            Call(http::methods::GET, MigrationJobPath(ref), "", "", deadline, op));
    return Decode(r, op);
  }

  absl::StatusOr<MigrationJob> PatchMigrationJobStatus(const ObjectRef& ref,
                                                       const MigrationJobStatus& status,
                                                       absl::string_view resource_version,
                                                       absl::Time deadline) override {
    const std::string op = absl::StrCat("patching the status of ", Describe(ref));
    SLUICE_ASSIGN_OR_RETURN(Response r, Call(http::methods::PATCH, MigrationJobPath(ref, "status"),
                                             StatusMergePatch(status, resource_version),
                                             "application/merge-patch+json", deadline, op));
    return Decode(r, op);
  }

  absl::Status CreateEvent(const Event& event, absl::Time deadline) override {
    const std::string path = absl::StrCat("/api/v1/namespaces/", event.namespace_, "/events");
    Event named = event;
    if (named.name.empty()) named.name = UniqueEventName(event.object_name);
    const std::string op = absl::StrCat("creating event ", named.reason, " for ",
                                        Describe({event.namespace_, event.object_name}));
    // Call retries with the same name. When an attempt was stored but its answer lost (a timeout),
    // the retry gets 409 AlreadyExists: that is this very event, already created. A generated name
    // carries 32 random bits beside the time, so it is not another pod's.
    absl::StatusOr<Response> r =
        Call(http::methods::POST, path, EventJson(named), "application/json", deadline, op);
    if (!r.ok() && r.status().code() == absl::StatusCode::kAborted && event.name.empty()) {
      log::Debug("event already created by an earlier attempt", {{"event", named.name}});
      return absl::OkStatus();
    }
    return r.status();
  }

  void Shutdown() override {
    {
      absl::MutexLock lock(&mu_);
      shutdown_ = true;
      for (const std::shared_ptr<Exchange>& exchange : exchanges_) {
        {
          absl::MutexLock exchange_lock(&exchange->mu);
          exchange->shut_down = true;
        }
        exchange->cts.cancel();
      }
    }
    // No waiting here: callers shut down to keep their own time bound (the reporter's Finish).
    // The destructor waits for the chains.
  }

 private:
  static http::client::http_client_config MakeHttpConfig(const ClusterConfig& config,
                                                         const ClientOptions& options) {
    http::client::http_client_config http_config;
    // A backstop only: Attempt() enforces each attempt's deadline itself.
    http_config.set_timeout(std::chrono::milliseconds(
        absl::ToInt64Milliseconds(options.request_timeout + absl::Seconds(1))));
    http_config.set_validate_certificates(!config.insecure_skip_tls_verify);
    const std::string ca = config.ca_pem;
    const std::string cert = config.client_cert_pem;
    const std::string key = config.client_key_pem;
    http_config.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
      if (!ca.empty()) {
        // cpprest has already loaded the system trust store; the cluster CA must be the only
        // trust anchor, as in client-go, so start from an empty store.
        SSL_CTX_set_cert_store(ctx.native_handle(), X509_STORE_new());
        ctx.add_certificate_authority(boost::asio::buffer(ca));
      }
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert));
        ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
      }
    });
    return http_config;
  }

  static std::string Describe(const ObjectRef& ref) {
    return absl::StrCat("migrationjobs.sluice.dev \"", ref.namespace_, "/", ref.name, "\"");
  }

  static absl::StatusOr<MigrationJob> Decode(const Response& r, absl::string_view op) {
    absl::StatusOr<MigrationJob> job = ParseMigrationJob(r.body);
    if (!job.ok())
      return absl::Status(job.status().code(), absl::StrCat(op, ": ", job.status().message()));
    return job;
  }

  std::string UniqueEventName(const std::string& object_name) {
    const uint64_t nanos = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    uint32_t random;
    {
      absl::MutexLock lock(&mu_);
      random = static_cast<uint32_t>(rng_());  // pods of one ReplicaSet start together
    }
    std::string suffix = absl::StrFormat(".%x%08x", nanos, random);
    return absl::StrCat(object_name.substr(0, 253 - suffix.size()), suffix);
  }

  // Waits `duration` or until Shutdown(). Returns false when shut down.
  bool Sleep(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&shutdown_), duration);
    return !shutdown_;
  }

  absl::StatusOr<Response> Call(const http::method& method, const std::string& path,
                                const std::string& body, const std::string& content_type,
                                absl::Time deadline, const std::string& op) {
    absl::Status last = absl::DeadlineExceededError(
        absl::StrCat(op, ": the deadline passed before the request could be sent"));
    bool reauthenticated = false;
    base::Backoff backoff(options_.initial_backoff, options_.max_backoff);
    for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
      const absl::Time now = absl::Now();
      if (now >= deadline) break;
      // A retry with almost no time left would only turn the real error into a timeout.
      if (attempt > 0 && deadline - now < kMinAttemptBudget) break;
      absl::StatusOr<Response> r = Attempt(method, path, body, content_type,
                                           std::min(deadline, now + options_.request_timeout), op);
      absl::Duration wait;
      if (!r.ok() && r.status().code() == absl::StatusCode::kCancelled && attempt > 0) {
        return ShutDownError(last);
      }
      if (!r.ok()) {
        // An attempt cut short by the caller's deadline says less than the error before it
        // (e.g. "connection refused" on every earlier attempt).
        if (attempt > 0 && r.status().code() == absl::StatusCode::kDeadlineExceeded &&
            absl::Now() >= deadline) {
          break;
        }
        last = r.status();
        if (!IsTransient(last)) return last;
        wait = backoff.Next();
      } else if (r->code >= 200 && r->code < 300) {
        return r;
      } else {
        const ApiError error = ParseApiError(r->code, r->body, r->retry_after);
        last = ApiErrorToStatus(error, op);
        if (r->code == 401 && !reauthenticated) {
          // The token may have been rotated since it was read (kube-api.md section 8).
          tokens_->Invalidate();
          reauthenticated = true;
          continue;
        }
        if (!IsRetryableHttpCode(r->code)) return last;
        wait = error.retry_after ? std::min(*error.retry_after, options_.max_retry_after)
                                 : backoff.Next();
      }
      if (absl::Now() + wait >= deadline) break;
      log::Debug("retrying a Kubernetes API request", {{"operation", op},
                                                       {"error", std::string(last.message())},
                                                       {"wait", absl::FormatDuration(wait)}});
      if (!Sleep(wait)) return ShutDownError(last);
    }
    return last;
  }

  // The error of a call cut short by Shutdown after failed attempts: what they saw, which says
  // more than the shutdown. (`last` names the operation already.)
  static absl::Status ShutDownError(const absl::Status& last) {
    return absl::CancelledError(absl::StrCat(last.message(), "; the client was then shut down"));
  }

  absl::StatusOr<Response> Attempt(const http::method& method, const std::string& path,
                                   const std::string& body, const std::string& content_type,
                                   absl::Time attempt_deadline, const std::string& op) {
    SLUICE_ASSIGN_OR_RETURN(std::string token, tokens_->Token());
    http::http_request request(method);
    request.set_request_uri(path);
    request.headers().add("Accept", "application/json");
    request.headers().add("User-Agent", options_.user_agent);
    if (!config_.tls_server_name.empty()) request.headers().add("Host", config_.tls_server_name);
    if (!token.empty()) request.headers().add("Authorization", absl::StrCat("Bearer ", token));
    if (!content_type.empty()) request.set_body(body, content_type);

    auto exchange = std::make_shared<Exchange>();
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return absl::CancelledError(absl::StrCat(op, ": the client was shut down"));
      exchanges_.insert(exchange);
    }
    // Every continuation holds the ticket, and the last one the http_client too (see the file
    // comment): the client's InFlight count covers the chain until it has wholly finished.
    std::shared_ptr<void> ticket = InFlight::Enter(in_flight_);
    pplx::task<http::http_response> sent;
    try {
      sent = http_->request(request, exchange->cts.get_token());
    } catch (const std::exception& e) {
      absl::MutexLock lock(&mu_);
      exchanges_.erase(exchange);
      return absl::UnavailableError(absl::StrCat(op, ": cannot send the request: ", e.what()));
    }
    std::move(sent)
        .then([ticket](http::http_response response) {
          auto retry_after = response.headers().find("Retry-After");
          std::string retry = retry_after == response.headers().end() ? "" : retry_after->second;
          return response.extract_string(true).then([ticket, response, retry](std::string text) {
            return Response{response.status_code(), std::move(text), retry};
          });
        })
        .then([ticket, exchange, http = http_](pplx::task<Response> task) {
          Response response;
          std::exception_ptr error;
          try {
            response = task.get();
          } catch (...) {
            error = std::current_exception();
          }
          absl::MutexLock lock(&exchange->mu);
          exchange->answered = true;
          exchange->response = std::move(response);
          exchange->error = error;
        });

    const absl::Duration budget = attempt_deadline - absl::Now();
    if (budget <= absl::ZeroDuration()) {
      // Reading the token took the time that was left: nothing was sent.
      absl::MutexLock lock(&mu_);
      exchanges_.erase(exchange);
      return absl::DeadlineExceededError(
          absl::StrCat(op, ": the deadline passed before the request could be sent"));
    }
    bool answered = false;
    bool shut_down = false;
    Response response;
    std::exception_ptr error;
    {
      // Wakes up on the answer, on Shutdown, or at the attempt's deadline.
      absl::MutexLock lock(&exchange->mu);
      auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(exchange->mu) {
        return exchange->answered || exchange->shut_down;
      };
      exchange->mu.AwaitWithDeadline(absl::Condition(&done), attempt_deadline);
      answered = exchange->answered;
      shut_down = exchange->shut_down;
      response = exchange->response;
      error = exchange->error;
    }
    {
      absl::MutexLock lock(&mu_);
      exchanges_.erase(exchange);
    }
    if (!answered) {
      // Cancelling closes the socket; the chain then ends by itself, counted by in_flight_.
      exchange->cts.cancel();
      if (shut_down) return absl::CancelledError(absl::StrCat(op, ": the client was shut down"));
      return absl::DeadlineExceededError(absl::StrCat(op, ": no answer from the API server at ",
                                                      config_.server, " within ",
                                                      absl::FormatDuration(budget)));
    }
    if (shut_down) return absl::CancelledError(absl::StrCat(op, ": the client was shut down"));
    if (error == nullptr) return response;
    try {
      std::rethrow_exception(error);
    } catch (const pplx::task_canceled&) {
      return absl::DeadlineExceededError(absl::StrCat(op, ": the request was cancelled"));
    } catch (const http::http_exception& e) {
      const std::string what = e.what();
      if (absl::StrContains(what, "SSL handshake")) {
        // Not retried: an untrusted or mismatched certificate does not fix itself.
        return absl::FailedPreconditionError(absl::StrCat(
            op, ": TLS handshake with ", config_.server, " failed (", what,
            "): the server's certificate is not signed by the configured certificate authority, "
            "does not name this host, or the server refused the client certificate"));
      }
      if (e.error_code() == std::errc::timed_out) {
        return absl::DeadlineExceededError(
            absl::StrCat(op, ": the API server at ", config_.server, " timed out: ", what));
      }
      return absl::UnavailableError(
          absl::StrCat(op, ": cannot reach the API server at ", config_.server, ": ", what));
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(op, ": ", e.what()));
    }
  }

  const ClusterConfig config_;
  const ClientOptions options_;
  std::unique_ptr<TokenSource> tokens_;
  // Shared with the request chains, which may outlive this object (see the file comment).
  const std::shared_ptr<http::client::http_client> http_;
  const std::shared_ptr<InFlight> in_flight_ = std::make_shared<InFlight>();

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Exchanges an attempt is waiting for, to cancel on Shutdown.
  std::set<std::shared_ptr<Exchange>> exchanges_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace

std::string MigrationJobPath(const ObjectRef& ref, absl::string_view subresource) {
  std::string path = absl::StrCat("/apis/", kGroup, "/", kVersion, "/namespaces/", ref.namespace_,
                                  "/", kPlural, "/", ref.name);
  if (!subresource.empty()) absl::StrAppend(&path, "/", subresource);
  return path;
}

absl::StatusOr<std::unique_ptr<Client>> NewRestClient(const ClusterConfig& config,
                                                      const ClientOptions& options) {
  if (!absl::StartsWith(config.server, "https://") && !absl::StartsWith(config.server, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("the API server address \"", config.server, "\" is not an http(s) URL"));
  }
  SLUICE_RETURN_IF_ERROR(CheckPem(config));
  std::unique_ptr<TokenSource> tokens = config.token.empty() && !config.token_file.empty()
                                            ? TokenSource::FromFile(config.token_file)
                                            : TokenSource::Fixed(config.token);
  try {
    return std::unique_ptr<Client>(new RestClient(config, options, std::move(tokens)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot make a client for ", config.server, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Client>> NewRestClientFromConfig(const std::string& kubeconfig_flag,
                                                                const InClusterPaths& paths,
                                                                const ClientOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(ClusterConfig config, LoadConfig(kubeconfig_flag, paths));
  return NewRestClient(config, options);
}

}  // namespace sluice::kube
