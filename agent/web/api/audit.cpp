// GET /api/v1/audit[?limit=N] (scope admin): the audit trail's recent entries, newest first.
#include "audit/trail.hpp"
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

namespace {

http_response audit_entries(const api_context& ctx, const http_request& req) {
    if (ctx.audit == nullptr) return error_response(404, "this agent keeps no audit trail");
    std::size_t limit = 100;
    if (auto bad = read_limit(req.target, audit::trail::default_capacity, limit)) return *bad;
    nlohmann::json entries = nlohmann::json::array();
    for (const audit::entry& e : ctx.audit->recent(limit)) entries.push_back(audit::to_json(e));
    return json_response({{"entries", std::move(entries)}});
}

}  // namespace

void add_audit_routes(router& r, const api_context& ctx) {
    r.add(
        {"GET", "/api/v1/audit", "audit", scope::admin,
         [&ctx](const http_request& req, const route_params&) { return audit_entries(ctx, req); }});
}

}  // namespace plugmon::agent::api
