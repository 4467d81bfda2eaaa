// GET /healthz (the drain runs) and GET /readyz (drain, socket, producers, store): open to all.
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

namespace {

http_response healthz(const api_context& ctx) {
    http_response r;
    r.body = ctx.drainer.running() ? "ok\n" : "drain stopped\n";
    r.status = ctx.drainer.running() ? 200 : 503;
    return r;
}

http_response readyz(const api_context& ctx) {
    const bool ready = ctx.drainer.running() && ctx.in != nullptr;
    const std::string store = ctx.store_state ? ctx.store_state() : "disabled";
    std::size_t attached = 0;
    for (const auto& p : ctx.drainer.producers())
        if (p->live()) ++attached;
    return json_response({{"ready", ready},
                          {"socket", ctx.in ? ctx.in->socket_path() : ""},
                          {"producers", attached},
                          {"store", store},
                          {"version", ctx.version}},
                         ready ? 200 : 503);
}

}  // namespace

void add_health_routes(router& r, const api_context& ctx) {
    // Scope none: liveness and readiness probes never carry a token.
    r.add({"GET", "/healthz", "healthz", scope::none,
           [&ctx](const http_request&, const route_params&) { return healthz(ctx); }});
    r.add({"GET", "/readyz", "readyz", scope::none,
           [&ctx](const http_request&, const route_params&) { return readyz(ctx); }});
}

}  // namespace plugmon::agent::api
