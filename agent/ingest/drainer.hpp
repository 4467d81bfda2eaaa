// The drain: one thread that empties every registered producer's lanes into the series store,
// finishes producers whose socket closed (final drain, torn count, release), and keeps the
// agent-wide accounting: drained + dropped{full,torn,invalid} = what producers recorded.
#pragma once

#include "aggregate/series.hpp"
#include "aggregate/statements.hpp"
#include "ingest/producer.hpp"
#include "ingest/segment.hpp"
#include "pipeline/window_sink.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace plugmon::agent {

/// Agent-wide accounting, exported as plugmon_* self-metrics.
struct drain_totals {
    cell drained;              ///< valid events aggregated
    cell full, torn, invalid;  ///< dropped, by reason
    cell folded;   ///< drained events aggregated under __overflow__ labels (series budget)
    cell windows;  ///< flush windows closed
    cell slow;     ///< queries at or above their plugin's slow threshold
    cell
        resource_samples;  ///< process and heap samples from probes' helper threads (not in drained)
    cell
        slow_unstored;  ///< slow-query samples beyond max_slow_per_window (counted in slow, not stored)
    cell producers_registered, producers_finished, producers_quarantined;
    std::atomic<std::uint64_t> ring_used_ppm{0};  ///< fullest lane, parts per million
    std::atomic<std::uint64_t> backlog{0};
    std::atomic<std::uint64_t> passes{0};
    /// steady_clock nanoseconds of the drain's last completed pass (the clock read it takes after
    /// draining, stored once the pass is complete): its heartbeat (the systemd watchdog pings only
    /// while it is recent). Written by the drain thread, read anywhere.
    std::atomic<std::int64_t> last_pass_ns{0};
    std::chrono::steady_clock::time_point last_pass() const {
        return std::chrono::steady_clock::time_point(
            std::chrono::nanoseconds(last_pass_ns.load(std::memory_order_relaxed)));
    }
};

class drain {
public:
    struct options {
        std::chrono::nanoseconds idle_sleep{std::chrono::milliseconds(1)};
        double ns_per_tick = 1.0;
        /// Length of a rollup window; windows start at multiples of it in wall-clock time.
        std::chrono::nanoseconds flush_interval{std::chrono::seconds(10)};
        /// Series idle for this many windows are forgotten (0: never).
        std::uint32_t expiry_windows = 30;
        /// Where each closed window goes, shared with every registered sink (nullptr: windows
        /// are closed for the live figures but handed to nobody).
        window_fanout* windows = nullptr;
        /// Where statements and slow queries go (nullptr: not kept).
        statement_book* statements = nullptr;
        /// Leak detection over process RSS and per-plugin live heap bytes (sampled once a second).
        leak_settings leak{std::chrono::minutes(10), 1u << 20, 0.8};
    };
    /// What a reload may change while the drain runs.
    struct live_settings {
        series_registry::limits budget;
        std::uint32_t expiry_windows = 30;
        std::function<std::uint64_t(const std::string& plugin)> slow_ns;  ///< threshold in ns
    };
    drain(series_registry& store, options opt);
    ~drain();

    /// From any thread: `s` takes effect when the drain next closes a window, so the window
    /// after it is the first one counted under the new settings (before start(): at once).
    void reconfigure(live_settings s);

    void start();
    /// Drains everything once more, then stops the thread. Waits at most `timeout`; false when
    /// the final pass did not finish in time (the thread is still running then).
    bool stop(std::chrono::nanoseconds timeout);
    /// Called on the I/O thread after a successful attach.
    void add(std::shared_ptr<producer> p);
    /// Producers currently registered (for the API).
    std::vector<std::shared_ptr<producer>> producers() const;
    /// The most recently finished producers, newest last (at most `finished_kept`).
    std::vector<std::shared_ptr<producer>> finished() const;
    static constexpr std::size_t finished_kept = 256;
    /// Slow-query samples a window hands to the store at most.
    static constexpr std::size_t max_slow_per_window = 10000;
    const drain_totals& totals() const { return totals_; }
    /// The drain's own families (plugmon_ring_*, plugmon_agent_events_*, plugmon_producers, ...),
    /// appended to `out`; from any thread (ingest_metrics.cpp).
    void render_metrics(std::string& out) const;
    bool running() const { return running_.load(); }

private:
    void loop();
    std::uint64_t drain_producer(producer& p, bool final);
    void finish(producer& p);
    // One event of each kind into its series (false: it names something never published).
    bool consume(producer& p, const event& e);
    bool consume_query(producer& p, const event& e);
    query_series* find_query(producer& p, const event& e, std::uint64_t key);
    bool consume_execution(producer& p, const event& e);
    bool consume_counter(producer& p, const event& e);
    bool consume_pool(producer& p, const event& e);
    bool consume_heap(producer& p, const event& e);
    bool consume_process_sample(producer& p, const event& e);
    void note_statement(producer& p, const event& e, const statement_text* st, bool slow);
    void quarantine(producer& p, const char* why);
    /// Counts as invalid the events `p` published that will never be read (quarantine).
    std::uint64_t count_abandoned(producer& p);
    void collect_drops(producer& p);
    void close_window(std::chrono::system_clock::time_point now,
                      const std::vector<std::shared_ptr<producer>>& list);
    void forget_series(const std::vector<std::shared_ptr<producer>>& list);
    void apply_live_settings();
    void observe_resources(const std::vector<std::shared_ptr<producer>>& list, double t_seconds);
    void add_resource_rows(window_batch& b, const std::vector<std::shared_ptr<producer>>& list);

    series_registry& store_;
    options opt_;
    drain_totals totals_;
    mutable std::mutex mu_;
    std::vector<std::shared_ptr<producer>> registry_;              // guarded by mu_
    std::uint64_t generation_ = 0;                                 // guarded by mu_
    std::deque<std::shared_ptr<producer>> finished_;               // guarded by mu_
    std::chrono::system_clock::time_point window_start_{};         // drain thread
    std::vector<slow_sample> window_slow_;                         // drain thread
    std::chrono::steady_clock::time_point last_resource_check_{};  // drain thread
    std::mutex settings_mu_;
    std::optional<live_settings> pending_;  // guarded by settings_mu_
    std::atomic<bool> stop_{false};
    std::atomic<bool> running_{false};
    std::thread thread_;
};

}  // namespace plugmon::agent
