// GET /api/v1/store: the PostgreSQL store writer's state (404 when no store is configured).
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

void add_store_routes(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/store", "store", scope::read,
           [&ctx](const http_request&, const route_params&) {
               if (!ctx.store_json) return error_response(404, "no PostgreSQL store is configured");
               http_response out;
               out.content_type = "application/json";
               out.body = ctx.store_json();
               return out;
           }});
}

}  // namespace plugmon::agent::api
