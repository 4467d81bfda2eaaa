// Routes of the agent's HTTP listener: /metrics, /healthz, /readyz, the JSON API and /-/reload,
// each declared in the route table with the token scope it needs.
#pragma once

#include "aggregate/series.hpp"
#include "aggregate/statements.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "pipeline/metrics_source.hpp"
#include "web/server/http.hpp"
#include "web/server/router.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace plugmon::agent {

namespace alert {
class engine;
}
namespace audit {
class trail;
}

/// What a reload did: refused (error set, nothing changed) or applied as a whole.
struct reload_report {
    std::optional<std::string> error;           ///< why the new configuration was refused
    std::vector<std::string> applied;           ///< changed keys now in force
    std::vector<std::string> restart_required;  ///< changed keys that apply at the next start
};
/// Reloads the configuration.
using reload_function = std::function<reload_report()>;

struct api_context {
    const series_registry& store;
    const drain& drainer;
    const intake* in;
    std::string version;
    std::function<std::string()> store_state;  ///< "disabled", "connected", ... (empty: disabled)
    const statement_book* statements = nullptr;
    std::size_t top_statements = 20;
    /// What /metrics renders, in order (null: /metrics answers 404).
    const metrics_registry* metrics = nullptr;
    /// /metrics in the protobuf exposition with native histograms, for a scraper whose Accept
    /// header prefers it (empty: text only).
    std::function<std::string()> metrics_protobuf{};
    /// GET /api/v1/store: the store writer's state as JSON; empty: 404 (no store configured).
    std::function<std::string()> store_json{};
    /// POST /-/reload (scope admin) calls it; empty: the route answers 404.
    reload_function reload{};
    /// The alert engine behind /api/v1/alerts and /api/v1/silences (null: they answer 404).
    alert::engine* alerts = nullptr;
    /// GET /api/v1/notifications?state=dead: the dead letters as JSON (empty: 404).
    std::function<std::string()> dead_letters{};
    /// POST /api/v1/notifications/{id}/retry: queues a dead letter again; false: no such id.
    std::function<bool(const std::string&)> replay_notification{};
    /// GET /api/v1/audit (scope admin): the audit trail's recent entries (null: 404).
    const audit::trail* audit = nullptr;
};

/// Adds every route of the agent to `r`. The handlers keep a reference to `ctx`, which must
/// outlive the router.
void add_api_routes(router& r, const api_context& ctx);

/// Answers one request through the route table, without the security layer (for tests and
/// benchmarks that call the handlers directly); never throws for a bad request (4xx instead).
http_response handle_request(const api_context& ctx, const http_request& req);

}  // namespace plugmon::agent
