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
//
// A watch has an http_client of its own (an inactivity timeout longer than the stream, and a
// connection that goes away with it). Its body is read one line at a time by a chain that holds
// that client and a ticket; cancelling the watch (Cancel, the stream's destructor, Shutdown)
// cancels its token, which closes the connection and so ends a read in flight.
#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl.hpp>
#include <functional>
#include <memory>
#include <random>
#include <set>

#include "absl/strings/ascii.h"
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

// One open watch, shared by its WatchStream, the read in flight and the client's Shutdown.
struct WatchState {
  pplx::cancellation_token_source cts;
  absl::Mutex mu;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
  bool reading ABSL_GUARDED_BY(mu) = false;  // a read_line is in flight
  bool line_ready ABSL_GUARDED_BY(mu) = false;
  std::string line ABSL_GUARDED_BY(mu);
  bool eof ABSL_GUARDED_BY(mu) = false;
  std::exception_ptr error ABSL_GUARDED_BY(mu);

  void Cancel() {
    {
      absl::MutexLock lock(&mu);
      cancelled = true;
    }
    // Closes the connection, which ends a read in flight.
    cts.cancel();
  }
};

// The open watches of a client, to cancel on Shutdown. Shared with the streams, which may
// outlive their client.
class WatchRegistry {
 public:
  // Returns false when the client is shut down (the watch is cancelled then).
  bool Add(const std::shared_ptr<WatchState>& state) {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return false;
    states_.insert(state);
    return true;
  }
  void Remove(const std::shared_ptr<WatchState>& state) {
    absl::MutexLock lock(&mu_);
    states_.erase(state);
  }
  void Shutdown() {
    std::set<std::shared_ptr<WatchState>> states;
    {
      absl::MutexLock lock(&mu_);
      shutdown_ = true;
      states.swap(states_);
    }
    for (const auto& state : states) state->Cancel();
  }

 private:
  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::shared_ptr<WatchState>> states_ ABSL_GUARDED_BY(mu_);
};

// A watch stream read line by line from a chunked response body, one read_line in flight at a
// time (so a slow consumer holds the server back instead of growing a queue here). A read that
// outlives a Next() call's deadline stays in flight for the next call.
template <typename T>
class RestWatchStream final : public WatchStream<T> {
 public:
  using Parser = std::function<absl::StatusOr<WatchEvent<T>>(absl::string_view line)>;

  RestWatchStream(std::shared_ptr<WatchState> state, std::shared_ptr<WatchRegistry> registry,
                  std::shared_ptr<http::client::http_client> http, http::http_response response,
                  std::shared_ptr<InFlight> in_flight, std::string server, Parser parse)
      : parse_(std::move(parse)),
        state_(std::move(state)),
        registry_(std::move(registry)),
        http_(std::move(http)),
        response_(std::move(response)),
        in_flight_(std::move(in_flight)),
        server_(std::move(server)) {}

  ~RestWatchStream() override {
    state_->Cancel();
    registry_->Remove(state_);
  }

  absl::StatusOr<std::optional<WatchEvent<T>>> Next(absl::Time deadline) override {
    while (true) {
      if (final_) return *final_;
      bool start = false;
      {
        absl::MutexLock lock(&state_->mu);
        if (state_->cancelled) return Finish(absl::CancelledError("the watch was cancelled"));
        if (!state_->reading) {
          state_->reading = true;
          start = true;
        }
      }
      // Outside the lock: a read of data already buffered completes, and runs its continuation,
      // at once.
      if (start) StartRead();
      std::string line;
      bool eof = false;
      std::exception_ptr error;
      {
        absl::MutexLock lock(&state_->mu);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
          return state_->line_ready || state_->cancelled;
        };
        state_->mu.AwaitWithDeadline(absl::Condition(&ready), deadline);
        if (state_->cancelled) return Finish(absl::CancelledError("the watch was cancelled"));
        if (!state_->line_ready) {
          return absl::DeadlineExceededError("no watch event came before the deadline");
        }
        state_->line_ready = false;
        state_->reading = false;
        line = std::move(state_->line);
        state_->line.clear();
        eof = state_->eof;
        error = state_->error;
      }
      if (error != nullptr) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        }
        return Finish(absl::UnavailableError(absl::StrCat(
            "the watch stream from the API server at ", server_, " broke off: ", what)));
      }
      if (absl::StripAsciiWhitespace(line).empty()) {
        if (eof) return Finish(std::optional<WatchEvent<T>>());
        continue;
      }
      absl::StatusOr<WatchEvent<T>> event = parse_(line);
      if (!event.ok()) {
        if (eof && !IsResourceExpired(event.status()) &&
            event.status().code() == absl::StatusCode::kInvalidArgument) {
          // The connection ended inside an event: a dropped stream, not a bad server.
          return Finish(absl::UnavailableError(absl::StrCat(
              "the watch stream from the API server at ", server_, " ended inside an event")));
        }
        return Finish(event.status());
      }
      return std::optional<WatchEvent<T>>(std::move(*event));
    }
  }

  void Cancel() override { state_->Cancel(); }

 private:
  // Remembers the stream's last answer: after an end or an error every call returns it again.
  absl::StatusOr<std::optional<WatchEvent<T>>> Finish(
      absl::StatusOr<std::optional<WatchEvent<T>>> result) {
    final_ = result;
    return result;
  }

  void StartRead() {
    auto target = std::make_shared<concurrency::streams::container_buffer<std::string>>();
    std::shared_ptr<void> ticket = InFlight::Enter(in_flight_);
    std::shared_ptr<WatchState> state = state_;
    concurrency::streams::istream body = response_.body();
    pplx::task<size_t> read;
    try {
      read = body.read_line(*target);
    } catch (...) {
      read = pplx::task_from_exception<size_t>(std::current_exception());
    }
    // The continuation keeps the http_client (the connection's owner) and the ticket.
    read.then([state, target, body, ticket, http = http_](pplx::task<size_t> task) {
      std::exception_ptr error;
      std::string line;
      bool eof = false;
      try {
        task.get();
        line = target->collection();
        eof = body.is_eof();
      } catch (...) {
        error = std::current_exception();
      }
      absl::MutexLock lock(&state->mu);
      state->line = std::move(line);
      state->eof = eof;
      state->error = error;
      state->line_ready = true;
    });
  }

  const Parser parse_;
  const std::shared_ptr<WatchState> state_;
  const std::shared_ptr<WatchRegistry> registry_;
  const std::shared_ptr<http::client::http_client> http_;
  http::http_response response_;
  const std::shared_ptr<InFlight> in_flight_;
  const std::string server_;
  std::optional<absl::StatusOr<std::optional<WatchEvent<T>>>> final_;
};

// Appends `key=value` (value URL-encoded) to `query` when `value` is not empty.
void AddParam(std::string& query, absl::string_view key, const std::string& value) {
  if (value.empty()) return;
  absl::StrAppend(&query, query.empty() ? "?" : "&", key, "=", web::uri::encode_data_string(value));
}

class RestClient final : public Client {
 public:
  RestClient(const ClusterConfig& config, const ClientOptions& options,
             std::unique_ptr<TokenSource> tokens)
      : config_(config),
        options_(options),
        tokens_(std::move(tokens)),
        // A backstop only: Attempt() enforces each attempt's deadline itself.
        http_(std::make_shared<http::client::http_client>(
            config.server, MakeHttpConfig(config, options.request_timeout + absl::Seconds(1)))) {}

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

  absl::StatusOr<MigrationJobList> ListMigrationJobs(const ListOptions& options,
                                                     absl::Time deadline) override {
    const std::string op =
        absl::StrCat("listing migrationjobs.sluice.dev in ", DescribeNamespace(options.namespace_));
    SLUICE_ASSIGN_OR_RETURN(
        Response r,
        Call(http::methods::GET,
             absl::StrCat(MigrationJobCollectionPath(options.namespace_), ListQuery(options)), "",
             "", deadline, op));
    return Decoded(ParseMigrationJobList(r.body), op);
  }

  absl::StatusOr<std::unique_ptr<WatchStream<MigrationJob>>> WatchMigrationJobs(
      const WatchOptions& options, absl::Time deadline) override {
    return OpenWatch<MigrationJob>(
        MigrationJobCollectionPath(options.namespace_), "migrationjobs.sluice.dev", options,
        deadline, [](absl::string_view line) { return ParseMigrationJobWatchEvent(line); });
  }

  absl::StatusOr<ObjectMetaList> ListObjectMeta(CoreResource resource, const ListOptions& options,
                                                absl::Time deadline) override {
    const std::string plural = CorePlural(resource);
    const std::string op =
        absl::StrCat("listing ", plural, " in ", DescribeNamespace(options.namespace_));
    SLUICE_ASSIGN_OR_RETURN(
        Response r,
        Call(http::methods::GET,
             absl::StrCat(CoreCollectionPath(plural, options.namespace_), ListQuery(options)), "",
             "", deadline, op));
    return Decoded(ParseObjectMetaList(r.body), op);
  }

  absl::StatusOr<std::unique_ptr<WatchStream<ObjectMeta>>> WatchObjectMeta(
      CoreResource resource, const WatchOptions& options, absl::Time deadline) override {
    const std::string plural = CorePlural(resource);
    return OpenWatch<ObjectMeta>(
        CoreCollectionPath(plural, options.namespace_), plural, options, deadline,
        [plural](absl::string_view line) { return ParseObjectMetaWatchEvent(line, plural); });
  }

  absl::StatusOr<ConfigMap> GetConfigMap(const ObjectRef& ref, absl::Time deadline) override {
    const std::string op =
        absl::StrCat("getting configmap \"", ref.namespace_, "/", ref.name, "\"");
    SLUICE_ASSIGN_OR_RETURN(
        Response r, Call(http::methods::GET, CorePath("configmaps", ref), "", "", deadline, op));
    return Decoded(ParseConfigMap(r.body), op);
  }

  absl::StatusOr<Secret> GetSecret(const ObjectRef& ref, absl::Time deadline) override {
    const std::string op = absl::StrCat("getting secret \"", ref.namespace_, "/", ref.name, "\"");
    SLUICE_ASSIGN_OR_RETURN(
        Response r, Call(http::methods::GET, CorePath("secrets", ref), "", "", deadline, op));
    return Decoded(ParseSecret(r.body), op);
  }

  absl::StatusOr<Lease> GetLease(const ObjectRef& ref, absl::Time deadline) override {
    const std::string op = absl::StrCat("getting ", DescribeLease(ref));
    SLUICE_ASSIGN_OR_RETURN(
        Response r,
        Call(http::methods::GET, LeasePath(ref.namespace_, ref.name), "", "", deadline, op));
    return Decoded(ParseLease(r.body), op);
  }

  absl::StatusOr<Lease> CreateLease(const Lease& lease, absl::Time deadline) override {
    const ObjectRef ref{lease.metadata.namespace_, lease.metadata.name};
    const std::string op = absl::StrCat("creating ", DescribeLease(ref));
    Lease body = lease;
    body.metadata.resource_version.clear();
    // A retry after a lost answer gets 409 AlreadyExists for this very create: the caller GETs
    // and finds itself the holder, as client-go's leader election does.
    SLUICE_ASSIGN_OR_RETURN(Response r, Call(http::methods::POST, LeasePath(ref.namespace_, ""),
                                             LeaseJson(body), "application/json", deadline, op));
    return Decoded(ParseLease(r.body), op);
  }

  absl::StatusOr<Lease> UpdateLease(const Lease& lease, absl::Time deadline) override {
    const ObjectRef ref{lease.metadata.namespace_, lease.metadata.name};
    const std::string op = absl::StrCat("updating ", DescribeLease(ref));
    if (lease.metadata.resource_version.empty()) {
      // Lease allows an unconditional PUT; leader election must never make one.
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": no resourceVersion to make the update conditional on"));
    }
    SLUICE_ASSIGN_OR_RETURN(
        Response r, Call(http::methods::PUT, LeasePath(ref.namespace_, ref.name), LeaseJson(lease),
                         "application/json", deadline, op));
    return Decoded(ParseLease(r.body), op);
  }

  void Shutdown() override {
    watches_->Shutdown();
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
  // `inactivity` bounds the time without any byte from the server on one request.
  static http::client::http_client_config MakeHttpConfig(const ClusterConfig& config,
                                                         absl::Duration inactivity) {
    http::client::http_client_config http_config;
    http_config.set_timeout(std::chrono::milliseconds(absl::ToInt64Milliseconds(inactivity)));
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

  static std::string DescribeNamespace(const std::string& ns) {
    return ns.empty() ? "all namespaces" : absl::StrCat("namespace \"", ns, "\"");
  }

  static std::string ListQuery(const ListOptions& options) {
    std::string query;
    AddParam(query, "resourceVersion", options.resource_version);
    if (options.limit > 0) AddParam(query, "limit", absl::StrCat(options.limit));
    AddParam(query, "continue", options.continue_token);
    AddParam(query, "labelSelector", options.label_selector);
    AddParam(query, "fieldSelector", options.field_selector);
    return query;
  }

  static std::string CorePlural(CoreResource resource) {
    return resource == CoreResource::kConfigMaps ? "configmaps" : "secrets";
  }

  static std::string CoreCollectionPath(absl::string_view plural, absl::string_view ns) {
    if (ns.empty()) return absl::StrCat("/api/v1/", plural);
    return absl::StrCat("/api/v1/namespaces/", ns, "/", plural);
  }

  // Opens a watch of the collection at `collection_path` (`what` names it in errors); `parse`
  // reads one line of the stream.
  template <typename T>
  absl::StatusOr<std::unique_ptr<WatchStream<T>>> OpenWatch(
      const std::string& collection_path, absl::string_view what, const WatchOptions& options,
      absl::Time deadline, typename RestWatchStream<T>::Parser parse) {
    std::string query = "?watch=1";
    AddParam(query, "resourceVersion", options.resource_version);
    if (options.allow_bookmarks) AddParam(query, "allowWatchBookmarks", "true");
    AddParam(query, "timeoutSeconds",
             absl::StrCat(std::max<int64_t>(1, absl::ToInt64Seconds(options.timeout))));
    AddParam(query, "labelSelector", options.label_selector);
    AddParam(query, "fieldSelector", options.field_selector);
    const std::string path = absl::StrCat(collection_path, query);
    const std::string op =
        absl::StrCat("watching ", what, " in ", DescribeNamespace(options.namespace_));
    // A client of its own: its inactivity timeout must outlast a quiet stream (the server ends
    // the stream at `timeout`), and its connection goes away with the stream.
    std::shared_ptr<http::client::http_client> http;
    try {
      http = std::make_shared<http::client::http_client>(
          config_.server,
          MakeHttpConfig(config_, options.timeout + options_.request_timeout + absl::Seconds(1)));
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": ", e.what()));
    }
    bool reauthenticated = false;
    while (true) {
      auto state = std::make_shared<WatchState>();
      if (!watches_->Add(state)) {
        return absl::CancelledError(absl::StrCat(op, ": the client was shut down"));
      }
      absl::StatusOr<http::http_response> response = OpenStream(http, path, state, deadline, op);
      if (!response.ok()) {
        watches_->Remove(state);
        return response.status();
      }
      if (response->status_code() == http::status_codes::OK) {
        return std::unique_ptr<WatchStream<T>>(new RestWatchStream<T>(
            state, watches_, http, *response, in_flight_, config_.server, std::move(parse)));
      }
      // An error answer: its body is a short Status object.
      absl::StatusOr<std::string> body = ReadBody(*response, state, deadline, op);
      watches_->Remove(state);
      if (!body.ok()) return body.status();
      auto retry_after = response->headers().find("Retry-After");
      const ApiError error =
          ParseApiError(response->status_code(), *body,
                        retry_after == response->headers().end() ? "" : retry_after->second);
      if (error.http_code == 401 && !reauthenticated) {
        tokens_->Invalidate();
        reauthenticated = true;
        continue;
      }
      return ApiErrorToStatus(error, op);
    }
  }

  static std::string CorePath(absl::string_view resource, const ObjectRef& ref) {
    return absl::StrCat("/api/v1/namespaces/", ref.namespace_, "/", resource, "/", ref.name);
  }

  static std::string LeasePath(absl::string_view ns, absl::string_view name) {
    std::string path = absl::StrCat("/apis/coordination.k8s.io/v1/namespaces/", ns, "/leases");
    if (!name.empty()) absl::StrAppend(&path, "/", name);
    return path;
  }

  static std::string DescribeLease(const ObjectRef& ref) {
    return absl::StrCat("leases.coordination.k8s.io \"", ref.namespace_, "/", ref.name, "\"");
  }

  template <typename T>
  static absl::StatusOr<T> Decoded(absl::StatusOr<T> parsed, absl::string_view op) {
    if (!parsed.ok()) {
      return absl::Status(parsed.status().code(),
                          absl::StrCat(op, ": ", parsed.status().message()));
    }
    return parsed;
  }

  // Sends the watch request on `http` and waits, until `deadline`, for the answer's headers.
  absl::StatusOr<http::http_response> OpenStream(
      const std::shared_ptr<http::client::http_client>& http, const std::string& path,
      const std::shared_ptr<WatchState>& state, absl::Time deadline, const std::string& op) {
    SLUICE_ASSIGN_OR_RETURN(std::string token, tokens_->Token());
    http::http_request request(http::methods::GET);
    request.set_request_uri(path);
    request.headers().add("Accept", "application/json");
    request.headers().add("User-Agent", options_.user_agent);
    if (!config_.tls_server_name.empty()) request.headers().add("Host", config_.tls_server_name);
    if (!token.empty()) request.headers().add("Authorization", absl::StrCat("Bearer ", token));
    struct Opened {
      absl::Mutex mu;
      bool done ABSL_GUARDED_BY(mu) = false;
      http::http_response response ABSL_GUARDED_BY(mu);
      std::exception_ptr error ABSL_GUARDED_BY(mu);
    };
    auto opened = std::make_shared<Opened>();
    std::shared_ptr<void> ticket = InFlight::Enter(in_flight_);
    pplx::task<http::http_response> sent;
    try {
      sent = http->request(request, state->cts.get_token());
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(op, ": cannot send the request: ", e.what()));
    }
    sent.then([opened, ticket, http](pplx::task<http::http_response> task) {
      http::http_response response;
      std::exception_ptr error;
      try {
        response = task.get();
      } catch (...) {
        error = std::current_exception();
      }
      absl::MutexLock lock(&opened->mu);
      opened->done = true;
      opened->response = response;
      opened->error = error;
    });
    {
      absl::MutexLock lock(&opened->mu);
      auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(opened->mu) { return opened->done; };
      bool cancelled = false;
      while (!opened->done && !cancelled && absl::Now() < deadline) {
        // Wakes for the answer, or every so often to notice a cancellation.
        opened->mu.AwaitWithDeadline(absl::Condition(&done),
                                     std::min(deadline, absl::Now() + absl::Milliseconds(50)));
        absl::MutexLock state_lock(&state->mu);
        cancelled = state->cancelled;
      }
      if (cancelled) return absl::CancelledError(absl::StrCat(op, ": the client was shut down"));
      if (!opened->done) {
        state->cts.cancel();
        return absl::DeadlineExceededError(
            absl::StrCat(op, ": no answer from the API server at ", config_.server));
      }
      if (opened->error == nullptr) return opened->response;
      try {
        std::rethrow_exception(opened->error);
      } catch (const std::exception& e) {
        return absl::UnavailableError(
            absl::StrCat(op, ": cannot reach the API server at ", config_.server, ": ", e.what()));
      }
    }
  }

  // Returns the whole body of an error answer to a watch, waiting until `deadline`.
  absl::StatusOr<std::string> ReadBody(http::http_response& response,
                                       const std::shared_ptr<WatchState>& state,
                                       absl::Time deadline, const std::string& op) {
    struct Body {
      absl::Mutex mu;
      bool done ABSL_GUARDED_BY(mu) = false;
      std::string text ABSL_GUARDED_BY(mu);
      bool failed ABSL_GUARDED_BY(mu) = false;
    };
    auto body = std::make_shared<Body>();
    std::shared_ptr<void> ticket = InFlight::Enter(in_flight_);
    response.extract_string(true).then([body, ticket](pplx::task<std::string> task) {
      std::string text;
      bool failed = false;
      try {
        text = task.get();
      } catch (...) {
        failed = true;
      }
      absl::MutexLock lock(&body->mu);
      body->done = true;
      body->text = std::move(text);
      body->failed = failed;
    });
    absl::MutexLock lock(&body->mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(body->mu) { return body->done; };
    if (!body->mu.AwaitWithDeadline(absl::Condition(&done), deadline)) {
      state->cts.cancel();
      return absl::DeadlineExceededError(absl::StrCat(op, ": the error answer did not arrive"));
    }
    if (body->failed) {
      return absl::UnavailableError(absl::StrCat(op, ": the error answer broke off"));
    }
    return body->text;
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
  const std::shared_ptr<WatchRegistry> watches_ = std::make_shared<WatchRegistry>();

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Exchanges an attempt is waiting for, to cancel on Shutdown.
  std::set<std::shared_ptr<Exchange>> exchanges_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace

std::string MigrationJobCollectionPath(absl::string_view ns) {
  if (ns.empty()) return absl::StrCat("/apis/", kGroup, "/", kVersion, "/", kPlural);
  return absl::StrCat("/apis/", kGroup, "/", kVersion, "/namespaces/", ns, "/", kPlural);
}

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
