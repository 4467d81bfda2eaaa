// GET /metrics: the Prometheus exposition of every registered metrics source, gzip on request.
#include "export/prometheus/prometheus.hpp"
#include "export/prometheus/protobuf_exposition.hpp"
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

namespace {

http_response metrics(const api_context& ctx, const http_request& req) {
    if (ctx.metrics == nullptr) return error_response(404, "no metrics");
    http_response r;
    if (ctx.metrics_protobuf && protobuf_exposition::wants_protobuf(req.accept)) {
        r.content_type = std::string(protobuf_exposition::content_type);
        r.body = ctx.metrics_protobuf();
        return r;
    }
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
