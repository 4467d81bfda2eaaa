// One row of plugmon.usage(): a (tenant, plugin) pair's totals over a period (no dependencies).
#pragma once

#include <cstdint>
#include <string>

namespace plugmon::agent::store {

/// What usage is totalled per (tenant, plugin) over a period: the columns of plugmon.usage().
/// A plain value: no shared state; copying allocates (the strings).
struct usage_row {
    std::string tenant;  ///< "" for usage recorded without a tenant
    std::string plugin;
    std::uint64_t queries = 0;
    std::uint64_t query_errors = 0;
    std::uint64_t query_ns = 0;
    std::uint64_t rows = 0;
    std::uint64_t executions = 0;
    std::uint64_t execution_errors = 0;
    std::uint64_t cpu_ns = 0;
    std::uint64_t wall_ns = 0;
};

}  // namespace plugmon::agent::store
