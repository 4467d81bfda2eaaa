// Route matching: literal and {param} segments, 404 and 405 answers.
#include "web/server/router.hpp"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace plugmon::agent {

namespace {

bool known_method(std::string_view m) {
    return m == "GET" || m == "POST" || m == "PUT" || m == "DELETE";
}

}  // namespace

std::string_view to_string(scope s) {
    switch (s) {
        case scope::none:
            return "none";
        case scope::read:
            return "read";
        case scope::ack:
            return "ack";
        case scope::admin:
            return "admin";
    }
    return "none";
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

http_response json_error(unsigned status, const std::string& message) {
    http_response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = nlohmann::json{{"error", message}}.dump(2);
    r.body.push_back('\n');
    return r;
}

http_response not_found(std::string_view path) {
    return json_error(404, "no such endpoint: " + std::string(path));
}

http_response method_not_allowed(const std::vector<std::string>& allowed) {
    http_response r = json_error(405, "method not allowed");
    std::string allow;
    for (const auto& m : allowed) {
        if (!allow.empty()) allow += ", ";
        allow += m;
        if (m == "GET") allow += ", HEAD";
    }
    r.headers.emplace_back("Allow", allow);
    return r;
}

void router::add(route r) {
    if (!known_method(r.method)) throw std::invalid_argument("route: unknown method " + r.method);
    if (r.pattern.empty() || r.pattern.front() != '/')
        throw std::invalid_argument("route: pattern " + r.pattern + " does not start with '/'");
    if (r.name.empty() || !r.handler)
        throw std::invalid_argument("route " + r.pattern + ": needs a name and a handler");
    std::vector<segment> segs;
    std::string_view rest = std::string_view(r.pattern).substr(1);
    for (;;) {
        const auto slash = rest.find('/');
        const std::string_view item = rest.substr(0, slash);
        segment s;
        if (item.size() >= 2 && item.front() == '{' && item.back() == '}') {
            s.param = true;
            s.text = std::string(item.substr(1, item.size() - 2));
            if (s.text.ends_with("...")) {
                s.rest = true;
                s.text.resize(s.text.size() - 3);
                if (slash != std::string_view::npos)
                    throw std::invalid_argument("route " + r.pattern + ": {...} must be last");
            }
            if (s.text.empty()) throw std::invalid_argument("route " + r.pattern + ": empty {}");
        } else {
            if (item.find_first_of("{}") != std::string_view::npos)
                throw std::invalid_argument("route " + r.pattern + ": malformed segment");
            s.text = std::string(item);
        }
        segs.push_back(std::move(s));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    for (const auto& other : routes_)
        if (other.method == r.method && other.pattern == r.pattern)
            throw std::invalid_argument("route " + r.method + " " + r.pattern + " added twice");
    routes_.push_back(std::move(r));
    segments_.push_back(std::move(segs));
}

bool router::match_path(const std::vector<segment>& pattern, std::string_view path,
                        route_params& params) {
    if (path.empty() || path.front() != '/') return false;
    std::string_view rest = path.substr(1);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const segment& s = pattern[i];
        if (s.rest) {
            if (rest.empty()) return false;
            params[s.text] = std::string(rest);
            return true;
        }
        const auto slash = rest.find('/');
        const std::string_view item = rest.substr(0, slash);
        const bool last = i + 1 == pattern.size();
        if (last != (slash == std::string_view::npos)) return false;
        if (s.param) {
            if (item.empty()) return false;
            params[s.text] = std::string(item);
        } else if (item != s.text) {
            return false;
        }
        if (!last) rest.remove_prefix(slash + 1);
    }
    return true;
}

route_match router::match(std::string_view method, std::string_view path) const {
    route_match m;
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        route_params params;
        if (!match_path(segments_[i], path, params)) continue;
        if (routes_[i].method == method && m.found == nullptr) {
            m.found = &routes_[i];
            m.params = std::move(params);
        }
        if (std::find(m.allowed.begin(), m.allowed.end(), routes_[i].method) == m.allowed.end())
            m.allowed.push_back(routes_[i].method);
        if (m.path_name.empty()) m.path_name = routes_[i].name;
    }
    if (m.found != nullptr) m.path_name.clear();
    return m;
}

http_response router::dispatch(const http_request& req) const {
    const std::string_view path = path_of(req.target);
    const route_match m = match(req.method, path);
    if (m.found != nullptr) return m.found->handler(req, m.params);
    if (!m.allowed.empty()) return method_not_allowed(m.allowed);
    return not_found(path);
}

std::vector<std::string> router::names() const {
    std::vector<std::string> out;
    for (const auto& r : routes_)
        if (std::find(out.begin(), out.end(), r.name) == out.end()) out.push_back(r.name);
    return out;
}

}  // namespace plugmon::agent
