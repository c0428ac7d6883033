#include "tests/support/fake_kube/fake_kube_server.h"

#include <cpprest/http_listener.h>

#include <algorithm>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>

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

struct Reply {
  int code = 200;
  value body;
  std::vector<std::pair<std::string, std::string>> headers;
};

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
    types_.push_back(
        {crd_.group, crd_.version, crd_.plural, crd_.kind, true, crd_.status_subresource});
  }

  ~Impl() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
      // Handlers run on cpprest's threads and use this object: let them end first (bounded).
      cv_.wait_for(lock, std::chrono::seconds(10), [this] { return active_ == 0; });
    }
    (void)StopListening();
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
    WaitForClientConnectionsToEnd(kConnectionDrain);
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
    return StatusReply(403, "Forbidden",
                       absl::StrCat(who, " is forbidden: User \"", it->second.first, "\" cannot ",
                                    verb, " resource \"", resource, "\" in API group \"", t.group,
                                    "\" in the namespace \"", route.ns, "\""),
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
      if (t.group == group && t.version == version && t.resource == parts[i]) route.type = &t;
    }
    if (route.type == nullptr) return std::nullopt;
    if (parts.size() > i + 1) route.name = parts[i + 1];
    if (parts.size() > i + 2) route.subresource = parts[i + 2];
    if (parts.size() > i + 3) return std::nullopt;
    if (!route.subresource.empty() &&
        !(route.subresource == "status" && route.type->status_subresource)) {
      return std::nullopt;
    }
    if (!route.name.empty() && route.ns.empty()) return std::nullopt;
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
        if (absl::StrContains(entry.query, "watch=")) {
          return BadRequest("the fake API server does not implement watch");
        }
        return List(t, route.ns);
      }
      if (method == http::methods::POST) {
        if (route.ns.empty())
          return StatusReply(405, "MethodNotAllowed", "create needs a namespace");
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
      value object = stored->second;
      objects_.erase(stored);
      ++rv_;
      return Reply{200, object, {}};
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
    objects_[Key(t.resource, next.at("metadata").at("namespace").as_string(), name)] = next;
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
    metadata["namespace"] = value::string(ns);
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
    return Reply{201, object, checked.headers};
  }

  // Requires mu_.
  Reply List(const ResourceType& t, const std::string& ns) {
    std::vector<value> items;
    for (const auto& [key, object] : objects_) {
      std::vector<std::string> parts = absl::StrSplit(key, '|');
      if (parts[0] == t.resource && (ns.empty() || parts[1] == ns)) items.push_back(object);
    }
    value list = value::object();
    list["kind"] = value::string(absl::StrCat(t.kind, "List"));
    list["apiVersion"] = value::string(t.ApiVersion());
    list["metadata"] = value::object();
    list["metadata"]["resourceVersion"] = value::string(absl::StrCat(rv_));
    list["items"] = value::array(items);
    return Reply{200, list, {}};
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
