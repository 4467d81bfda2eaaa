// The ingestion side's metrics sources: the plugin processes' resources, sampled by their
// probes. (The drain and the intake render their own totals: drain::render_metrics,
// intake::render_metrics.)
#pragma once

#include "ingest/drainer.hpp"
#include "pipeline/metrics_source.hpp"

#include <memory>

namespace plugmon::agent {

/// plugmon_process_* families: one sample per attached producer whose probe has sent a process
/// sample, labelled by pid and process name. Safe to render while the drain thread runs.
std::shared_ptr<const metrics_source> make_process_metrics_source(const drain& d);

}  // namespace plugmon::agent
