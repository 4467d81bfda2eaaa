// The security layer: Host allowlist, bearer tokens with scopes, the failure limiter, mutation
// rules, the audit entry and the request metrics around every route.
#include "web/server/auth.hpp"

#include <algorithm>
#include <cctype>

#include <arpa/inet.h>

namespace plugmon::agent {

namespace {

using clock = std::chrono::steady_clock;

/// More client addresses than this are not tracked (their failures go uncounted until old
/// windows end): the limiter's memory stays bounded under a flood from many addresses.
constexpr std::size_t max_tracked_clients = 65536;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

bool is_mutating(std::string_view method) {
    return method == "POST" || method == "PUT" || method == "DELETE" || method == "PATCH";
}

/// Percent-decodes %XX (enough to see through an encoded parameter name).
std::string decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() &&
            std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out.push_back(char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

/// True when the query string has a parameter that looks like a credential.
bool has_query_token(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return false;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const std::string name = lower(decode(item.substr(0, item.find('='))));
        if (name == "access_token" || name == "token" || name == "api_token") return true;
    }
    return false;
}

/// The secret of `Authorization: Bearer SECRET`; nullopt for any other form.
std::optional<std::string_view> bearer_secret(std::string_view header) {
    constexpr std::string_view scheme = "bearer ";
    if (header.size() <= scheme.size() || !iequals(header.substr(0, scheme.size()), scheme))
        return std::nullopt;
    std::string_view secret = header.substr(scheme.size());
    while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
    while (!secret.empty() && (secret.back() == ' ' || secret.back() == '\t'))
        secret.remove_suffix(1);
    if (secret.empty() || secret.find_first_of(" \t") != std::string_view::npos)
        return std::nullopt;
    return secret;
}

http_response unauthorized(const std::string& message) {
    http_response r = json_error(401, message);
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"plugmon\"");
    return r;
}

/// True when a browser says the request comes from another site: Sec-Fetch-Site: cross-site,
/// or an Origin whose host:port is not the Host header (Origin: null included).
bool is_cross_site(const http_request& req) {
    if (iequals(req.sec_fetch_site, "cross-site")) return true;
    if (!req.has_origin) return false;
    const auto scheme_end = req.origin.find("://");
    if (scheme_end == std::string::npos || !req.has_host) return true;
    std::string_view authority = std::string_view(req.origin).substr(scheme_end + 3);
    authority = authority.substr(0, authority.find('/'));
    return !iequals(authority, req.host);
}

/// The media type of a Content-Type header, lowercased, without parameters.
std::string media_type(std::string_view content_type) {
    std::string_view t = content_type.substr(0, content_type.find(';'));
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    return lower(t);
}

bool host_allowed(const security_options& o, const http_request& req) {
    if (!req.has_host || req.host.empty()) return is_loopback_host(req.remote);
    const std::string h = host_of(req.host);
    if (h.empty()) return false;
    if (is_loopback_host(h)) return true;
    if (!o.listen_host.empty() && h == host_of(o.listen_host)) return true;
    if (!req.local.empty() && h == lower(req.local)) return true;
    return std::find(o.allowed_hosts.begin(), o.allowed_hosts.end(), h) != o.allowed_hosts.end();
}

/// Printable ASCII only, for a log line built from what a client sent.
std::string printable(std::string_view s) {
    std::string out(s.substr(0, 200));
    for (char& c : out)
        if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f ||
            c == '"')
            c = '?';
    return out.empty() ? "-" : out;
}

}  // namespace

std::vector<api_token_entry> admin_token(const std::string& secret) {
    if (secret.empty()) return {};
    return {api_token_entry{"api_token", scope::admin, sha256(secret)}};
}

std::string host_of(std::string_view h) {
    std::string_view host;
    if (!h.empty() && h.front() == '[') {
        const auto close = h.find(']');
        if (close == std::string_view::npos) return {};
        host = h.substr(1, close - 1);
        const auto after = h.substr(close + 1);
        if (!after.empty() && after.front() != ':') return {};
    } else {
        const auto colon = h.find(':');
        if (colon != std::string_view::npos && h.find(':', colon + 1) != std::string_view::npos)
            host = h;  // an IPv6 address without brackets (not a valid Host, but unambiguous)
        else
            host = h.substr(0, colon);
    }
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    return lower(host);
}

bool is_loopback_host(std::string_view host) {
    const std::string h = host_of(host);
    if (h == "localhost") return true;
    in_addr v4{};
    if (inet_pton(AF_INET, h.c_str(), &v4) == 1)
        return (reinterpret_cast<const unsigned char*>(&v4.s_addr))[0] == 127;
    in6_addr v6{};
    if (inet_pton(AF_INET6, h.c_str(), &v6) != 1) return false;
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

void failure_limiter::prune(clock::time_point now, std::chrono::seconds length) {
    for (auto it = clients_.begin(); it != clients_.end();)
        it = now - it->second.start >= length ? clients_.erase(it) : std::next(it);
}

std::chrono::seconds failure_limiter::blocked_for(const std::string& client, clock::time_point now,
                                                  const security_options& o) {
    const std::lock_guard lock(mutex_);
    const auto it = clients_.find(client);
    if (it == clients_.end()) return std::chrono::seconds{0};
    const auto end = it->second.start + o.failure_window;
    if (now >= end) {
        clients_.erase(it);
        return std::chrono::seconds{0};
    }
    if (it->second.failures < o.max_failures) return std::chrono::seconds{0};
    const auto left = std::chrono::ceil<std::chrono::seconds>(end - now);
    return std::max(left, std::chrono::seconds{1});
}

void failure_limiter::failed(const std::string& client, clock::time_point now,
                             const security_options& o) {
    const std::lock_guard lock(mutex_);
    if (clients_.size() >= max_tracked_clients / 2) prune(now, o.failure_window);
    auto it = clients_.find(client);
    if (it == clients_.end()) {
        if (clients_.size() >= max_tracked_clients) return;
        it = clients_.emplace(client, window{now, 0}).first;
    }
    if (now - it->second.start >= o.failure_window) it->second = window{now, 0};
    ++it->second.failures;
}

security_layer::security_layer(const router& routes, security_options options,
                               std::shared_ptr<http_metrics> metrics,
                               std::shared_ptr<audit::trail> audit)
    : routes_(routes), metrics_(std::move(metrics)), audit_(std::move(audit)),
      options_(std::make_shared<const security_options>(std::move(options))) {
    if (!metrics_) metrics_ = std::make_shared<http_metrics>(routes_.names());
    if (!audit_) audit_ = std::make_shared<audit::trail>();
}

void security_layer::set_options(security_options options) {
    auto fresh = std::make_shared<const security_options>(std::move(options));
    const std::lock_guard lock(options_mutex_);
    options_ = std::move(fresh);
}

std::shared_ptr<const security_options> security_layer::options() const {
    const std::lock_guard lock(options_mutex_);
    return options_;
}

http_response security_layer::handle(const http_request& req) {
    const auto start = clock::now();
    const auto o = options();
    const route_match m = routes_.match(req.method, path_of(req.target));
    verdict v;
    http_response r;
    try {
        if (auto refusal = check(*o, req, m, v))
            r = std::move(*refusal);
        else if (v.token_name == "-")
            r = m.found->handler(req, m.params);
        else {
            http_request named = req;
            named.principal = v.token_name;
            r = m.found->handler(named, m.params);
        }
    } catch (...) {
        finish(req, m, v, 500, start);
        throw;
    }
    finish(req, m, v, r.status, start);
    return r;
}

std::optional<http_response> security_layer::check(const security_options& o,
                                                   const http_request& req, const route_match& m,
                                                   verdict& v) {
    if (!host_allowed(o, req))
        return json_error(421, "host " + printable(req.host) +
                                   " is not served here (loopback names, the listen address "
                                   "and http_allowed_hosts are)");
    if (has_query_token(req.target)) {
        metrics_->count(auth_failure::query_token);
        return json_error(400,
                          "tokens are accepted only in the Authorization: Bearer header, never "
                          "in the URL; this request was not used (and the token may have leaked "
                          "into logs: replace it)");
    }
    if (m.found == nullptr)
        return m.allowed.empty() ? not_found(path_of(req.target)) : method_not_allowed(m.allowed);
    const bool mutating = is_mutating(req.method);
    if (mutating && is_cross_site(req))
        return json_error(403, "cross-site request refused (Origin / Sec-Fetch-Site)");
    if (auto refusal = authenticate(o, req, m.found->needs, v)) return refusal;
    if (mutating && !(req.body.empty() && req.content_type.empty()) &&
        media_type(req.content_type) != "application/json")
        return json_error(415, "request body must be application/json");
    return std::nullopt;
}

std::optional<http_response> security_layer::authenticate(const security_options& o,
                                                          const http_request& req, scope needed,
                                                          verdict& v) {
    if (needed == scope::none || (needed == scope::read && !o.read_requires_token))
        return std::nullopt;
    const auto now = clock::now();
    if (const auto wait = limiter_.blocked_for(req.remote, now, o); wait.count() > 0) {
        metrics_->count(auth_failure::rate_limited);
        http_response r = json_error(429,
                                     "too many failed authentications from this address; "
                                     "retry in " +
                                         std::to_string(wait.count()) + " s");
        r.headers.emplace_back("Retry-After", std::to_string(wait.count()));
        return r;
    }
    if (req.authorization.empty()) {
        metrics_->count(auth_failure::missing_token);
        return unauthorized("this endpoint needs a token (Authorization: Bearer TOKEN)");
    }
    const api_token_entry* who = nullptr;
    if (const auto secret = bearer_secret(req.authorization)) {
        const sha256_digest digest = sha256(*secret);
        // Every token is compared, whichever matches: the time says nothing about which did.
        for (const auto& t : o.tokens)
            if (equal_digests(digest, t.digest)) who = &t;
    }
    if (who == nullptr) {
        metrics_->count(auth_failure::invalid_token);
        limiter_.failed(req.remote, now, o);
        return unauthorized("invalid token");
    }
    v.token_name = who->name;
    if (!allows(who->allows, needed)) {
        metrics_->count(auth_failure::insufficient_scope);
        return json_error(
            403, "token \"" + who->name + "\" lacks scope " + std::string(to_string(needed)));
    }
    return std::nullopt;
}

void security_layer::finish(const http_request& req, const route_match& m, const verdict& v,
                            unsigned status, clock::time_point start) {
    const std::string_view handler =
        m.found != nullptr
            ? std::string_view(m.found->name)
            : (m.path_name.empty() ? std::string_view("not_found") : std::string_view(m.path_name));
    metrics_->observe(handler, status, clock::now() - start);
    if (!is_mutating(req.method)) return;
    const std::string path = printable(path_of(req.target));  // never the query string
    audit::entry e;
    e.actor = v.token_name;
    e.client = printable(req.remote);
    e.action = printable(req.method) + " " + (m.found != nullptr ? m.found->pattern : path);
    e.target = path;
    e.status = status;
    audit_->record(std::move(e));
}

}  // namespace plugmon::agent
