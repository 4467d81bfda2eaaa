// Routes of the agent's HTTP listener: /metrics, /healthz, /readyz and the JSON API.
#pragma once

#include "aggregate/series.hpp"
#include "aggregate/statements.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "pipeline/metrics_source.hpp"
#include "web/server/http.hpp"

#include <functional>
#include <string>

namespace plugmon::agent {

struct api_context {
    const series_store& store;
    const drain& drainer;
    const intake* in;
    std::string version;
    std::function<std::string()> store_state;  ///< "disabled", "connected", ... (empty: disabled)
    const statement_book* statements = nullptr;
    std::size_t top_statements = 20;
    /// What /metrics renders, in order (null: /metrics answers 404).
    const metrics_registry* metrics = nullptr;
    /// GET /api/v1/store: the store writer's state as JSON; empty: 404 (no store configured).
    std::function<std::string()> store_json{};
};

/// Answers one request; never throws for a bad request (4xx instead).
http_response handle_request(const api_context& ctx, const http_request& req);

}  // namespace plugmon::agent
