// The dashboard's routes: the embedded page and its assets, the snapshot, the live stream, the
// chart history and the statements per window.
#include "web/api/json.hpp"
#include "web/ui/assets.hpp"
#include "web/ui/dashboard.hpp"

#include <cstdlib>

namespace plugmon::agent::ui {

namespace {

/// Everything the page may do: its own scripts, styles, images and API, nothing else, no inline
/// code, and DOM sinks closed by Trusted Types (data is only ever set as text).
constexpr const char* content_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'";

void add_page_headers(http_response& r) {
    r.headers.emplace_back("Content-Security-Policy", content_security_policy);
    r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
    r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
    r.headers.emplace_back("Permissions-Policy",
                           "camera=(), microphone=(), geolocation=(), usb=()");
}

/// True when an If-None-Match header lists `etag` (or is "*").
bool etag_matches(std::string_view header, std::string_view etag) {
    return api::any_list_item(header, [etag](std::string_view item) {
        if (item.starts_with("W/")) item.remove_prefix(2);
        return item == "*" || item == etag;
    });
}

/// One embedded file: revalidated by ETag (304), gzip when the client takes it.
http_response serve_asset(const http_request& req, std::string_view name) {
    const asset* a = find_asset(name);
    if (a == nullptr) return api::error_response(404, "no such file: /ui/" + std::string(name));
    http_response r;
    add_page_headers(r);
    r.headers.emplace_back("ETag", a->etag);
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("Vary", "Accept-Encoding");
    if (etag_matches(req.if_none_match, a->etag)) {
        r.status = 304;
        return r;
    }
    r.content_type = a->content_type;
    if (api::accepts_gzip(req.accept_encoding)) {
        r.headers.emplace_back("Content-Encoding", "gzip");
        r.body = a->gzip;
    } else {
        r.body = std::string(a->bytes);
    }
    return r;
}

http_response json_text(std::string body) {
    http_response r;
    r.content_type = "application/json";
    r.body = std::move(body);
    add_page_headers(r);
    return r;
}

/// GET /api/v1/ui/stream[?max_events=N].
http_response open_stream(dashboard& d, const http_request& req) {
    std::uint64_t max_events = 0;
    if (const auto m = api::query_param(req.target, "max_events")) {
        char* end = nullptr;
        max_events = std::strtoull(m->c_str(), &end, 10);
        if (m->empty() || *end != '\0' || max_events == 0 || max_events > 1'000'000)
            return api::error_response(
                400, "max_events: expected an integer from 1 to 1000000, got \"" + *m + "\"");
    }
    auto stream = d.open_stream(max_events);
    if (!stream) {
        http_response r = api::error_response(
            503, "too many live streams (ui_max_streams); poll /api/v1/ui/snapshot instead");
        r.headers.emplace_back("Retry-After", "5");
        return r;
    }
    http_response r;
    r.content_type = "text/event-stream; charset=utf-8";
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("X-Accel-Buffering", "no");  // a proxy must pass events on at once
    r.stream = std::move(stream);
    return r;
}

http_response statements(dashboard& d, const http_request& req) {
    const auto w = api::query_param(req.target, "window").value_or("5m");
    const auto window = parse_statement_window(w);
    if (!window)
        return api::error_response(400, "window: expected 5m, 1h or start, got \"" + w + "\"");
    const auto plugin = api::query_param(req.target, "plugin").value_or("");
    return json_text(d.statements_json(*window, plugin).dump());
}

}  // namespace

void add_ui_routes(router& r, dashboard& d) {
    r.add({"GET", "/ui", "ui", scope::none, [](const http_request&, const route_params&) {
               http_response out;
               out.status = 308;
               out.body = "see /ui/\n";
               out.headers.emplace_back("Location", "/ui/");
               return out;
           }});
    r.add({"GET", "/ui/", "ui", scope::read, [](const http_request& req, const route_params&) {
               return serve_asset(req, "index.html");
           }});
    r.add({"GET", "/ui/manifest.json", "ui", scope::read,
           [](const http_request&, const route_params&) {
               return json_text(manifest_json().dump(2) + "\n");
           }});
    r.add({"GET", "/ui/{asset}", "ui", scope::read,
           [](const http_request& req, const route_params& p) {
               return serve_asset(req, p.at("asset"));
           }});
    // Browsers ask for it whatever the page says; a 404 would be a console error.
    r.add({"GET", "/favicon.ico", "ui", scope::none,
           [](const http_request& req, const route_params&) {
               return serve_asset(req, "favicon.svg");
           }});
    r.add({"GET", "/api/v1/ui/snapshot", "ui_snapshot", scope::read,
           [&d](const http_request&, const route_params&) {
               const auto s = d.latest();
               if (!s) return api::error_response(503, "no snapshot yet");
               return json_text(*s);
           }});
    r.add({"GET", "/api/v1/ui/stream", "ui_stream", scope::read,
           [&d](const http_request& req, const route_params&) { return open_stream(d, req); }});
    r.add({"GET", "/api/v1/ui/history", "ui_history", scope::read,
           [&d](const http_request&, const route_params&) { return json_text(d.history_json()); }});
    r.add({"GET", "/api/v1/ui/statements", "ui_statements", scope::read,
           [&d](const http_request& req, const route_params&) { return statements(d, req); }});
}

}  // namespace plugmon::agent::ui
