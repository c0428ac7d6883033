#include "tests/support/fake_kube/fake_kube_server.h"

#include <cpprest/http_listener.h>
#include <cpprest/producerconsumerstream.h>

#include <sys/socket.h>
#include <algorithm>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/support/fake_kube/crd_schema.h"
#include "tests/support/loopback.h"

namespace sluice::fake_kube {
namespace {

using web::json::value;
namespace http = web::http;
using Listener = http::experimental::listener::http_listener;

constexpr absl::Duration kMaxHang = absl::Seconds(60);  // bounded, whatever a test asks
// How long closing the listener waits for client connections to end (see StopListening).
constexpr absl::Duration kConnectionDrain = absl::Seconds(5);

struct ResourceType {
  std::string group;  // "" for core
  std::string version;
  std::string resource;
  std::string kind;
  bool crd = false;
  bool status_subresource = false;
  bool cluster_scoped = false;

  std::string Qualified() const {
    return group.empty() ? resource : absl::StrCat(resource, ".", group);
  }
  std::string ApiVersion() const {
    return group.empty() ? version : absl::StrCat(group, "/", version);
  }
};

struct Route {
  const ResourceType* type = nullptr;
  std::string ns;  // empty: all namespaces
  std::string name;
  std::string subresource;
};

struct Watcher;

struct Reply {
  Reply() = default;
  Reply(int code_, value body_, std::vector<std::pair<std::string, std::string>> headers_ = {},
        std::shared_ptr<Watcher> watcher_ = nullptr)
      : code(code_),
        body(std::move(body_)),
        headers(std::move(headers_)),
        watcher(std::move(watcher_)) {}

  int code = 200;
  value body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<Watcher> watcher;  // set: a watch stream, answered with its buffer
};

// One open watch stream: events are written as lines to `buffer`, which the listener sends
// as chunks while the stream is open. Guarded by the server's mutex, except `dead`.
struct Watcher {
  concurrency::streams::producer_consumer_buffer<uint8_t> buffer;
  const ResourceType* type = nullptr;
  std::string ns;                             // empty: all namespaces
  std::map<std::string, std::string> fields;  // fieldSelector: metadata.name / namespace
  std::vector<std::string> label_terms;       // labelSelector terms
  bool bookmarks = false;
  bool table = false;  // objects are sent as one-row Tables (kubectl get -w)
  std::chrono::steady_clock::time_point deadline;
  bool closed = false;
  std::atomic<bool> dead{false};  // the client went away (set from the listener's threads)

  void Send(const std::string& line) {
    if (closed) return;
    const std::string text = absl::StrCat(line, "\n");
    buffer.putn_nocopy(reinterpret_cast<const uint8_t*>(text.data()), text.size()).wait();
    buffer.sync().wait();
  }
  void Close() {
    if (closed) return;
    closed = true;
    buffer.close(std::ios_base::out).wait();
  }
};

// The query parameters of a request, decoded.
std::map<std::string, std::string> QueryParams(const std::string& query) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    out[web::uri::decode(kv.first)] =
        web::uri::decode(absl::StrReplaceAll(kv.second, {{"+", " "}}));
  }
  return out;
}

std::string Now() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
}

Reply StatusReply(int code, const std::string& reason, const std::string& message,
                  value details = value::null()) {
  value s = value::object();
  s["kind"] = value::string("Status");
  s["apiVersion"] = value::string("v1");
  s["metadata"] = value::object();
  s["status"] = value::string("Failure");
  s["message"] = value::string(message);
  s["reason"] = value::string(reason);
  if (!details.is_null()) s["details"] = details;
  s["code"] = value::number(code);
  return Reply{code, s, {}};
}

value Details(const std::string& name, const std::string& group, const std::string& kind) {
  value d = value::object();
  if (!name.empty()) d["name"] = value::string(name);
  d["group"] = value::string(group);
  d["kind"] = value::string(kind);
  return d;
}

Reply NotFound(const ResourceType& t, const std::string& name) {
  return StatusReply(404, "NotFound", absl::StrCat(t.Qualified(), " \"", name, "\" not found"),
                     Details(name, t.group, t.resource));
}

Reply Conflict(const ResourceType& t, const std::string& name) {
  return StatusReply(409, "Conflict",
                     absl::StrCat("Operation cannot be fulfilled on ", t.Qualified(), " \"", name,
                                  "\": the object has been modified; please apply your changes to "
                                  "the latest version and try again"),
                     Details(name, t.group, t.resource));
}

Reply BadRequest(const std::string& message) { return StatusReply(400, "BadRequest", message); }

Reply Invalid(const ResourceType& t, const std::string& name,
              const std::vector<FieldError>& errors) {
  std::vector<std::string> messages;
  std::vector<value> causes;
  for (const FieldError& e : errors) {
    messages.push_back(e.message);
    value c = value::object();
    c["reason"] = value::string(e.reason);
    c["message"] = value::string(e.message);
    c["field"] = value::string(e.field);
    causes.push_back(c);
  }
  value details = Details(name, t.group, t.kind);
  details["causes"] = value::array(causes);
  const std::string list =
      messages.size() == 1 ? messages[0] : absl::StrCat("[", absl::StrJoin(messages, ", "), "]");
  return StatusReply(422, "Invalid",
                     absl::StrCat(t.kind, t.group.empty() ? "" : ".", t.group, " \"", name,
                                  "\" is invalid: ", list),
                     details);
}

std::string GetString(const value& v, const char* key) {
  return v.is_object() && v.has_string_field(key) ? v.at(key).as_string() : "";
}

value MergePatch(const value& target, const value& patch) {
  if (!patch.is_object()) return patch;
  value result = target.is_object() ? target : value::object();
  for (const auto& [key, v] : patch.as_object()) {
    if (v.is_null()) {
      if (result.has_field(key)) result.erase(key);
    } else {
      result[key] = MergePatch(result.has_field(key) ? result.at(key) : value::null(), v);
    }
  }
  return result;
}

// JSON pointer tokens of `pointer` (RFC 6901).
std::vector<std::string> PointerTokens(const std::string& pointer) {
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  for (absl::string_view t : absl::StrSplit(pointer.substr(1), '/')) {
    tokens.push_back(absl::StrReplaceAll(t, {{"~1", "/"}, {"~0", "~"}}));
  }
  return tokens;
}

value* Walk(value& doc, const std::vector<std::string>& tokens, size_t count) {
  value* node = &doc;
  for (size_t i = 0; i < count; ++i) {
    if (node->is_object()) {
      if (!node->has_field(tokens[i])) return nullptr;
      node = &node->at(tokens[i]);
    } else if (node->is_array()) {
      size_t index = 0;
      if (!absl::SimpleAtoi(tokens[i], &index) || index >= node->size()) return nullptr;
      node = &node->at(index);
    } else {
      return nullptr;
    }
  }
  return node;
}

// Applies an RFC 6902 patch; returns an error message, empty on success.
std::string ApplyJsonPatch(value& doc, const value& ops) {
  if (!ops.is_array()) return "a JSON patch must be an array of operations";
  for (const value& op : ops.as_array()) {
    const std::string name = GetString(op, "op");
    const std::string path = GetString(op, "path");
    const std::vector<std::string> tokens = PointerTokens(path);
    if (name == "test") {
      value* node = Walk(doc, tokens, tokens.size());
      if (node == nullptr || !op.has_field("value") || !(*node == op.at("value"))) {
        return absl::StrCat("the \"test\" operation on ", path, " failed");
      }
      continue;
    }
    value operand;
    if (name == "add" || name == "replace") {
      if (!op.has_field("value")) return absl::StrCat(name, " on ", path, " has no value");
      operand = op.at("value");
    } else if (name == "move" || name == "copy") {
      const std::vector<std::string> from = PointerTokens(GetString(op, "from"));
      value* source = Walk(doc, from, from.size());
      if (source == nullptr) return absl::StrCat(name, ": \"from\" does not exist");
      operand = *source;
      if (name == "move") {
        value* parent = Walk(doc, from, from.size() - 1);
        if (parent->is_object()) {
          parent->erase(from.back());
        } else {
          std::vector<value> items(parent->as_array().begin(), parent->as_array().end());
          items.erase(items.begin() + std::stoul(from.back()));
          *parent = value::array(items);
        }
      }
    } else if (name != "remove") {
      return absl::StrCat("unknown JSON patch operation \"", name, "\"");
    }
    if (tokens.empty()) {
      if (name == "remove") return "cannot remove the whole document";
      doc = operand;
      continue;
    }
    value* parent = Walk(doc, tokens, tokens.size() - 1);
    if (parent == nullptr) return absl::StrCat("the parent of ", path, " does not exist");
    const std::string& last = tokens.back();
    if (parent->is_object()) {
      const bool exists = parent->has_field(last);
      if ((name == "remove" || name == "replace") && !exists) {
        return absl::StrCat(name, " of ", path, ": the field does not exist");
      }
      if (name == "remove") {
        parent->erase(last);
      } else {
        (*parent)[last] = operand;
      }
    } else if (parent->is_array()) {
      std::vector<value> items(parent->as_array().begin(), parent->as_array().end());
      size_t index = items.size();
      if (!(name == "add" && last == "-") &&
          (!absl::SimpleAtoi(last, &index) || index > items.size() ||
           (name != "add" && index == items.size()))) {
        return absl::StrCat(name, " of ", path, ": index out of range");
      }
      if (name == "remove") {
        items.erase(items.begin() + index);
      } else if (name == "replace") {
        items[index] = operand;
      } else {
        items.insert(items.begin() + index, operand);
      }
      *parent = value::array(items);
    } else {
      return absl::StrCat("the parent of ", path, " is not a container");
    }
  }
  return "";
}

// Returns the object without metadata and status: what generation tracks.
std::string Content(const value& object) {
  value copy = object;
  if (copy.has_field("metadata")) copy.erase("metadata");
  if (copy.has_field("status")) copy.erase("status");
  return copy.serialize();
}

bool IsDnsSubdomain(const std::string& name) {
  static const std::regex kRe("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return name.size() <= 253 && std::regex_match(name, kRe);
}

}  // namespace

class FakeKubeServer::Impl {
 public:
  Impl(ServerOptions options, CrdInfo crd) : options_(std::move(options)), crd_(std::move(crd)) {
    types_.push_back({"", "v1", "events", "Event"});
    types_.push_back({"", "v1", "configmaps", "ConfigMap"});
    types_.push_back({"", "v1", "secrets", "Secret"});
    types_.push_back({"coordination.k8s.io", "v1", "leases", "Lease"});
    types_.push_back({"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                      "CustomResourceDefinition", false, false, true});
    types_.push_back(
        {crd_.group, crd_.version, crd_.plural, crd_.kind, true, crd_.status_subresource});
    history_floor_ = rv_;
    reaper_ = std::thread([this] { ReapWatches(); });
  }

  ~Impl() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
      CloseAllWatches(false);
      // Handlers run on cpprest's threads and use this object: let them end first (bounded).
      cv_.wait_for(lock, std::chrono::seconds(10), [this] { return active_ == 0; });
    }
    reaper_.join();
    (void)StopListening();
  }

  // Ends watch streams at their timeoutSeconds and forgets those whose client went away.
  void ReapWatches() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      for (auto it = watchers_.begin(); it != watchers_.end();) {
        Watcher& w = **it;
        if (w.deadline <= std::chrono::steady_clock::now()) w.Close();
        if (w.closed || w.dead) {
          it = watchers_.erase(it);
          ++changes_;
          cv_.notify_all();
          continue;
        }
        next = std::min(next, w.deadline);
        ++it;
      }
      // Wakes up at the next deadline, or every 200 ms to notice streams whose client left.
      cv_.wait_until(lock, next);
    }
  }

  // Requires mu_.
  void CloseAllWatches(bool abruptly) {
    // Cut first: the final chunks written below then go nowhere.
    if (abruptly) CutConnections();
    for (const auto& w : watchers_) w->Close();
    watchers_.clear();
    ++changes_;
    cv_.notify_all();
  }

  absl::Status StartListening() {
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (listener_) return absl::OkStatus();
    http::experimental::listener::http_listener_config config;
    const ServerOptions options = options_;
    config.set_ssl_context_callback([options](boost::asio::ssl::context& ctx) {
      ctx.set_options(boost::asio::ssl::context::default_workarounds |
                      boost::asio::ssl::context::no_sslv2 | boost::asio::ssl::context::no_sslv3);
      ctx.use_certificate_chain(boost::asio::buffer(options.cert_pem));
      ctx.use_private_key(boost::asio::buffer(options.key_pem), boost::asio::ssl::context::pem);
      if (!options.client_ca_pem.empty()) {
        ctx.add_certificate_authority(boost::asio::buffer(options.client_ca_pem));
        ctx.set_verify_mode(options.require_client_cert
                                ? boost::asio::ssl::verify_peer |
                                      boost::asio::ssl::verify_fail_if_no_peer_cert
                                : boost::asio::ssl::verify_peer);
      }
    });
    try {
      auto listener = std::make_unique<Listener>(url(), config);
      listener->support([this](http::http_request request) { Serve(request); });
      listener->open().wait();
      listener_ = std::move(listener);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", url(), ": ", e.what()));
    }
    return absl::OkStatus();
  }

  absl::Status StopListening() {
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (!listener_) return absl::OkStatus();
    {
      // A watch holds its connection open: end the streams (as a restarting server does) and
      // refuse new ones until the listener is closed.
      std::lock_guard<std::mutex> state_lock(mu_);
      draining_ = true;
      CloseAllWatches(false);
    }
    WaitForClientConnectionsToEnd(kConnectionDrain);
    {
      std::lock_guard<std::mutex> state_lock(mu_);
      draining_ = false;
    }
    try {
      listener_->close().wait();
    } catch (const std::exception& e) {
      listener_.reset();
      return absl::InternalError(absl::StrCat("closing the listener: ", e.what()));
    }
    listener_.reset();
    return absl::OkStatus();
  }

  // cpprest's listener is not safe against close() racing with a connection's own work. When a
  // client drops an idle keep-alive TLS connection (destroying its http_client), the listener
  // reads "stream truncated", answers 400 from a pplx continuation of the request's
  // get_response() and starts a socket write; a close() of the listener on another thread at
  // that moment frees the socket's reactor state under it: a SIGSEGV in
  // epoll_reactor::start_op, between tests (each stops its server) or at exit. So before closing
  // the listener, wait until no client connection is open or closed-but-unhandled: no socket on
  // this port in the kernel's ESTABLISHED or CLOSE_WAIT state (the listener closes its side
  // once it has handled the client's close). Bounded: a client still connected (a test that
  // keeps one) only delays the close by `timeout`.
  void WaitForClientConnectionsToEnd(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    while (OpenServerConnections() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  // Shuts down (both ways) this process's sockets of established connections to the server's
  // port. The descriptors stay cpprest's: its reads and writes on them fail, and it closes them.
  void CutConnections() const {
    std::set<std::string> inodes;
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // header
    const std::string local_port = absl::StrFormat(":%04X", port_);
    while (std::getline(table, line)) {
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 10 || !absl::EndsWith(fields[1], local_port) || fields[3] != "01") {
        continue;
      }
      inodes.insert(absl::StrCat("socket:[", fields[9], "]"));
    }
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
      std::error_code link_error;
      const std::string target = std::filesystem::read_symlink(entry.path(), link_error).string();
      if (link_error || !inodes.count(target)) continue;
      int fd = 0;
      if (absl::SimpleAtoi(entry.path().filename().string(), &fd)) ::shutdown(fd, SHUT_RDWR);
    }
  }

  // Returns the server-side sockets of this port in /proc/net/tcp that are ESTABLISHED (01) or
  // CLOSE_WAIT (08).
  int OpenServerConnections() const {
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // header
    const std::string local_port = absl::StrFormat(":%04X", port_);
    int open = 0;
    while (std::getline(table, line)) {
      std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (fields.size() < 4) continue;
      if (!absl::EndsWith(fields[1], local_port)) continue;
      if (fields[3] == "01" || fields[3] == "08") ++open;
    }
    return open;
  }

  std::string url() const { return absl::StrCat("https://127.0.0.1:", port_); }

  // The request handler, on cpprest's thread pool.
  void Serve(http::http_request request) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++active_;
      ++received_;
      ++changes_;
      cv_.notify_all();
    }
    ServeActive(request);
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    cv_.notify_all();
  }

  void ServeActive(http::http_request& request) {
    LoggedRequest entry;
    entry.method = request.method();
    entry.path = web::uri::decode(request.relative_uri().path());
    entry.query = request.relative_uri().query();
    auto header = [&](const char* name) {
      auto it = request.headers().find(name);
      return it == request.headers().end() ? std::string() : it->second;
    };
    entry.content_type = header("Content-Type");
    entry.authorization = header("Authorization");
    entry.accept = header("Accept");
    try {
      entry.body = request.extract_string(true).get();
    } catch (const std::exception&) {
      entry.body.clear();
    }

    Reply reply = Dispatch(entry);
    entry.response_code = reply.code;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log_.push_back(entry);
      ++changes_;
      cv_.notify_all();
    }
    http::http_response response(static_cast<http::status_code>(reply.code));
    for (const auto& [name, v] : reply.headers) response.headers().add(name, v);
    bool close_connection;
    {
      std::lock_guard<std::mutex> lock(mu_);
      close_connection = close_connections_;
    }
    if (close_connection && !reply.watcher) response.headers().add("Connection", "close");
    if (reply.watcher) {
      // No Content-Length: cpprest sends the buffer as chunks, headers first, as it fills.
      response.set_body(reply.watcher->buffer.create_istream(), "application/json");
      // A connection that served a watch is not reused, so that a restart (StopListening) need
      // not wait for idle keep-alive connections of streams that have ended.
      response.headers().add("Connection", "close");
      std::shared_ptr<Watcher> watcher = reply.watcher;
      request.reply(response).then([watcher](pplx::task<void> sent) {
        try {
          sent.get();
        } catch (const std::exception&) {
          // The client went away.
        }
        watcher->dead = true;  // the reaper forgets the stream
      });
      return;
    }
    response.set_body(reply.body.serialize(), "application/json");
    try {
      request.reply(response).wait();
    } catch (const std::exception&) {
      // The client went away (e.g. it timed out during a hang).
    }
  }

  Reply Dispatch(LoggedRequest& entry) {
    std::optional<Fault> fault = TakeFault(entry);
    if (fault) {
      if (fault->hang > absl::ZeroDuration()) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(
            lock,
            std::chrono::milliseconds(absl::ToInt64Milliseconds(std::min(fault->hang, kMaxHang))),
            [this] { return stopping_; });
      } else {
        entry.injected = true;
        Reply reply = StatusReply(fault->http_code, ReasonFor(fault->http_code),
                                  absl::StrCat("injected fault: HTTP ", fault->http_code));
        if (fault->retry_after_s >= 0) {
          reply.headers.push_back({"Retry-After", absl::StrCat(fault->retry_after_s)});
          value details = value::object();
          details["retryAfterSeconds"] = value::number(fault->retry_after_s);
          reply.body["details"] = details;
        }
        return reply;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    const std::string prefix = "Bearer ";
    if (!absl::StartsWith(entry.authorization, prefix) ||
        !tokens_.count(entry.authorization.substr(prefix.size()))) {
      return StatusReply(401, "Unauthorized", "Unauthorized");
    }
    if (entry.method == http::methods::GET) {
      // Discovery is open to every authenticated user (the system:discovery ClusterRole).
      if (std::optional<value> document = Discovery(entry.path)) return Reply(200, *document);
    }
    std::optional<Route> route = Parse(entry.path);
    if (!route) {
      return StatusReply(404, "NotFound", "the server could not find the requested resource",
                         value::object());
    }
    std::optional<Reply> denied =
        Authorize(entry.authorization.substr(prefix.size()), *route, entry);
    if (denied) return *denied;
    return Handle(*route, entry);
  }

  // The name of the served custom resource's CRD, e.g. "migrationjobs.sluice.dev".
  std::string CrdName() const { return absl::StrCat(crd_.plural, ".", crd_.group); }

  // Requires mu_. Whether the custom resource is served: from the start, or once its CRD was
  // created through the API (ServerOptions::crd_installed).
  bool CrdServed() const {
    return options_.crd_installed ||
           objects_.count(Key("customresourcedefinitions", "", CrdName())) > 0;
  }

  // Returns the legacy (unaggregated) discovery document at `path`, if it is one: what kubectl
  // reads to map `mj` to sluice.dev/v1alpha1 migrationjobs. An aggregated-discovery Accept header
  // gets these documents too, which kubectl takes as "not aggregated" and reads them as they are.
  std::optional<value> Discovery(const std::string& path) const {
    auto strings = [](const std::vector<std::string>& items) {
      std::vector<value> out;
      for (const std::string& item : items) out.push_back(value::string(item));
      return value::array(out);
    };
    auto resource = [&](const ResourceType& t, const std::string& suffix,
                        const std::vector<std::string>& verbs) {
      value r = value::object();
      r["name"] = value::string(absl::StrCat(t.resource, suffix));
      r["singularName"] = value::string(suffix.empty() ? absl::AsciiStrToLower(t.kind) : "");
      r["namespaced"] = value::boolean(!t.cluster_scoped);
      r["kind"] = value::string(t.kind);
      r["verbs"] = strings(verbs);
      if (t.crd && suffix.empty()) {
        r["shortNames"] = strings(crd_.short_names);
        r["categories"] = strings(crd_.categories);
      }
      return r;
    };
    const std::vector<std::string> all_verbs = {"create", "delete", "get",  "list",
                                                "patch",  "update", "watch"};
    if (path == "/version") {
      value v = value::object();
      v["major"] = value::string("1");
      v["minor"] = value::string("32");
      v["gitVersion"] = value::string("v1.32.0-sluice-fake");
      v["platform"] = value::string("linux/amd64");
      return v;
    }
    if (path == "/api") {
      value v = value::object();
      v["kind"] = value::string("APIVersions");
      v["versions"] = strings({"v1"});
      value address = value::object();
      address["clientCIDR"] = value::string("0.0.0.0/0");
      address["serverAddress"] = value::string(absl::StrCat("127.0.0.1:", port_));
      v["serverAddressByClientCIDRs"] = value::array({address});
      return v;
    }
    if (path == "/apis") {
      std::vector<value> groups;
      std::set<std::string> seen;
      for (const ResourceType& t : types_) {
        if (t.group.empty() || (t.crd && !CrdServed()) || !seen.insert(t.group).second) continue;
        value version = value::object();
        version["groupVersion"] = value::string(t.ApiVersion());
        version["version"] = value::string(t.version);
        value group = value::object();
        group["name"] = value::string(t.group);
        group["versions"] = value::array({version});
        group["preferredVersion"] = version;
        groups.push_back(group);
      }
      value v = value::object();
      v["kind"] = value::string("APIGroupList");
      v["apiVersion"] = value::string("v1");
      v["groups"] = value::array(groups);
      return v;
    }
    std::vector<value> resources;
    std::string group_version;
    for (const ResourceType& t : types_) {
      const std::string prefix = t.group.empty() ? "/api/" : "/apis/";
      if (path != absl::StrCat(prefix, t.ApiVersion()) || (t.crd && !CrdServed())) continue;
      group_version = t.ApiVersion();
      resources.push_back(resource(t, "", all_verbs));
      if (t.status_subresource)
        resources.push_back(resource(t, "/status", {"get", "patch", "update"}));
    }
    if (resources.empty()) return std::nullopt;
    value v = value::object();
    v["kind"] = value::string("APIResourceList");
    v["apiVersion"] = value::string("v1");
    v["groupVersion"] = value::string(group_version);
    v["resources"] = value::array(resources);
    return v;
  }

  // Requires mu_. Returns a 403 answer when the token's RBAC rules do not allow the request.
  std::optional<Reply> Authorize(const std::string& token, const Route& route,
                                 const LoggedRequest& entry) {
    auto it = rbac_.find(token);
    if (it == rbac_.end()) return std::nullopt;
    const ResourceType& t = *route.type;
    std::string verb;
    if (entry.method == http::methods::GET) {
      verb = !route.name.empty() ? "get"
                                 : (absl::StrContains(entry.query, "watch=") ? "watch" : "list");
    } else if (entry.method == http::methods::POST) {
      verb = "create";
    } else if (entry.method == http::methods::PUT) {
      verb = "update";
    } else if (entry.method == http::methods::PATCH) {
      verb = "patch";
    } else if (entry.method == http::methods::DEL) {
      verb = "delete";
    } else {
      verb = absl::AsciiStrToLower(entry.method);
    }
    const std::string resource =
        route.subresource.empty() ? t.resource : absl::StrCat(t.resource, "/", route.subresource);
    auto matches = [](const std::vector<std::string>& list, const std::string& v) {
      return std::find(list.begin(), list.end(), v) != list.end() ||
             std::find(list.begin(), list.end(), "*") != list.end();
    };
    for (const RbacRule& rule : it->second.second) {
      if (matches(rule.api_groups, t.group) && matches(rule.resources, resource) &&
          matches(rule.verbs, verb) &&
          (rule.resource_names.empty() || matches(rule.resource_names, route.name))) {
        return std::nullopt;
      }
    }
    const std::string who =
        route.name.empty() ? t.Qualified() : absl::StrCat(t.Qualified(), " \"", route.name, "\"");
    return StatusReply(
        403, "Forbidden",
        absl::StrCat(who, " is forbidden: User \"", it->second.first, "\" cannot ", verb,
                     " resource \"", resource, "\" in API group \"", t.group,
                     route.ns.empty() ? "\" at the cluster scope"
                                      : absl::StrCat("\" in the namespace \"", route.ns, "\"")),
        Details(route.name, t.group, t.resource));
  }

  static std::string ReasonFor(int code) {
    switch (code) {
      case 429:
        return "TooManyRequests";
      case 503:
        return "ServiceUnavailable";
      case 504:
        return "Timeout";
      case 409:
        return "Conflict";
      default:
        return code >= 500 ? "InternalError" : "BadRequest";
    }
  }

  std::optional<Fault> TakeFault(const LoggedRequest& entry) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if ((it->method.empty() || it->method == entry.method) &&
          absl::StrContains(entry.path, it->path_contains)) {
        Fault fault = *it;
        if (--it->times <= 0) faults_.erase(it);
        return fault;
      }
    }
    return std::nullopt;
  }

  std::optional<Route> Parse(const std::string& path) const {
    std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    std::string group, version;
    size_t i = 0;
    if (parts.size() >= 2 && parts[0] == "api") {
      version = parts[1];
      i = 2;
    } else if (parts.size() >= 3 && parts[0] == "apis") {
      group = parts[1];
      version = parts[2];
      i = 3;
    } else {
      return std::nullopt;
    }
    Route route;
    if (parts.size() > i + 1 && parts[i] == "namespaces") {
      route.ns = parts[i + 1];
      i += 2;
    }
    if (parts.size() <= i) return std::nullopt;
    for (const ResourceType& t : types_) {
      if (t.group == group && t.version == version && t.resource == parts[i] &&
          (!t.crd || CrdServed())) {
        route.type = &t;
      }
    }
    if (route.type == nullptr) return std::nullopt;
    if (route.type->cluster_scoped && !route.ns.empty()) return std::nullopt;
    if (parts.size() > i + 1) route.name = parts[i + 1];
    if (parts.size() > i + 2) route.subresource = parts[i + 2];
    if (parts.size() > i + 3) return std::nullopt;
    if (!route.subresource.empty() &&
        !(route.subresource == "status" && route.type->status_subresource)) {
      return std::nullopt;
    }
    if (!route.name.empty() && route.ns.empty() && !route.type->cluster_scoped) return std::nullopt;
    return route;
  }

  static std::string Key(const std::string& resource, const std::string& ns,
                         const std::string& name) {
    return absl::StrCat(resource, "|", ns, "|", name);
  }

  // Requires mu_.
  Reply Handle(const Route& route, const LoggedRequest& entry) {
    const ResourceType& t = *route.type;
    const std::string& method = entry.method;
    if (route.name.empty()) {
      if (method == http::methods::GET) {
        const std::map<std::string, std::string> params = QueryParams(entry.query);
        auto watch = params.find("watch");
        if (watch != params.end() && (watch->second == "1" || watch->second == "true")) {
          return Watch(t, route.ns, params, entry.accept);
        }
        return List(t, route.ns, params, entry.accept);
      }
      if (method == http::methods::POST) {
        if (route.ns.empty() && !t.cluster_scoped) {
          return StatusReply(405, "MethodNotAllowed", "create needs a namespace");
        }
        return Create(t, route.ns, entry.body, entry.query);
      }
      return StatusReply(
          405, "MethodNotAllowed",
          absl::StrCat("the server does not allow this method on the requested resource"));
    }
    const std::string key = Key(t.resource, route.ns, route.name);
    auto stored = objects_.find(key);
    if (method == http::methods::GET) {
      if (stored == objects_.end()) return NotFound(t, route.name);
      return Reply{200, stored->second, {}};
    }
    if (method == http::methods::DEL) {
      if (stored == objects_.end()) return NotFound(t, route.name);
      return Reply{200, Delete(t, route.ns, route.name), {}};
    }
    if (method != http::methods::PUT && method != http::methods::PATCH) {
      return StatusReply(405, "MethodNotAllowed",
                         "the server does not allow this method on the requested resource");
    }
    const bool status_write = route.subresource == "status";
    value body;
    if (method == http::methods::PATCH) {
      const std::string type(
          absl::StripAsciiWhitespace(entry.content_type.substr(0, entry.content_type.find(';'))));
      const bool merge = type == "application/merge-patch+json" ||
                         (!t.crd && type == "application/strategic-merge-patch+json");
      const bool json_patch = type == "application/json-patch+json";
      if (!merge && !json_patch) {
        return StatusReply(
            415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml");
      }
      value patch;
      try {
        patch = value::parse(entry.body);
      } catch (const std::exception& e) {
        return BadRequest(absl::StrCat("error decoding patch: ", e.what()));
      }
      if (stored == objects_.end()) return NotFound(t, route.name);
      if (merge) {
        if (!patch.is_object()) return BadRequest("a merge patch must be a JSON object");
        body = MergePatch(stored->second, patch);
      } else {
        body = stored->second;
        const std::string error = ApplyJsonPatch(body, patch);
        if (!error.empty()) {
          return Invalid(t, route.name, {{"FieldValueInvalid", "", error}});
        }
      }
      // A resourceVersion in the patched object is a precondition (kube-api.md section 1).
      const std::string rv =
          GetString(body.has_field("metadata") ? body.at("metadata") : value(), "resourceVersion");
      if (!rv.empty() && rv != GetString(stored->second.at("metadata"), "resourceVersion")) {
        return Conflict(t, route.name);
      }
    } else {
      if (!absl::StartsWith(entry.content_type, "application/json")) {
        return StatusReply(
            415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json, application/yaml");
      }
      try {
        body = value::parse(entry.body);
      } catch (const std::exception& e) {
        return BadRequest(absl::StrCat("couldn't decode the body: ", e.what()));
      }
      if (!body.is_object()) return BadRequest("the body must be a JSON object");
      const value metadata = body.has_field("metadata") ? body.at("metadata") : value::object();
      const std::string name = GetString(metadata, "name");
      if (name != route.name) {
        return BadRequest(absl::StrCat("the name of the object (", name,
                                       ") does not match the name on the URL (", route.name, ")"));
      }
      const std::string ns = GetString(metadata, "namespace");
      if (!ns.empty() && ns != route.ns) {
        return BadRequest(
            "the namespace of the provided object does not match the namespace sent on the "
            "request");
      }
      if (stored == objects_.end()) return NotFound(t, route.name);
      const std::string rv = GetString(metadata, "resourceVersion");
      if (rv.empty() && t.crd) {
        return Invalid(t, route.name,
                       {{"FieldValueInvalid", "metadata.resourceVersion",
                         "metadata.resourceVersion: Invalid value: 0x0: must be specified for an "
                         "update"}});
      }
      if (!rv.empty() && rv != GetString(stored->second.at("metadata"), "resourceVersion")) {
        return Conflict(t, route.name);
      }
    }
    if (t.crd && conflicts_ > 0) {
      --conflicts_;
      return Conflict(t, route.name);
    }
    return Write(t, route.name, stored->second, body, status_write, entry.query);
  }

  // Requires mu_. Builds the object to store from `old` and the client's `requested` object, then
  // prunes, validates and stores it.
  Reply Write(const ResourceType& t, const std::string& name, const value& old,
              const value& requested, bool status_write, const std::string& query) {
    value next;
    if (status_write) {
      next = old;
      if (requested.has_field("status")) {
        next["status"] = requested.at("status");
      } else if (next.has_field("status")) {
        next.erase("status");
      }
    } else {
      next = requested;
      next["metadata"] = MergeMetadata(old.at("metadata"), requested.has_field("metadata")
                                                               ? requested.at("metadata")
                                                               : value::object());
      if (t.status_subresource) {
        if (old.has_field("status")) {
          next["status"] = old.at("status");
        } else if (next.has_field("status")) {
          next.erase("status");
        }
      }
    }
    next["kind"] = value::string(t.kind);
    next["apiVersion"] = value::string(t.ApiVersion());
    Reply checked = Check(t, name, next, query);
    if (checked.code != 200) return checked;
    if (t.crd && !status_write && Content(next) != Content(old)) {
      next["metadata"]["generation"] =
          value::number(old.at("metadata").at("generation").as_number().to_int64() + 1);
    }
    // An unchanged object is not written: same resourceVersion (etcd3 store short-circuit).
    if (next.serialize() == old.serialize()) return Reply{200, old, checked.headers};
    next["metadata"]["resourceVersion"] = value::string(absl::StrCat(++rv_));
    const std::string ns = GetString(next.at("metadata"), "namespace");
    objects_[Key(t.resource, ns, name)] = next;
    Record("MODIFIED", t, ns, name, next, old);
    if (t.resource == "customresourcedefinitions" && name == CrdName()) crd_ = *pending_crd_;
    return Reply{200, next, checked.headers};
  }

  // Client-settable metadata (labels, annotations) from `requested`; the rest from `old`.
  static value MergeMetadata(const value& old, const value& requested) {
    value out = old;
    for (const char* field : {"labels", "annotations", "finalizers", "ownerReferences"}) {
      if (requested.has_field(field)) {
        out[field] = requested.at(field);
      } else if (out.has_field(field)) {
        out.erase(field);
      }
    }
    return out;
  }

  // Requires mu_. Prunes and validates `object` in place; 200 with Warning headers, or an error.
  Reply Check(const ResourceType& t, const std::string& name, value& object,
              const std::string& query) {
    Reply ok;
    if (t.crd) {
      std::vector<std::string> pruned = Prune(*crd_.schema, object);
      if (!pruned.empty() && absl::StrContains(query, "fieldValidation=Strict")) {
        std::vector<std::string> quoted;
        for (const auto& p : pruned) quoted.push_back(absl::StrCat("unknown field \"", p, "\""));
        return BadRequest(absl::StrCat("strict decoding error: ", absl::StrJoin(quoted, ", ")));
      }
      for (const std::string& p : pruned) {
        pruned_.push_back(p);
        ok.headers.push_back({"Warning", absl::StrCat("299 - \"unknown field \\\"", p, "\\\"\"")});
      }
      std::vector<FieldError> errors;
      Validate(*crd_.schema, object, "", errors);
      if (!errors.empty()) return Invalid(t, name, errors);
    } else if (t.resource == "events") {
      std::vector<FieldError> errors = ValidateEvent(object);
      if (!errors.empty()) return Invalid(t, name, errors);
    } else if (t.resource == "leases") {
      std::vector<FieldError> errors = ValidateLease(object);
      if (!errors.empty()) return Invalid(t, name, errors);
    } else if (t.resource == "customresourcedefinitions") {
      absl::StatusOr<CrdInfo> crd = LoadCrdFromText(object.serialize(), name);
      if (!crd.ok()) {
        return Invalid(t, name,
                       {{"FieldValueInvalid", "spec", std::string(crd.status().message())}});
      }
      if (name == CrdName() && (crd->group != crd_.group || crd->plural != crd_.plural ||
                                crd->kind != crd_.kind || crd->version != crd_.version)) {
        return Invalid(t, name,
                       {{"FieldValueInvalid", "spec",
                         "spec: the fake API server serves one custom resource, whose group, "
                         "names and version are fixed when it starts"}});
      }
      pending_crd_ = std::move(*crd);
    }
    return ok;
  }

  static std::vector<FieldError> ValidateEvent(const value& e) {
    std::vector<FieldError> errors;
    const std::string ns = GetString(e.at("metadata"), "namespace");
    const value involved = e.has_field("involvedObject") ? e.at("involvedObject") : value::object();
    const std::string involved_ns = GetString(involved, "namespace");
    if (!involved_ns.empty() && involved_ns != ns) {
      errors.push_back({"FieldValueInvalid", "involvedObject.namespace",
                        absl::StrCat("involvedObject.namespace: Invalid value: \"", involved_ns,
                                     "\": does not match event.namespace")});
    }
    if (GetString(involved, "name").empty() || GetString(involved, "kind").empty()) {
      errors.push_back({"FieldValueRequired", "involvedObject", "involvedObject: Required value"});
    }
    const std::string type = GetString(e, "type");
    if (type != "Normal" && type != "Warning") {
      errors.push_back({"FieldValueNotSupported", "type",
                        absl::StrCat("type: Unsupported value: \"", type,
                                     "\": supported values: \"Normal\", \"Warning\"")});
    }
    const std::string reason = GetString(e, "reason");
    if (reason.empty() || reason.size() > 128) {
      errors.push_back(
          {"FieldValueInvalid", "reason", "reason: Invalid value: must be 1-128 chars"});
    }
    const bool strict = e.has_field("eventTime");
    if (strict) {
      for (const char* field : {"reportingComponent", "reportingInstance", "action"}) {
        if (GetString(e, field).empty()) {
          errors.push_back({"FieldValueRequired", field, absl::StrCat(field, ": Required value")});
        }
      }
    }
    for (const char* field : {"reportingComponent", "reportingInstance", "action"}) {
      if (GetString(e, field).size() > 128) {
        errors.push_back({"FieldValueTooLong", field,
                          absl::StrCat(field, ": Too long: may not be longer than 128")});
      }
    }
    if (GetString(e, "message").size() > 1024) {
      errors.push_back(
          {"FieldValueTooLong", "message", "message: Too long: may not be longer than 1024"});
    }
    return errors;
  }

  // Requires mu_.
  Reply Create(const ResourceType& t, const std::string& ns, const std::string& text,
               const std::string& query) {
    value object;
    try {
      object = value::parse(text);
    } catch (const std::exception& e) {
      return BadRequest(absl::StrCat("couldn't get version/kind; json parse error: ", e.what()));
    }
    if (!object.is_object()) return BadRequest("the body must be a JSON object");
    const std::string kind = GetString(object, "kind");
    const std::string api_version = GetString(object, "apiVersion");
    if ((!kind.empty() && kind != t.kind) ||
        (!api_version.empty() && api_version != t.ApiVersion())) {
      return BadRequest(absl::StrCat("the API version in the data (", api_version,
                                     ") does not match the expected API version (", t.ApiVersion(),
                                     ")"));
    }
    object["kind"] = value::string(t.kind);
    object["apiVersion"] = value::string(t.ApiVersion());
    if (!object.has_object_field("metadata")) object["metadata"] = value::object();
    value& metadata = object["metadata"];
    const std::string body_ns = GetString(metadata, "namespace");
    if (!body_ns.empty() && body_ns != ns) {
      return BadRequest(
          "the namespace of the provided object does not match the namespace sent on the request");
    }
    if (!ns.empty()) metadata["namespace"] = value::string(ns);
    std::string name = GetString(metadata, "name");
    if (name.empty() && !GetString(metadata, "generateName").empty()) {
      name = absl::StrCat(GetString(metadata, "generateName"), RandomSuffix());
      metadata["name"] = value::string(name);
    }
    if (name.empty()) {
      return Invalid(t, name,
                     {{"FieldValueRequired", "metadata.name",
                       "metadata.name: Required value: name or generateName is required"}});
    }
    if (!IsDnsSubdomain(name)) {
      return Invalid(t, name,
                     {{"FieldValueInvalid", "metadata.name",
                       absl::StrCat("metadata.name: Invalid value: \"", name,
                                    "\": a lowercase RFC 1123 subdomain must consist of "
                                    "lower case alphanumeric characters, '-' or '.'")}});
    }
    if (objects_.count(Key(t.resource, ns, name))) {
      return StatusReply(409, "AlreadyExists",
                         absl::StrCat(t.Qualified(), " \"", name, "\" already exists"),
                         Details(name, t.group, t.resource));
    }
    for (const char* field : {"resourceVersion", "uid", "creationTimestamp", "generation"}) {
      if (metadata.has_field(field)) metadata.erase(field);
    }
    if (t.status_subresource && object.has_field("status")) object.erase("status");
    if (t.resource == "secrets" && object.has_object_field("stringData")) {
      // stringData is write-only, merged into data.
      if (!object.has_object_field("data")) object["data"] = value::object();
      for (const auto& [k, v] : object.at("stringData").as_object()) {
        object["data"][k] = value::string(absl::Base64Escape(v.is_string() ? v.as_string() : ""));
      }
      object.erase("stringData");
    }
    Reply checked = Check(t, name, object, query);
    if (checked.code != 200) return checked;
    object["metadata"]["uid"] = value::string(NewUid());
    object["metadata"]["creationTimestamp"] = value::string(Now());
    if (t.crd) object["metadata"]["generation"] = value::number(1);
    object["metadata"]["resourceVersion"] = value::string(absl::StrCat(++rv_));
    objects_[Key(t.resource, ns, name)] = object;
    Record("ADDED", t, ns, name, object, std::nullopt);
    if (t.resource == "customresourcedefinitions" && name == CrdName()) crd_ = *pending_crd_;
    return Reply{201, object, checked.headers};
  }

  // Lease validation (kube-api.md section 6): only the ranges are checked.
  static std::vector<FieldError> ValidateLease(const value& lease) {
    std::vector<FieldError> errors;
    if (!lease.has_object_field("spec")) return errors;
    const value& spec = lease.at("spec");
    if (spec.has_field("leaseDurationSeconds") &&
        (!spec.at("leaseDurationSeconds").is_integer() ||
         spec.at("leaseDurationSeconds").as_number().to_int64() <= 0)) {
      errors.push_back({"FieldValueInvalid", "spec.leaseDurationSeconds",
                        "spec.leaseDurationSeconds: Invalid value: must be greater than 0"});
    }
    if (spec.has_field("leaseTransitions") &&
        (!spec.at("leaseTransitions").is_integer() ||
         spec.at("leaseTransitions").as_number().to_int64() < 0)) {
      errors.push_back(
          {"FieldValueInvalid", "spec.leaseTransitions",
           "spec.leaseTransitions: Invalid value: must be greater than or equal to 0"});
    }
    return errors;
  }

  // Requires mu_. Removes a stored object; returns its last state, at the deletion's
  // resourceVersion (what a DELETED event carries).
  value Delete(const ResourceType& t, const std::string& ns, const std::string& name) {
    auto stored = objects_.find(Key(t.resource, ns, name));
    value prev = stored->second;
    objects_.erase(stored);
    value object = prev;
    object["metadata"]["resourceVersion"] = value::string(absl::StrCat(++rv_));
    Record("DELETED", t, ns, name, object, prev);
    return object;
  }

  // One persisted write, for LIST snapshots and WATCH replays.
  struct HistoryEntry {
    int64_t rv = 0;
    std::string type;  // ADDED, MODIFIED, DELETED
    const ResourceType* resource = nullptr;
    std::string ns;
    std::string name;
    value object;               // as stored (DELETED: the last state)
    std::optional<value> prev;  // the state before (MODIFIED, DELETED)
  };

  // Requires mu_. Appends a write to the history (dropping the oldest beyond the limit) and
  // sends it to the watches that select it.
  void Record(const std::string& type, const ResourceType& t, const std::string& ns,
              const std::string& name, const value& object, std::optional<value> prev) {
    HistoryEntry entry{rv_, type, &t, ns, name, object, std::move(prev)};
    for (const auto& w : watchers_) {
      if (Selects(*w, entry)) w->Send(LineFor(*w, type, object));
    }
    history_.push_back(std::move(entry));
    while (history_.size() > history_limit_) {
      history_floor_ = history_.front().rv;
      history_.pop_front();
    }
  }

  static std::string EventLine(const std::string& type, const value& object) {
    value event = value::object();
    event["type"] = value::string(type);
    event["object"] = object;
    return event.serialize();
  }

  // Whether `object` (of `w`'s kind and namespace) passes `w`'s selectors.
  static bool Matches(const std::map<std::string, std::string>& fields,
                      const std::vector<std::string>& label_terms, const value& object) {
    const value metadata = object.has_field("metadata") ? object.at("metadata") : value::object();
    for (const auto& [field, wanted] : fields) {
      const std::string actual =
          GetString(metadata, field == "metadata.name" ? "name" : "namespace");
      if (actual != wanted) return false;
    }
    const value labels = metadata.has_field("labels") ? metadata.at("labels") : value::object();
    for (const std::string& term : label_terms) {
      const bool negated = absl::StrContains(term, "!=");
      std::vector<std::string> kv =
          absl::StrSplit(term, absl::ByAnyChar(negated ? "!=" : "="), absl::SkipEmpty());
      if (kv.empty()) continue;
      const std::string key(absl::StripAsciiWhitespace(kv[0]));
      const std::string want = kv.size() > 1 ? std::string(absl::StripAsciiWhitespace(kv[1])) : "";
      const bool has = labels.has_string_field(key);
      if (kv.size() == 1) {
        if (!has) return false;  // existence: "key"
        continue;
      }
      const bool equal = has && labels.at(key).as_string() == want;
      if (negated == equal) return false;
    }
    return true;
  }

  static bool Selects(const Watcher& w, const HistoryEntry& e) {
    if (w.type != e.resource || (!w.ns.empty() && w.ns != e.ns)) return false;
    return Matches(w.fields, w.label_terms, e.object);
  }

  // Parses fieldSelector and labelSelector; returns an error answer for what the fake (and, for
  // custom resources, the real server) does not support.
  static std::optional<Reply> ParseSelectors(const std::map<std::string, std::string>& params,
                                             std::map<std::string, std::string>& fields,
                                             std::vector<std::string>& label_terms) {
    auto field = params.find("fieldSelector");
    if (field != params.end()) {
      for (absl::string_view term : absl::StrSplit(field->second, ',', absl::SkipEmpty())) {
        std::vector<std::string> kv = absl::StrSplit(term, absl::MaxSplits('=', 1));
        std::string key = kv[0];
        std::string v = kv.size() > 1 ? kv[1] : "";
        if (absl::EndsWith(key, "=")) key.pop_back();  // "=="
        if (absl::StartsWith(v, "=")) v = v.substr(1);
        if (key != "metadata.name" && key != "metadata.namespace") {
          return BadRequest(absl::StrCat("field label not supported: ", key));
        }
        fields[key] = v;
      }
    }
    auto labels = params.find("labelSelector");
    if (labels != params.end()) {
      for (absl::string_view term : absl::StrSplit(labels->second, ',', absl::SkipEmpty())) {
        if (absl::StrContains(term, " in ") || absl::StrContains(term, "notin")) {
          return BadRequest("the fake API server supports only equality label selectors");
        }
        label_terms.emplace_back(term);
      }
    }
    return std::nullopt;
  }

  static Reply Expired(const std::string& message) { return StatusReply(410, "Expired", message); }

  // Requires mu_. The objects of `t` at resourceVersion `rv` (>= history_floor_), by key.
  std::map<std::string, value> Snapshot(const ResourceType& t, int64_t rv) const {
    std::map<std::string, value> out;
    const std::string prefix = absl::StrCat(t.resource, "|");
    for (const auto& [key, object] : objects_) {
      if (absl::StartsWith(key, prefix)) out[key] = object;
    }
    for (auto it = history_.rbegin(); it != history_.rend() && it->rv > rv; ++it) {
      if (it->resource != &t) continue;
      const std::string key = Key(t.resource, it->ns, it->name);
      if (it->type == "ADDED") {
        out.erase(key);
      } else {
        out[key] = *it->prev;
      }
    }
    return out;
  }

  // Requires mu_. LIST (kube-api.md section 10, item 14).
  Reply List(const ResourceType& t, const std::string& ns,
             const std::map<std::string, std::string>& params, const std::string& accept) {
    auto param = [&](const char* key) {
      auto it = params.find(key);
      return it == params.end() ? std::string() : it->second;
    };
    std::map<std::string, std::string> fields;
    std::vector<std::string> label_terms;
    if (std::optional<Reply> bad = ParseSelectors(params, fields, label_terms)) return *bad;
    int64_t limit = 0;
    if (!param("limit").empty() && (!absl::SimpleAtoi(param("limit"), &limit) || limit < 0)) {
      return BadRequest(absl::StrCat("invalid limit: ", param("limit")));
    }
    int64_t at = rv_;
    std::string start_after;
    const std::string token = param("continue");
    const std::string rv_param = param("resourceVersion");
    if (!token.empty()) {
      // The token holds the list's resourceVersion and the last key served.
      std::string decoded;
      std::pair<std::string, std::string> parts;
      if (!absl::WebSafeBase64Unescape(token, &decoded) ||
          (parts = absl::StrSplit(decoded, absl::MaxSplits('/', 1))).second.empty() ||
          !absl::SimpleAtoi(parts.first, &at)) {
        return BadRequest("continue key is not valid: incorrect encoded start resourceVersion");
      }
      if (!rv_param.empty()) {
        return BadRequest("specifying resource version is not allowed when using continue");
      }
      start_after = parts.second;
      if (at < history_floor_) {
        return Expired(
            "The provided continue parameter is too old to display a consistent list result. You "
            "can start a new list without the continue parameter, or use the continue token in "
            "this response to retrieve the remainder of the results. Continuing with the "
            "provided token results in an inconsistent list - objects that were created, "
            "modified, or deleted between the time the first chunk was returned and now may "
            "show up in the list.");
      }
    } else if (!rv_param.empty() && rv_param != "0") {
      int64_t wanted = 0;
      if (!absl::SimpleAtoi(rv_param, &wanted)) {
        return BadRequest(absl::StrCat("invalid resource version: ", rv_param));
      }
      if (wanted > rv_) {
        return StatusReply(
            504, "Timeout",
            absl::StrCat("Too large resource version: ", wanted, ", current: ", rv_));
      }
      // Exact when asked, and (as the real server does) for a paged list at a given version.
      if (param("resourceVersionMatch") == "Exact" || limit > 0) {
        if (wanted < history_floor_) {
          return Expired(
              absl::StrCat("too old resource version: ", wanted, " (", history_floor_ + 1, ")"));
        }
        at = wanted;
      }
    }
    std::vector<value> items;
    std::string last_key;
    bool more = false;
    int64_t remaining = 0;
    for (const auto& [key, object] : Snapshot(t, at)) {
      if (!start_after.empty() && key <= start_after) continue;
      if (!ns.empty() && GetString(object.at("metadata"), "namespace") != ns) continue;
      if (!Matches(fields, label_terms, object)) continue;
      if (limit > 0 && static_cast<int64_t>(items.size()) == limit) {
        more = true;
        ++remaining;
        continue;
      }
      items.push_back(object);
      last_key = key;
    }
    value list = value::object();
    list["kind"] = value::string(absl::StrCat(t.kind, "List"));
    list["apiVersion"] = value::string(t.ApiVersion());
    list["metadata"] = value::object();
    list["metadata"]["resourceVersion"] = value::string(absl::StrCat(at));
    if (more) {
      list["metadata"]["continue"] =
          value::string(absl::WebSafeBase64Escape(absl::StrCat(at, "/", last_key)));
      list["metadata"]["remainingItemCount"] = value::number(remaining);
    }
    if (AsTable(t, accept)) {
      return Reply{200, Table(list["metadata"], items), {}};
    }
    list["items"] = value::array(items);
    return Reply{200, list, {}};
  }

  // Whether a request with `accept` gets Tables (only the custom resource's are built).
  static bool AsTable(const ResourceType& t, const std::string& accept) {
    return t.crd && absl::StrContains(accept, "as=Table") &&
           absl::StrContains(accept, "g=meta.k8s.io");
  }

  // The line that sends `object` to `w`: as it is, or as a one-row Table.
  std::string LineFor(const Watcher& w, const std::string& type, const value& object) const {
    if (!w.table || type == "BOOKMARK" || type == "ERROR") return EventLine(type, object);
    value metadata = value::object();
    metadata["resourceVersion"] =
        value::string(GetString(object.at("metadata"), "resourceVersion"));
    return EventLine(type, Table(metadata, {object}));
  }

  // Returns the meta.k8s.io/v1 Table of `items`: NAME, then the CRD's printer columns, as the API
  // server's table convertor builds it for a custom resource.
  value Table(const value& list_metadata, const std::vector<value>& items) const {
    std::vector<value> columns;
    auto column = [](const std::string& name, const std::string& type, const std::string& format,
                     const std::string& description, int priority) {
      value c = value::object();
      c["name"] = value::string(name);
      c["type"] = value::string(type);
      c["format"] = value::string(format);
      c["description"] = value::string(description);
      c["priority"] = value::number(priority);
      return c;
    };
    columns.push_back(column("Name", "string", "name",
                             "Name must be unique within a namespace. Is required when creating "
                             "resources, although some resources may allow a client to request "
                             "the generation of an appropriate name automatically.",
                             0));
    for (const PrinterColumn& c : crd_.printer_columns) {
      columns.push_back(column(c.name, c.type, c.format, c.description, c.priority));
    }
    std::vector<value> rows;
    for (const value& item : items) {
      std::vector<value> cells;
      cells.push_back(value::string(GetString(item.at("metadata"), "name")));
      for (const PrinterColumn& c : crd_.printer_columns) cells.push_back(Cell(item, c));
      value object = value::object();
      object["kind"] = value::string("PartialObjectMetadata");
      object["apiVersion"] = value::string("meta.k8s.io/v1");
      object["metadata"] = item.at("metadata");
      value row = value::object();
      row["cells"] = value::array(cells);
      row["object"] = object;
      rows.push_back(row);
    }
    value table = value::object();
    table["kind"] = value::string("Table");
    table["apiVersion"] = value::string("meta.k8s.io/v1");
    table["metadata"] = list_metadata;
    table["columnDefinitions"] = value::array(columns);
    table["rows"] = value::array(rows);
    return table;
  }

  // The cell of column `c` for `object`, as the API server's table convertor for custom resources
  // makes it: a "string" column prints the value as JSONPath does (a list as JSON), a "date"
  // column is the age ("5s"), other types the typed value; null when absent or mistyped.
  static value Cell(const value& object, const PrinterColumn& c) {
    const value* node = &object;
    for (absl::string_view part : absl::StrSplit(c.json_path, '.', absl::SkipEmpty())) {
      const std::string key(part);
      if (!node->is_object() || !node->has_field(key)) return value::null();
      node = &node->at(key);
    }
    if (node->is_null()) return value::null();
    if (c.type == "string") return node->is_string() ? *node : value::string(node->serialize());
    if (c.type == "date") {
      absl::Time t;
      std::string error;
      if (!node->is_string() ||
          !absl::ParseTime(absl::RFC3339_full, node->as_string(), &t, &error)) {
        return value::string("<invalid>");
      }
      return value::string(HumanDuration(absl::Now() - t));
    }
    if (c.type == "integer" && node->is_number())
      return value::number(node->as_number().to_int64());
    if (c.type == "number" && node->is_number()) return value::number(node->as_double());
    if (c.type == "boolean" && node->is_boolean()) return *node;
    return value::null();
  }

  // apimachinery's duration.HumanDuration: what `kubectl get` shows as AGE.
  static std::string HumanDuration(absl::Duration d) {
    if (d < -absl::Seconds(1)) return "<invalid>";
    if (d < absl::ZeroDuration()) return "0s";
    const int64_t seconds = absl::ToInt64Seconds(d);
    if (seconds < 60 * 2) return absl::StrCat(seconds, "s");
    const int64_t minutes = absl::ToInt64Minutes(d);
    if (minutes < 10) {
      const int64_t s = seconds % 60;
      return s == 0 ? absl::StrCat(minutes, "m") : absl::StrCat(minutes, "m", s, "s");
    }
    if (minutes < 60 * 3) return absl::StrCat(minutes, "m");
    const int64_t hours = absl::ToInt64Hours(d);
    if (hours < 8) {
      const int64_t m = minutes % 60;
      return m == 0 ? absl::StrCat(hours, "h") : absl::StrCat(hours, "h", m, "m");
    }
    if (hours < 48) return absl::StrCat(hours, "h");
    if (hours < 24 * 8) {
      const int64_t h = hours % 24;
      return h == 0 ? absl::StrCat(hours / 24, "d") : absl::StrCat(hours / 24, "d", h, "h");
    }
    if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24, "d");
    if (hours < 24 * 365 * 8) {
      const int64_t days = (hours / 24) % 365;
      return days == 0 ? absl::StrCat(hours / 24 / 365, "y")
                       : absl::StrCat(hours / 24 / 365, "y", days, "d");
    }
    return absl::StrCat(hours / 24 / 365, "y");
  }

  // Requires mu_. WATCH (kube-api.md section 10, items 15-19).
  Reply Watch(const ResourceType& t, const std::string& ns,
              const std::map<std::string, std::string>& params, const std::string& accept) {
    auto param = [&](const char* key) {
      auto it = params.find(key);
      return it == params.end() ? std::string() : it->second;
    };
    if (draining_) return StatusReply(503, "ServiceUnavailable", "the server is shutting down");
    auto w = std::make_shared<Watcher>();
    w->type = &t;
    w->ns = ns;
    if (std::optional<Reply> bad = ParseSelectors(params, w->fields, w->label_terms)) return *bad;
    w->bookmarks = param("allowWatchBookmarks") == "true";
    w->table = AsTable(t, accept);
    int64_t timeout_s = 1800;  // the server's own default (--min-request-timeout)
    if (!param("timeoutSeconds").empty() &&
        (!absl::SimpleAtoi(param("timeoutSeconds"), &timeout_s) || timeout_s < 0)) {
      return BadRequest(absl::StrCat("invalid timeoutSeconds: ", param("timeoutSeconds")));
    }
    w->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    const std::string rv_param = param("resourceVersion");
    // Watch-list (client-go's WatchListClient; kubectl 1.35's `wait` and `get -w` use it): the
    // state as ADDED events, then a BOOKMARK annotated k8s.io/initial-events-end, then changes.
    // The API server's validation of the options comes first.
    const bool initial_events = param("sendInitialEvents") == "true";
    std::vector<std::string> forbidden;
    if (initial_events && param("resourceVersionMatch") != "NotOlderThan") {
      forbidden.push_back(
          "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
          "resourceVersionMatch to NotOlderThan");
    }
    if (initial_events && !w->bookmarks) {
      forbidden.push_back(
          "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
          "allowWatchBookmarks to true");
    }
    if (!initial_events && !param("resourceVersionMatch").empty()) {
      forbidden.push_back(
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless "
          "sendInitialEvents is provided");
    }
    if (!forbidden.empty()) {
      const std::string list = forbidden.size() == 1
                                   ? forbidden[0]
                                   : absl::StrCat("[", absl::StrJoin(forbidden, ", "), "]");
      return StatusReply(422, "Invalid",
                         absl::StrCat("ListOptions.meta.k8s.io \"\" is invalid: ", list));
    }
    // Synthetic ADDED events for the current state.
    auto send_state = [&] {
      for (const auto& [key, object] : Snapshot(t, rv_)) {
        if (!ns.empty() && GetString(object.at("metadata"), "namespace") != ns) continue;
        if (Matches(w->fields, w->label_terms, object)) w->Send(LineFor(*w, "ADDED", object));
      }
    };
    if (initial_events) {
      int64_t not_older_than = 0;
      if (!rv_param.empty() && !absl::SimpleAtoi(rv_param, &not_older_than)) {
        return BadRequest(absl::StrCat("invalid resource version: ", rv_param));
      }
      if (not_older_than > rv_) {
        return StatusReply(
            504, "Timeout",
            absl::StrCat("Too large resource version: ", not_older_than, ", current: ", rv_));
      }
      send_state();
      value end = BookmarkObject(t);
      end["metadata"]["annotations"] = value::object();
      end["metadata"]["annotations"]["k8s.io/initial-events-end"] = value::string("true");
      w->Send(EventLine("BOOKMARK", end));
    } else if (rv_param.empty() || rv_param == "0") {
      send_state();  // then the changes
    } else {
      int64_t from = 0;
      if (!absl::SimpleAtoi(rv_param, &from)) {
        return BadRequest(absl::StrCat("invalid resource version: ", rv_param));
      }
      if (from < history_floor_) {
        const std::string message =
            absl::StrCat("too old resource version: ", from, " (", history_floor_ + 1, ")");
        if (watch_expired_as_http_) return Expired(message);
        // The usual path: 200, then an ERROR event, then the end of the stream.
        Reply error = Expired(message);
        w->Send(EventLine("ERROR", error.body));
        w->Close();
        return Reply{200, value(), {}, w};
      }
      for (const HistoryEntry& e : history_) {
        if (e.rv > from && Selects(*w, e)) w->Send(LineFor(*w, e.type, e.object));
      }
    }
    watchers_.push_back(w);
    cv_.notify_all();
    return Reply{200, value(), {}, w};
  }

  // Requires mu_.
  void SendBookmarks() {
    for (const auto& w : watchers_) {
      if (!w->bookmarks) continue;
      w->Send(EventLine("BOOKMARK", BookmarkObject(*w->type)));
    }
  }

  // Requires mu_. A BOOKMARK event's object: the kind and the current resourceVersion only.
  value BookmarkObject(const ResourceType& t) const {
    value object = value::object();
    object["kind"] = value::string(t.kind);
    object["apiVersion"] = value::string(t.ApiVersion());
    object["metadata"] = value::object();
    object["metadata"]["resourceVersion"] = value::string(absl::StrCat(rv_));
    return object;
  }

  std::string NewUid() {
    std::uniform_int_distribution<uint32_t> d;
    return absl::StrFormat("%08x-%04x-%04x-%04x-%04x%08x", d(rng_), d(rng_) & 0xffff,
                           (d(rng_) & 0x0fff) | 0x4000, (d(rng_) & 0x3fff) | 0x8000,
                           d(rng_) & 0xffff, d(rng_));
  }

  std::string RandomSuffix() {
    static const char kChars[] = "bcdfghjklmnpqrstvwxz2456789";
    std::string out;
    for (int i = 0; i < 5; ++i) out += kChars[rng_() % (sizeof(kChars) - 1)];
    return out;
  }

  const ResourceType* TypeOf(const std::string& resource) const {
    for (const ResourceType& t : types_) {
      if (t.resource == resource) return &t;
    }
    return nullptr;
  }

  ServerOptions options_;
  CrdInfo crd_;
  std::optional<CrdInfo> pending_crd_;  // a CRD being written, checked by Check()
  std::vector<ResourceType> types_;
  int port_ = 0;

  std::mutex listener_mu_;
  std::unique_ptr<Listener> listener_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int active_ = 0;       // handlers running
  int received_ = 0;     // requests that reached a handler
  int64_t changes_ = 0;  // bumped when a request arrives or is answered, for WaitUntil
  std::set<std::string> tokens_;
  std::map<std::string, std::pair<std::string, std::vector<RbacRule>>> rbac_;
  std::deque<Fault> faults_;
  int conflicts_ = 0;
  int64_t rv_ = 1000;
  std::map<std::string, value> objects_;
  std::deque<HistoryEntry> history_;
  size_t history_limit_ = 1000;
  int64_t history_floor_ = 0;  // states at resourceVersions >= this can be rebuilt
  std::vector<std::shared_ptr<Watcher>> watchers_;
  bool watch_expired_as_http_ = false;
  bool draining_ = false;  // StopListening is waiting for connections to end
  bool close_connections_ = false;
  std::thread reaper_;
  std::vector<LoggedRequest> log_;
  std::vector<std::string> pruned_;
  std::mt19937 rng_{std::random_device{}()};
};

FakeKubeServer::FakeKubeServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FakeKubeServer::~FakeKubeServer() = default;

absl::StatusOr<std::unique_ptr<FakeKubeServer>> FakeKubeServer::Start(
    const ServerOptions& options) {
  absl::StatusOr<CrdInfo> crd = LoadCrd(options.crd_path);
  if (!crd.ok()) return crd.status();
  auto impl = std::make_unique<Impl>(options, *crd);
  absl::Status last;
  // Another process may take the port between probing and listening: try a few.
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<int> port = testing::UnusedLoopbackPort();
    if (!port.ok()) return port.status();
    impl->port_ = *port;
    last = impl->StartListening();
    if (last.ok()) return std::unique_ptr<FakeKubeServer>(new FakeKubeServer(std::move(impl)));
  }
  return last;
}

std::string FakeKubeServer::url() const { return impl_->url(); }
int FakeKubeServer::port() const { return impl_->port_; }

void FakeKubeServer::AddToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->tokens_.insert(token);
}

void FakeKubeServer::SetRbacRules(const std::string& token, const std::string& user,
                                  std::vector<RbacRule> rules) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->rbac_[token] = {user, std::move(rules)};
}

absl::StatusOr<std::vector<RbacRule>> RulesFromManifest(const std::string& path) {
  absl::StatusOr<std::vector<std::string>> docs = YamlFileToJson(path);
  if (!docs.ok()) return docs.status();
  std::vector<RbacRule> rules;
  auto strings = [](const value& rule, const char* key) {
    std::vector<std::string> out;
    if (rule.has_array_field(key)) {
      for (const value& v : rule.at(key).as_array()) out.push_back(v.as_string());
    }
    return out;
  };
  for (const std::string& text : *docs) {
    const value doc = value::parse(text);
    const std::string kind = GetString(doc, "kind");
    if ((kind != "Role" && kind != "ClusterRole") || !doc.has_array_field("rules")) continue;
    for (const value& rule : doc.at("rules").as_array()) {
      rules.push_back(RbacRule{strings(rule, "apiGroups"), strings(rule, "resources"),
                               strings(rule, "verbs"), strings(rule, "resourceNames")});
    }
  }
  return rules;
}

void FakeKubeServer::RevokeToken(const std::string& token) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->tokens_.erase(token);
}

absl::Status FakeKubeServer::StopListening() { return impl_->StopListening(); }
absl::Status FakeKubeServer::StartListening() { return impl_->StartListening(); }

void FakeKubeServer::InjectFault(const Fault& fault) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->faults_.push_back(fault);
}

void FakeKubeServer::ClearFaults() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    impl_->faults_.clear();
  }
}

void FakeKubeServer::InjectConflicts(int times) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->conflicts_ = times;
}

absl::StatusOr<std::string> FakeKubeServer::CreateObject(const std::string& resource,
                                                         const std::string& ns,
                                                         const std::string& json) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  const ResourceType* t = impl_->TypeOf(resource);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat("unknown resource ", resource));
  Reply reply = impl_->Create(*t, ns, json, "");
  if (reply.code != 201) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP ", reply.code, ": ", reply.body.serialize()));
  }
  return reply.body.serialize();
}

absl::Status FakeKubeServer::ReplaceObject(const std::string& resource, const std::string& ns,
                                           const std::string& json) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  const ResourceType* t = impl_->TypeOf(resource);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat("unknown resource ", resource));
  value requested;
  try {
    requested = value::parse(json);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  const std::string name = requested.has_field("metadata") &&
                                   requested["metadata"].has_field("name") &&
                                   requested["metadata"]["name"].is_string()
                               ? requested["metadata"]["name"].as_string()
                               : "";
  auto stored = impl_->objects_.find(Impl::Key(resource, ns, name));
  if (stored == impl_->objects_.end()) return absl::NotFoundError(name);
  Reply reply = impl_->Write(*t, name, stored->second, requested, false, "");
  if (reply.code != 200) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP ", reply.code, ": ", reply.body.serialize()));
  }
  return absl::OkStatus();
}

absl::Status FakeKubeServer::UpdateMigrationJobSpec(const std::string& ns, const std::string& name,
                                                    const std::string& spec_json) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  const ResourceType* t = impl_->TypeOf(impl_->crd_.plural);
  auto stored = impl_->objects_.find(Impl::Key(t->resource, ns, name));
  if (stored == impl_->objects_.end()) return absl::NotFoundError(name);
  value requested = stored->second;
  try {
    requested["spec"] = value::parse(spec_json);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  Reply reply = impl_->Write(*t, name, stored->second, requested, false, "");
  if (reply.code != 200) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP ", reply.code, ": ", reply.body.serialize()));
  }
  return absl::OkStatus();
}

absl::Status FakeKubeServer::DeleteObject(const std::string& resource, const std::string& ns,
                                          const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  const ResourceType* t = impl_->TypeOf(resource);
  if (t == nullptr) return absl::NotFoundError(absl::StrCat("unknown resource ", resource));
  if (!impl_->objects_.count(Impl::Key(resource, ns, name))) return absl::NotFoundError(name);
  impl_->Delete(*t, ns, name);
  return absl::OkStatus();
}

void FakeKubeServer::SetHistoryLimit(size_t limit) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->history_limit_ = std::max<size_t>(limit, 1);
  while (impl_->history_.size() > impl_->history_limit_) {
    impl_->history_floor_ = impl_->history_.front().rv;
    impl_->history_.pop_front();
  }
}

void FakeKubeServer::SetWatchExpiredAsHttp(bool as_http) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->watch_expired_as_http_ = as_http;
}

std::string FakeKubeServer::ResourceVersion() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return absl::StrCat(impl_->rv_);
}

int FakeKubeServer::OpenWatches() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  int open = 0;
  for (const auto& w : impl_->watchers_) open += (!w->closed && !w->dead) ? 1 : 0;
  return open;
}

void FakeKubeServer::SendBookmarks() {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->SendBookmarks();
}

bool FakeKubeServer::WaitForWatchesGone(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (WaitUntil([&] { return OpenWatches() == 0; }, absl::Milliseconds(100))) return true;
    if (absl::Now() >= deadline) return false;
    SendBookmarks();
  }
}

void FakeKubeServer::SetCloseConnections(bool close) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->close_connections_ = close;
}

void FakeKubeServer::CloseWatches(bool abruptly) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->CloseAllWatches(abruptly);
}

void FakeKubeServer::InjectWatchError(int http_code) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  const std::string reason = http_code == 410 ? "Expired" : Impl::ReasonFor(http_code);
  Reply error =
      StatusReply(http_code, reason, absl::StrCat("injected watch error: HTTP ", http_code));
  for (const auto& w : impl_->watchers_) w->Send(Impl::EventLine("ERROR", error.body));
  impl_->CloseAllWatches(false);
}

std::optional<std::string> FakeKubeServer::GetObject(const std::string& resource,
                                                     const std::string& ns,
                                                     const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  auto it = impl_->objects_.find(Impl::Key(resource, ns, name));
  if (it == impl_->objects_.end()) return std::nullopt;
  return it->second.serialize();
}

int FakeKubeServer::RequestsReceived() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return impl_->received_;
}

bool FakeKubeServer::WaitUntil(const std::function<bool()>& condition,
                               absl::Duration timeout) const {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout));
  while (true) {
    int64_t seen;
    {
      std::lock_guard<std::mutex> lock(impl_->mu_);
      seen = impl_->changes_;
    }
    // Outside the lock: `condition` may call the accessors above.
    if (condition()) return true;
    std::unique_lock<std::mutex> lock(impl_->mu_);
    if (!impl_->cv_.wait_until(lock, deadline, [&] { return impl_->changes_ != seen; })) {
      lock.unlock();
      return condition();
    }
  }
}

std::vector<LoggedRequest> FakeKubeServer::Requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return impl_->log_;
}

std::vector<RecordedEvent> FakeKubeServer::Events() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  std::vector<std::pair<int64_t, RecordedEvent>> events;
  for (const auto& [key, e] : impl_->objects_) {
    if (!absl::StartsWith(key, "events|")) continue;
    RecordedEvent r;
    r.namespace_ = GetString(e.at("metadata"), "namespace");
    r.name = GetString(e.at("metadata"), "name");
    r.type = GetString(e, "type");
    r.reason = GetString(e, "reason");
    r.message = GetString(e, "message");
    r.action = GetString(e, "action");
    const value involved = e.has_field("involvedObject") ? e.at("involvedObject") : value::object();
    r.involved_kind = GetString(involved, "kind");
    r.involved_name = GetString(involved, "name");
    r.involved_uid = GetString(involved, "uid");
    r.reporting_component = GetString(e, "reportingComponent");
    r.reporting_instance = GetString(e, "reportingInstance");
    r.json = e.serialize();
    int64_t rv = 0;
    (void)absl::SimpleAtoi(GetString(e.at("metadata"), "resourceVersion"), &rv);
    events.push_back({rv, r});
  }
  // In creation order, as a watcher would have seen them.
  std::sort(events.begin(), events.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RecordedEvent> out;
  for (auto& [rv, e] : events) out.push_back(std::move(e));
  return out;
}

std::vector<std::string> FakeKubeServer::PrunedFields() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  return impl_->pruned_;
}

std::vector<LoggedRequest> FakeKubeServer::RejectedWrites() const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  std::vector<LoggedRequest> out;
  for (const LoggedRequest& r : impl_->log_) {
    if (r.method == http::methods::GET || r.injected) continue;
    if (r.response_code == 400 || r.response_code == 415 || r.response_code == 422)
      out.push_back(r);
  }
  return out;
}

std::vector<std::string> FakeKubeServer::ValidateStored(const std::string& ns,
                                                        const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  std::vector<std::string> out;
  auto it = impl_->objects_.find(Impl::Key(impl_->crd_.plural, ns, name));
  if (it == impl_->objects_.end()) return {"not stored"};
  value copy = it->second;
  for (const std::string& p : Prune(*impl_->crd_.schema, copy)) {
    out.push_back(absl::StrCat(p, ": unknown field"));
  }
  std::vector<FieldError> errors;
  Validate(*impl_->crd_.schema, copy, "", errors);
  for (const FieldError& e : errors) out.push_back(e.message);
  return out;
}

}  // namespace sluice::fake_kube
