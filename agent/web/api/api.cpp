// The agent's route table: every resource's routes, and handle_request() over them.
#include "web/api/api.hpp"

#include "web/api/routes.hpp"

namespace plugmon::agent {

void add_api_routes(router& r, const api_context& ctx) {
    api::add_metrics_routes(r, ctx);
    api::add_health_routes(r, ctx);
    api::add_producers_routes(r, ctx);
    api::add_slow_queries_routes(r, ctx);
    api::add_store_routes(r, ctx);
    api::add_plugins_routes(r, ctx);
    api::add_reload_routes(r, ctx);
    api::add_alerts_routes(r, ctx);
    api::add_audit_routes(r, ctx);
}

http_response handle_request(const api_context& ctx, const http_request& req) {
    router r;
    add_api_routes(r, ctx);
    return r.dispatch(req);
}

}  // namespace plugmon::agent
