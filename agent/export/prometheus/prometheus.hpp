// Prometheus text exposition (format 0.0.4) of the aggregated series and the agent's own metrics.
#pragma once

#include "aggregate/series.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace plugmon::agent {

/// More families from other parts of the agent (the store writer), appended at the end.
using metrics_extra = std::function<void(std::string&)>;

/// Renders every metric family. Safe to call while the drain thread runs.
std::string render_metrics(const series_store& store, const drain& d, const intake* in,
                           const metrics_extra* extra = nullptr);

/// The same text, handed to `sink` in consecutive pieces of about `chunk_bytes` (the whole body
/// is never held at once).
using metrics_sink = std::function<void(std::string_view)>;
void render_metrics(const series_store& store, const drain& d, const intake* in,
                    const metrics_sink& sink, std::size_t chunk_bytes,
                    const metrics_extra* extra = nullptr);

/// The same text gzip-compressed, rendered piece by piece into the compressor, so memory holds
/// one 1 MiB piece and the compressed body (for a scraper that sends Accept-Encoding: gzip).
std::string render_metrics_gzip(const series_store& store, const drain& d, const intake* in,
                                const metrics_extra* extra = nullptr);

}  // namespace plugmon::agent
