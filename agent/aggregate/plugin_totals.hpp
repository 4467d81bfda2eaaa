// One plugin's series folded together: the totals the API and the dashboard show per plugin.
#pragma once

#include "aggregate/series.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace plugmon::agent {

struct plugin_totals {
    struct table_totals {
        std::uint64_t calls = 0, ns = 0;
    };
    std::uint64_t ok = 0, error = 0, rows = 0, sum_ns = 0, executions = 0, cpu_ns = 0;
    /// By (operation, table).
    std::map<std::pair<std::string, std::string>, table_totals> tables;
    /// Null when the plugin reports no pool samples / does not track its allocations.
    std::shared_ptr<const pool_series> pool;
    std::shared_ptr<const memory_series> memory;

    /// Live heap bytes (allocated - freed); nullopt when the plugin does not track allocations.
    std::optional<std::uint64_t> heap_bytes() const;
    /// in_use / (in_use + idle) over the latest pool samples; nullopt without a pool or with no
    /// connection at all.
    std::optional<double> pool_utilization() const;
};

/// The view's series folded by plugin (only `only` when given). A heap lists its plugin; a pool
/// only joins a plugin listed for something else.
std::map<std::string, plugin_totals> fold_by_plugin(const series_registry::view& v,
                                                    const std::string* only = nullptr);

}  // namespace plugmon::agent
