// The route table: each route's method, path pattern, handler, metrics name and token scope.
#pragma once

#include "web/server/http.hpp"

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent {

/// What a token must allow for a route: read < ack < admin (admin implies ack implies read).
/// `none`: no token ever. `read` routes are open unless read_requires_token is set.
enum class scope { none, read, ack, admin };

/// "none", "read", "ack", "admin".
std::string_view to_string(scope s);

/// True when a token holding `held` may use a route that needs `needed`.
constexpr bool allows(scope held, scope needed) { return held >= needed; }

/// The values of a route's `{param}` segments, by name (not percent-decoded).
using route_params = std::map<std::string, std::string, std::less<>>;

/// Answers one matched request. May throw: the server answers 500.
using route_handler = std::function<http_response(const http_request&, const route_params&)>;

struct route {
    /// "GET", "POST", "PUT" or "DELETE". A GET route answers HEAD too (the server sends HEAD to
    /// the handler as GET and drops the body).
    std::string method;
    /// Literal segments and `{param}` segments, e.g. "/api/v1/plugins/{name}". A last segment
    /// `{param...}` takes the rest of the path, slashes included. Parameters match non-empty text.
    std::string pattern;
    /// Short and stable, for metrics: plugmon_http_requests_total{handler="plugins"}.
    std::string name;
    scope needs = scope::none;
    route_handler handler;
};

/// What the table says about one method and path.
struct route_match {
    const route* found = nullptr;  ///< null: no route for this method and path
    route_params params;
    /// Methods of the routes whose pattern matches the path (for 405 and Allow).
    std::vector<std::string> allowed;
    /// Name of a route whose pattern matches the path, when only the method did not match.
    std::string path_name;
};

/// An ordered list of routes. Fill it while wiring, then only read it (matching is const and
/// thread-safe; the routes must not change while requests are served).
class router {
public:
    /// Throws std::invalid_argument for a malformed pattern, an unknown method or a route that
    /// repeats the method and pattern of another.
    void add(route r);
    /// The first route whose method and pattern match (patterns are tried in order).
    route_match match(std::string_view method, std::string_view path) const;
    /// 404 for an unknown path, 405 with `Allow` for a known path and another method, else the
    /// route's own answer. No authentication: see security_layer.
    http_response dispatch(const http_request& req) const;
    const std::vector<route>& routes() const { return routes_; }
    /// The routes' names, each once, in order of first appearance.
    std::vector<std::string> names() const;

private:
    struct segment {
        std::string text;  ///< literal text, or the parameter's name
        bool param = false;
        bool rest = false;  ///< `{name...}`
    };
    static bool match_path(const std::vector<segment>& pattern, std::string_view path,
                           route_params& params);
    std::vector<route> routes_;
    std::vector<std::vector<segment>> segments_;
};

/// The path part of a request target ("/a/b?x=1" -> "/a/b").
std::string_view path_of(std::string_view target);

/// The JSON answer `{"error": message}`, pretty-printed as the API writes it.
http_response json_error(unsigned status, const std::string& message);

/// The JSON answer 404 "no such endpoint: PATH", and 405 "method not allowed" with `Allow`.
http_response not_found(std::string_view path);
http_response method_not_allowed(const std::vector<std::string>& allowed);

}  // namespace plugmon::agent
