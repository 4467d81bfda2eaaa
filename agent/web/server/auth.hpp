// The one security layer in front of every route: Host allowlist, bearer tokens and scopes,
// failure rate limit, rules for mutating calls, the audit entry and the request metrics.
#pragma once

#include "audit/trail.hpp"
#include "common/sha256.hpp"
#include "web/server/http.hpp"
#include "web/server/http_metrics.hpp"
#include "web/server/router.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace plugmon::agent {

/// A token the agent accepts: its name (for the audit log), what it allows, and the SHA-256 of
/// its secret (the secret itself is never kept).
struct api_token_entry {
    std::string name;
    scope allows = scope::read;
    sha256_digest digest{};
};

/// What the security layer enforces; replaced whole on reload.
struct security_options {
    /// api_token (named "api_token", scope admin) and the tokens of tokens_file.
    std::vector<api_token_entry> tokens;
    /// True: routes of scope read need a token too. False: reads are open.
    bool read_requires_token = false;
    /// Host header names accepted besides loopback names/addresses and the listen address
    /// (lowercase, without port or brackets).
    std::vector<std::string> allowed_hosts;
    /// The configured listen host (accepted as a Host header).
    std::string listen_host;
    /// After this many failed authentications within failure_window, a client address gets 429
    /// until the window that began with its first failure has passed.
    std::size_t max_failures = 5;
    std::chrono::seconds failure_window{60};
};

/// The api_token entry for a configured secret (empty secret: none).
std::vector<api_token_entry> admin_token(const std::string& secret);

/// The host of a Host header value ("[::1]:9464" -> "::1", "Example.com:80" -> "example.com").
std::string host_of(std::string_view host_header);

/// True for "localhost", 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host);

/// Counts failed authentications per client address in fixed windows. Thread-safe.
class failure_limiter {
public:
    using clock = std::chrono::steady_clock;

    /// When the client may try again, if it is blocked now (zero otherwise).
    std::chrono::seconds blocked_for(const std::string& client, clock::time_point now,
                                     const security_options& o);
    void failed(const std::string& client, clock::time_point now, const security_options& o);

private:
    struct window {
        clock::time_point start;
        std::size_t failures = 0;
    };
    /// Drops windows that have ended, so the map stays as small as the set of recent offenders.
    void prune(clock::time_point now, std::chrono::seconds length);

    std::mutex mutex_;
    std::unordered_map<std::string, window> clients_;
};

/// The single gate every request passes, in this order:
///   1. Host allowlist (421): loopback names and addresses, the listen address, the address the
///      connection arrived on, and allowed_hosts. No Host header (HTTP/1.0): loopback peers only.
///   2. A token in the query string (access_token, token, api_token) is refused (400), never used.
///   3. Unknown path 404, known path and other method 405 with Allow.
///   4. Mutating methods (POST, PUT, DELETE): a cross-site Origin or Sec-Fetch-Site: cross-site
///      is refused (403) before any token is looked at, so a web page cannot lock out a client.
///   5. Routes that need a scope: a rate-limited client gets 429 with Retry-After; a missing or
///      unknown `Authorization: Bearer` token 401 with WWW-Authenticate; a token without the
///      scope 403. Routes of scope read are open unless read_requires_token. Routes of scope
///      none (health) never look at the Authorization header.
///   6. Mutating methods: a body must be `application/json` (415); an empty body without a
///      Content-Type is accepted.
/// Every mutating request is recorded exactly once in the audit trail (its token's name, client,
/// route, path and status); every request is counted in the metrics under its route's name
/// ("not_found" when no path matched).
class security_layer {
public:
    /// `audit` receives the mutating requests (null: a trail of the layer's own).
    security_layer(const router& routes, security_options options,
                   std::shared_ptr<http_metrics> metrics,
                   std::shared_ptr<audit::trail> audit = nullptr);

    /// Answers one request (the http_handler of the server). Rethrows what a route throws, after
    /// counting and auditing it as a 500.
    http_response handle(const http_request& req);
    /// Takes effect for the requests that start after it. Thread-safe.
    void set_options(security_options options);
    /// The trail the mutating requests go to. Thread-safe (the trail is).
    audit::trail& audit_trail() { return *audit_; }

private:
    struct verdict {
        std::string token_name = "-";  ///< the token that authenticated, for the audit line
    };
    std::shared_ptr<const security_options> options() const;
    std::optional<http_response> check(const security_options& o, const http_request& req,
                                       const route_match& m, verdict& v);
    std::optional<http_response> authenticate(const security_options& o, const http_request& req,
                                              scope needed, verdict& v);
    void finish(const http_request& req, const route_match& m, const verdict& v, unsigned status,
                std::chrono::steady_clock::time_point start);

    const router& routes_;
    std::shared_ptr<http_metrics> metrics_;
    std::shared_ptr<audit::trail> audit_;
    failure_limiter limiter_;
    mutable std::mutex options_mutex_;
    std::shared_ptr<const security_options> options_;
};

}  // namespace plugmon::agent
