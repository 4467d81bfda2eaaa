// A remote-write sink as the configuration describes it.
#pragma once

#include "config/config.hpp"
#include "export/remote_write/sink.hpp"

#include <memory>

namespace plugmon::agent::remote_write {

/// The sink for `r`: its headers, bounds and spool, the agent's classic query buckets, and stale
/// markers after `c.series_expiry_windows` windows without a series (as /metrics forgets it).
/// Throws as sink::sink does. Thread safety: reentrant.
std::shared_ptr<sink> make_sink(const config& c, const remote_write_spec& r);

}  // namespace plugmon::agent::remote_write
