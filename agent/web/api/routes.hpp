// The per-resource route registrations that add_api_routes() calls, one source file each.
#pragma once

#include "web/api/api.hpp"
#include "web/server/router.hpp"

namespace plugmon::agent::api {

void add_metrics_routes(router& r, const api_context& ctx);       // metrics.cpp
void add_health_routes(router& r, const api_context& ctx);        // health.cpp
void add_producers_routes(router& r, const api_context& ctx);     // producers.cpp
void add_slow_queries_routes(router& r, const api_context& ctx);  // slow_queries.cpp
void add_store_routes(router& r, const api_context& ctx);         // store.cpp
void add_plugins_routes(router& r, const api_context& ctx);       // plugins.cpp
void add_reload_routes(router& r, const api_context& ctx);        // reload.cpp
void add_alerts_routes(router& r, const api_context& ctx);        // alerts.cpp
void add_audit_routes(router& r, const api_context& ctx);         // audit.cpp

}  // namespace plugmon::agent::api
