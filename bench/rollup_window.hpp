// What the store benchmarks write: a flush window of query rollups with realistic sketches, and
// the process CPU clock they measure with. Shared by store_bench and fleet_sim.
#pragma once

#include "aggregate/series.hpp"
#include "aggregate/sketch.hpp"
#include "pipeline/window.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

namespace plugmon::bench {

/// A 10 s window of `rows` query rollups (distinct labels over 20 plugins, 4 operations, 25
/// tables) whose sketches hold min_calls..max_calls-1 lognormal durations (median 2 ms), plus one
/// execution rollup per plugin. Deterministic for a given `rng` state.
inline agent::window_batch make_rollup_window(std::size_t rows, std::mt19937_64& rng,
                                              std::uint64_t min_calls, std::uint64_t max_calls) {
    agent::window_batch w;
    w.length = std::chrono::seconds(10);
    std::lognormal_distribution<double> latency(std::log(2e6), 1.0);
    for (std::size_t i = 0; i < rows; ++i) {
        agent::dd_sketch s;
        const std::uint64_t calls = min_calls + rng() % (max_calls - min_calls);
        for (std::uint64_t c = 0; c < calls; ++c) s.add(std::uint64_t(latency(rng)));
        agent::query_rollup q;
        q.plugin = "plugin-" + std::to_string(i % 20);
        q.op = i % 4 == 0 ? "SELECT" : i % 4 == 1 ? "INSERT" : i % 4 == 2 ? "UPDATE" : "DELETE";
        q.table = "table-" + std::to_string((i / 20) % 25);
        q.tenant = "tenant-" + std::to_string(i / 500);
        agent::fill_durations(q, s);
        q.errors = calls / 50;
        q.rows = calls * 3;
        w.queries.push_back(std::move(q));
    }
    for (int p = 0; p < 20; ++p)
        w.executions.push_back(
            {"plugin-" + std::to_string(p), "tenant-0", 100, 1, 5'000'000, 2'000'000});
    return w;
}

/// CPU seconds (user + system) this process has used so far, every thread included.
inline double own_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    const auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

}  // namespace plugmon::bench
