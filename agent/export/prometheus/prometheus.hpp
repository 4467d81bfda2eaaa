// Prometheus text exposition (format 0.0.4) of the aggregated series and the agent's own metrics.
#pragma once

#include "aggregate/series.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "pipeline/metrics_source.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace plugmon::agent {

/// The aggregated series with the drain's and the intake's own figures, as one metrics source
/// (`in` may be null). Safe to render while the drain thread runs.
std::shared_ptr<const metrics_source> make_core_metrics_source(const series_store& store,
                                                               const drain& d, const intake* in);

/// A registry of the core source alone (tests and benchmarks).
metrics_registry core_metrics(const series_store& store, const drain& d, const intake* in);

/// Renders every source of `sources`, in order (text format 0.0.4).
std::string render_metrics(const metrics_registry& sources);

/// The same text, handed to `sink` in consecutive pieces of about `chunk_bytes` (the whole body
/// is never held at once).
void render_metrics(const metrics_registry& sources, const metrics_sink& sink,
                    std::size_t chunk_bytes);

/// The same text gzip-compressed, rendered piece by piece into the compressor, so memory holds
/// one 1 MiB piece and the compressed body (for a scraper that sends Accept-Encoding: gzip).
std::string render_metrics_gzip(const metrics_registry& sources);

}  // namespace plugmon::agent
