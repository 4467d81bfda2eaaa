// POST /-/reload (scope admin): reloads the configuration as SIGHUP does.
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

void add_reload_routes(router& r, const api_context& ctx) {
    r.add({"POST", "/-/reload", "reload", scope::admin,
           [&ctx](const http_request&, const route_params&) {
               if (!ctx.reload) return error_response(404, "reload is not available here");
               const reload_report report = ctx.reload();
               if (report.error)
                   return error_response(
                       500, "reload refused, the running configuration stays: " + *report.error);
               return json_response({{"status", "reloaded"},
                                     {"applied", report.applied},
                                     {"restart_required", report.restart_required}});
           }});
}

}  // namespace plugmon::agent::api
