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
    std::string sketch;  ///< dd_sketch encoding (version 2; see aggregate/sketch.hpp)
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
    /// A process's soft limits (RLIMIT_NOFILE, RLIMIT_NPROC) from /proc/<pid>/limits; 0 unknown
    /// or unlimited.
    std::uint64_t fd_limit = 0, threads_limit = 0;
};

/// A plugin's connection pool at the window's close (summed over the producers hosting it).
struct pool_row {
    std::string plugin;
    std::uint64_t in_use = 0, idle = 0, waiting = 0;
};

/// A leak detector's verdict at the window's close: a plugin's heap (plugin set) or a process's
/// RSS (pid set).
struct leak_row {
    std::string plugin, process;
    int pid = 0;
    bool suspected = false;
    double slope_bytes_per_second = 0, r2 = 0;
};

/// A producer's ring losses so far (full + torn + invalid slots), cumulative since it attached.
struct drop_row {
    int pid = 0;
    std::string process;
    std::uint64_t dropped_total = 0;
};

/// One change of an alert, for PostgreSQL: a row of plugmon.alert_events, and the alert's state
/// after it (plugmon.alerts keeps the latest per host and fingerprint). Made by the alert engine.
struct alert_row {
    std::chrono::system_clock::time_point at;
    /// The engine's sequence number, increasing across restarts: with host and fingerprint the
    /// row's identity, so that writing it twice (a replayed batch) is harmless.
    std::uint64_t seq = 0;
    std::string fingerprint;  ///< 16 hex digits; empty for a silence
    std::string rule, episode;
    /// "pending", "firing", "resolved", "inactive", "level" (severity changed), "acknowledged",
    /// "unacknowledged", "notified" (detail: event and receiver), "silence" (created or expired).
    std::string event;
    std::string state;     ///< after the change: inactive, pending, firing or resolved
    std::string severity;  ///< info, warning or critical
    double value = 0;
    std::string detail;  ///< free text (who acked, which receiver, ...)
    std::string labels_json = "{}", annotations_json = "{}";
    std::string ack_json = "null";  ///< {by, comment, at, expires_at} or null
    std::chrono::system_clock::time_point active_at, fired_at, resolved_at;  ///< epoch: not yet
};

/// Everything one flush window produced, for the sinks (the store, the alert engine).
struct window_batch {
    std::chrono::system_clock::time_point bucket_start;
    std::chrono::nanoseconds length{0};
    std::vector<query_rollup> queries;
    std::vector<execution_rollup> executions;
    std::vector<slow_sample> slow;        ///< slow queries drained during the window
    std::vector<resource_row> resources;  ///< processes and plugin heaps at the window's close
    std::vector<pool_row> pools;          ///< for alerts; not stored
    std::vector<leak_row> leaks;          ///< for alerts; not stored
    std::vector<drop_row> drops;          ///< for alerts; not stored
    /// Alert changes (the store writes them; a batch of alert rows alone has no other rows).
    std::vector<alert_row> alerts;
};

}  // namespace plugmon::agent
