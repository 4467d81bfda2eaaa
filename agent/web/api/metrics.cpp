// GET /metrics: the Prometheus exposition of every registered metrics source, gzip on request.
#include "export/prometheus/prometheus.hpp"
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

#include <cctype>
#include <cstdlib>
#include <string_view>

namespace plugmon::agent::api {

namespace {

/// True when an Accept-Encoding header lists gzip with a non-zero quality.
bool accepts_gzip(std::string_view header) {
    std::string lower(header);
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    std::string_view rest = lower;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        const auto semi = item.find(';');
        std::string_view coding = item.substr(0, semi);
        while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
        if (coding != "gzip") continue;
        if (semi == std::string_view::npos) return true;
        const auto q = item.find("q=", semi);
        return q == std::string_view::npos ||
               std::strtod(std::string(item.substr(q + 2)).c_str(), nullptr) > 0;
    }
    return false;
}

http_response metrics(const api_context& ctx, const http_request& req) {
    if (ctx.metrics == nullptr) return error_response(404, "no metrics");
    http_response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (accepts_gzip(req.accept_encoding)) {
        // Prometheus asks for gzip: rendered piece by piece into the compressor, so the agent
        // never holds the whole text (31 MiB at 10 k series)
        r.body = render_metrics_gzip(*ctx.metrics);
        r.headers.emplace_back("Content-Encoding", "gzip");
    } else {
        r.body = render_metrics(*ctx.metrics);
    }
    return r;
}

}  // namespace

void add_metrics_routes(router& r, const api_context& ctx) {
    r.add({"GET", "/metrics", "metrics", scope::read,
           [&ctx](const http_request& req, const route_params&) { return metrics(ctx, req); }});
}

}  // namespace plugmon::agent::api
