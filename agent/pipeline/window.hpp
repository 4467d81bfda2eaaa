// What a closed flush window hands to every window sink: rollups, slow samples and resource
// rows. Plain data; the aggregation fills it (aggregate/), the sinks read it (store/, alerts, ...).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace plugmon::agent {

/// One query series' figures over one flush window: a row of plugmon.query_rollups.
struct query_rollup {
    std::string plugin, op, table, tenant;
    std::uint64_t calls = 0, errors = 0, rows = 0, total_ns = 0, min_ns = 0, max_ns = 0;
    std::uint64_t p50_ns = 0, p95_ns = 0, p99_ns = 0;
    std::string sketch;  ///< dd_sketch encoding (version 1)
};

/// One execution series over one window (calls, wall and CPU time: the usage figures).
struct execution_rollup {
    std::string plugin, tenant;
    std::uint64_t calls = 0, errors = 0, wall_ns = 0, cpu_ns = 0;
};

/// One slow query, as it was drained: a row of plugmon.slow_queries.
struct slow_sample {
    std::chrono::system_clock::time_point at;
    std::string plugin, op, table, tenant, statement;  ///< statement empty: none was attached
    std::uint64_t fingerprint = 0, duration_ns = 0, rows = 0;
    bool error = false;
    int pid = 0;
};

/// Resource figures at a window's close: a row of plugmon.resource_samples. Either a process
/// (pid > 0, plugin empty: its probe's latest helper sample) or a plugin's heap (plugin set,
/// pid 0: bytes allocated and freed since the agent first saw it, from plugmon::alloc).
struct resource_row {
    std::chrono::system_clock::time_point at;
    int pid = 0;
    std::string process, plugin;
    std::uint64_t rss_bytes = 0, cpu_ns = 0, open_fds = 0, threads = 0, read_bytes = 0,
                  write_bytes = 0;
    std::uint64_t heap_allocated_bytes = 0, heap_freed_bytes = 0;
};

/// Everything one flush window produced, for the store.
struct window_batch {
    std::chrono::system_clock::time_point bucket_start;
    std::chrono::nanoseconds length{0};
    std::vector<query_rollup> queries;
    std::vector<execution_rollup> executions;
    std::vector<slow_sample> slow;        ///< slow queries drained during the window
    std::vector<resource_row> resources;  ///< processes and plugin heaps at the window's close
};

}  // namespace plugmon::agent
