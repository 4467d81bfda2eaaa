// /metrics: the Prometheus text exposition (format 0.0.4) of every registered metrics source,
// plain, in pieces or gzip-compressed, and the registration of the core sources.
#pragma once

#include "aggregate/series.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "pipeline/metrics_source.hpp"

#include <cstddef>
#include <string>

namespace plugmon::agent {

/// Adds the core sources to `r`, each component rendering its own families, in this order: the
/// aggregated series, the plugin processes, the drain's totals, the intake's refusals (unless
/// `in` is null) and the series store's own figures. Safe to render while the drain thread runs.
void add_core_metrics(metrics_registry& r, const series_registry& store, const drain& d,
                      const intake* in);

/// A registry of the core sources alone (tests and benchmarks).
metrics_registry core_metrics(const series_registry& store, const drain& d, const intake* in);

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
