// The exposition of the model: the aggregated series families and the series store's own figures
// (budget, folds, expiry, series held), each as a metrics source.
#pragma once

#include "aggregate/series.hpp"
#include "pipeline/metrics_source.hpp"

#include <memory>

namespace plugmon::agent {

/// The aggregated series: queries, executions, plugin counters, pools and heap (plugmon_query*,
/// plugmon_execution*, plugmon_plugin_*, plugmon_pool_connections). Safe to render while the
/// drain thread runs; streams per series.
std::shared_ptr<const metrics_source> make_series_metrics_source(const series_registry& store);

/// The series store's own figures: plugmon_agent_series_budget, plugmon_agent_series_folded_total,
/// plugmon_agent_series_expired_total and plugmon_agent_series.
std::shared_ptr<const metrics_source> make_series_store_metrics_source(
    const series_registry& store);

}  // namespace plugmon::agent
