// Prometheus text exposition (format 0.0.4) of the aggregated series and the agent's own metrics.
#pragma once

#include "aggregate.hpp"
#include "drain.hpp"
#include "intake.hpp"

#include <string>
#include <string_view>

namespace plugmon::agent {

/// Renders every metric family. Safe to call while the drain thread runs.
std::string render_metrics(const series_store& store, const drain& d, const intake* in);

/// Escapes a label value: backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view v);

}  // namespace plugmon::agent
