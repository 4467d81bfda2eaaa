// What the dashboard shows, built once per tick for every client: the snapshot (status, plugins,
// processes, alerts, this tick's chart point), the chart history, and statements per window.
#pragma once

#include "aggregate/plugin_totals.hpp"
#include "web/api/api.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace plugmon::agent::ui {

struct snapshot_options {
    std::string host;
    bool read_only = false;
    /// ui_max_streams, shown so that the page polls instead of asking for a stream it would be
    /// refused (a refused request is an error in the browser's console).
    std::size_t max_streams = 32;
    std::chrono::nanoseconds interval = std::chrono::seconds{1};
    std::chrono::nanoseconds history = std::chrono::minutes{10};
    std::chrono::nanoseconds flush_window = std::chrono::seconds{10};
    /// Rates (calls/s, errors/s, CPU/s) are averaged over this span.
    std::chrono::nanoseconds rate_span = std::chrono::seconds{5};
};

/// The statement windows the dashboard offers.
enum class statement_window { five_minutes, one_hour, since_start };

/// "5m", "1h", "start" -> the window; anything else: nullopt.
std::optional<statement_window> parse_statement_window(std::string_view s);

class snapshot_builder {
public:
    using clock = std::chrono::system_clock;

    snapshot_builder(const api_context& ctx, snapshot_options o);

    /// The next snapshot at `now`, as one line of JSON, with its sequence number. One thread
    /// calls it (the dashboard's tick); `stream_clients` is reported in the status strip.
    std::string build(clock::time_point now, std::size_t stream_clients);
    std::uint64_t seq() const { return seq_; }

    /// {"interval_seconds", "points": [...]}, oldest first. Thread-safe.
    std::string history_json() const;
    /// Statements by total time over the window (`plugin` only, when not empty). Thread-safe.
    nlohmann::json statements_json(statement_window w, const std::string& plugin,
                                   clock::time_point now) const;

private:
    /// Cumulative figures at one instant, from which rates are taken.
    struct totals_at {
        clock::time_point at;
        std::map<std::string, std::array<std::uint64_t, 4>> plugins;  // calls, errors, execs, cpu
        std::map<std::int64_t, std::uint64_t> process_cpu_ns;         // by pid
        std::uint64_t drops = 0;
    };
    /// Per-statement cumulative figures at one instant (calls, errors, rows, slow, total_ns).
    using statement_totals = std::unordered_map<std::string, std::array<std::uint64_t, 5>>;
    struct statement_checkpoint {
        clock::time_point at;
        statement_totals totals;
    };

    /// What one tick reads from the agent, once.
    struct inputs {
        std::map<std::string, plugin_totals> plugins;
        std::vector<std::shared_ptr<producer>> processes;  // live, with a process sample
    };

    nlohmann::json plugins_json(const std::map<std::string, plugin_totals>& folded,
                                const totals_at& now, const totals_at& base,
                                nlohmann::json& point) const;
    nlohmann::json processes_json(const inputs& in, const totals_at& now, const totals_at& base,
                                  nlohmann::json& point) const;
    nlohmann::json alerts_json(std::size_t& firing, std::size_t& pending) const;
    totals_at take_totals(clock::time_point now, const inputs& in) const;
    /// Keeps `now` (it becomes recent_.back()) and returns the oldest totals within rate_span.
    const totals_at& rate_base(totals_at now);
    void keep_point(nlohmann::json point);
    void checkpoint_statements(clock::time_point now);
    statement_totals statement_now() const;

    const api_context& ctx_;
    snapshot_options o_;
    clock::time_point started_;
    std::uint64_t seq_ = 0;
    std::deque<totals_at> recent_;  // tick thread only: the last rate_span of totals

    mutable std::mutex history_mu_;
    std::deque<std::string> points_;  // guarded: serialised chart points, oldest first
    std::size_t max_points_;

    mutable std::mutex statements_mu_;
    // guarded: one checkpoint per 30 s over the last 5 min, one per 5 min over the last hour
    std::deque<statement_checkpoint> fine_, coarse_;
};

}  // namespace plugmon::agent::ui
