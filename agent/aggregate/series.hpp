// Aggregation: per-series counters, duration histograms and quantile sketches, written by the
// drain thread only and read concurrently by the exporters (relaxed atomics; series are created
// and expired under a mutex, and readers hold shared pointers, so expiry never frees a series a
// reader is looking at). Also: the series budget, flush windows and their rollups.
#pragma once

#include "aggregate/leak.hpp"
#include "aggregate/sketch.hpp"
#include "pipeline/window.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent {

/// A counter with one writer: load+store, no read-modify-write on the drain path.
class cell {
public:
    void add(std::uint64_t d) {
        v_.store(v_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
    void set(std::uint64_t x) { v_.store(x, std::memory_order_relaxed); }
    std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

/// Cumulative-bucket histogram over nanoseconds with upper bounds given in seconds.
class histogram {
public:
    /// `by_index`: the bucket of every dd_sketch index (see bucket_bounds), or empty.
    histogram(const std::vector<std::uint64_t>& bounds_ns,
              const std::vector<std::uint16_t>& by_index);
    void observe(std::uint64_t ns);
    /// The same, for a value whose dd_sketch index the caller already has: a table lookup and at
    /// most one comparison instead of a binary search over the bounds.
    void observe_at(std::uint32_t sketch_index, std::uint64_t ns) {
        const std::uint16_t e =
            by_index_.empty() ? std::uint16_t(bucket_search) : by_index_[sketch_index];
        if (e == bucket_search) return observe(ns);
        std::size_t b = e & bucket_mask;
        if (e & bucket_straddles) b += ns > bounds_[b];  // a bound lies inside this sketch bin
        buckets_[b].add(1);
        sum_ns_.add(ns);
    }
    static constexpr std::uint16_t bucket_mask = 0x3fff, bucket_straddles = 0x4000,
                                   bucket_search = 0xffff;
    /// Count in bucket i (not cumulative); i == bounds size is the +Inf overflow bucket.
    std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }
    std::uint64_t sum_ns() const { return sum_ns_.get(); }
    std::size_t size() const { return n_; }

private:
    const std::vector<std::uint64_t>& bounds_;
    const std::vector<std::uint16_t>& by_index_;
    std::size_t n_;
    std::unique_ptr<cell[]> buckets_;
    cell sum_ns_;
};

/// What every series has: whether it is where over-budget label sets fold, and its activity
/// (drain thread only) for expiry.
struct series_base {
    bool folded = false;             ///< an __overflow__ series that absorbs over-budget label sets
    bool active = false;             ///< had an event in the current window (drain thread)
    std::uint32_t idle_windows = 0;  ///< consecutive windows without events (drain thread)
};

struct query_series : series_base {
    query_series(std::string pl, std::string o, std::string t, std::string tn,
                 const std::vector<std::uint64_t>& bounds,
                 const std::vector<std::uint16_t>& by_index)
        : plugin(std::move(pl)), op(std::move(o)), table(std::move(t)), tenant(std::move(tn)),
          duration(bounds, by_index) {}
    std::string plugin, op, table, tenant;
    cell ok, error, rows;
    histogram duration;
    std::uint64_t slow_ns = ~0ull;  ///< a query at least this long is slow (set at creation)
    // drain thread only: the current flush window
    dd_sketch window;
    std::uint64_t window_errors = 0, window_rows = 0;

    /// One query (drain thread): totals, histogram, and the window. One sketch index serves both
    /// the window sketch and the histogram bucket.
    void record(std::uint64_t ns, bool failed, std::uint64_t row_count) {
        (failed ? error : ok).add(1);
        rows.add(row_count);
        const std::uint32_t bin = dd_sketch::index_of(ns);
        duration.observe_at(bin, ns);
        window.add_at(bin, ns);
        window_errors += failed;
        window_rows += row_count;
        active = true;
    }
};

struct execution_series : series_base {
    execution_series(std::string pl, std::string tn, const std::vector<std::uint64_t>& bounds,
                     const std::vector<std::uint16_t>& by_index)
        : plugin(std::move(pl)), tenant(std::move(tn)), duration(bounds, by_index) {}
    std::string plugin, tenant;
    cell ok, error, cpu_ns;
    histogram duration;
    // drain thread only: the current flush window
    std::uint64_t window_calls = 0, window_errors = 0, window_wall_ns = 0, window_cpu_ns = 0;

    /// One execution (drain thread): totals, histogram, and the window.
    void record(std::uint64_t wall_ns, std::uint64_t thread_cpu_ns, bool failed) {
        (failed ? error : ok).add(1);
        cpu_ns.add(thread_cpu_ns);
        duration.observe(wall_ns);
        ++window_calls;
        window_errors += failed;
        window_wall_ns += wall_ns;
        window_cpu_ns += thread_cpu_ns;
        active = true;
    }
};

struct counter_series : series_base {
    counter_series(std::string pl, std::string ev) : plugin(std::move(pl)), event(std::move(ev)) {}
    std::string plugin, event;
    cell total;
};

/// A leak detector fed by the drain thread, with its latest verdict readable by anyone.
struct leak_watch {
    leak_detector history{
        512};  // drain thread only; thinned beyond 512 points (evaluation is O(n))
    std::atomic<bool> suspected{false};
    std::atomic<double> slope{0}, r2{0};
    void observe(double t_seconds, double value, const leak_settings& s) {
        history.add(t_seconds, value);
        const leak_verdict v = history.evaluate(s);
        slope.store(v.slope_bytes_per_second, std::memory_order_relaxed);
        r2.store(v.r2, std::memory_order_relaxed);
        suspected.store(v.suspected, std::memory_order_relaxed);
    }
};

/// Heap bytes charged to a plugin by plugmon::alloc, summed over the producers that host it.
struct memory_series : series_base {
    explicit memory_series(std::string pl) : plugin(std::move(pl)) {}
    std::string plugin;
    cell allocated, freed;  ///< live = allocated - freed
    leak_watch leak;
};

struct pool_series : series_base {
    explicit pool_series(std::string pl) : plugin(std::move(pl)) {}
    std::string plugin;
    cell in_use, idle, waiting;  // summed over the producers that reported this plugin
};

/// Bucket bounds of both histogram families, in seconds (for the exposition) and ns.
struct bucket_bounds {
    std::vector<double> query_s, execution_s;
    std::vector<std::uint64_t> query_ns, execution_ns;
    /// For each dd_sketch index: the histogram bucket of the index's lower bound, with
    /// histogram::bucket_straddles when a bucket bound falls inside the sketch bin (or
    /// histogram::bucket_search when more than one does).
    std::vector<std::uint16_t> query_by_index, execution_by_index;
    static bucket_bounds from_seconds(const std::vector<double>& query,
                                      const std::vector<double>& execution);
};

/// calls, total_ns, min_ns, max_ns, the three percentiles and the encoded sketch of `r`, all
/// from the sketch of the window's durations.
void fill_durations(query_rollup& r, const dd_sketch& s);

/// Per-plugin latency figures: over the last completed window and since the agent started.
struct plugin_latency {
    struct window_figures {
        std::chrono::system_clock::time_point start;
        std::chrono::nanoseconds length{0};
        std::uint64_t calls = 0, errors = 0, total_ns = 0;
        std::uint64_t p50_ns = 0, p95_ns = 0, p99_ns = 0, max_ns = 0;
    } window;
    dd_sketch since_start;  ///< every completed window merged
};

/// Every series the agent has seen. Lookups and creation happen on the drain thread; readers take
/// a consistent list of series under the same mutex and then read the cells without it.
class series_registry {
public:
    struct limits {
        std::uint64_t total = 100000;      ///< live series of all families and plugins
        std::uint64_t per_plugin = 10000;  ///< live series of any one plugin
    };
    series_registry(bucket_bounds bounds, limits budget);
    explicit series_registry(bucket_bounds bounds) : series_registry(std::move(bounds), limits{}) {}
    /// The slow-query threshold of a plugin, in ns. Drain thread (or before it starts): applies
    /// to the query series that exist now and to those created afterwards.
    void set_slow_threshold(std::function<std::uint64_t(const std::string& plugin)> f);
    /// New series budgets (a reload). Drain thread: series beyond a lowered budget stay until
    /// they expire; label sets new from now on fold as the new budget says.
    void set_budget(limits budget);

    // Find or create (drain thread). Beyond the budget the label set folds into the plugin's
    // __overflow__ series (per-plugin budget) or the all-__overflow__ series (total budget);
    // the returned series then has folded == true.
    query_series* query(const std::string& plugin, const std::string& op, const std::string& table,
                        const std::string& tenant);
    execution_series* execution(const std::string& plugin, const std::string& tenant);
    counter_series* counter(const std::string& plugin, const std::string& event);
    pool_series* pool(const std::string& plugin);
    memory_series* memory(const std::string& plugin);

    struct view {
        std::vector<std::shared_ptr<const query_series>> queries;
        std::vector<std::shared_ptr<const execution_series>> executions;
        std::vector<std::shared_ptr<const counter_series>> counters;
        std::vector<std::shared_ptr<const pool_series>> pools;
        std::vector<std::shared_ptr<const memory_series>> memories;
    };
    view snapshot() const;
    const bucket_bounds& bounds() const { return bounds_; }
    std::size_t series_count() const;
    /// The budgets in force; from any thread.
    limits budget() const;
    /// Lookups whose label set was refused a series of its own, since start (the drain caches
    /// the answer per producer, so this is about one per producer and label set).
    std::uint64_t folded_label_sets() const { return folded_sets_.load(std::memory_order_relaxed); }
    std::uint64_t expired_series() const { return expired_.load(std::memory_order_relaxed); }

    /// Drain thread: closes the current window. Returns its rollups, updates the per-plugin
    /// latency figures, resets the window state, and forgets series idle for `expiry_windows`
    /// windows (0: never). `expired` tells how many were forgotten: callers must drop any raw
    /// pointers to series they cached.
    window_batch close_window(std::chrono::system_clock::time_point start,
                              std::chrono::nanoseconds length, std::uint32_t expiry_windows,
                              std::size_t& expired);

    /// Drain thread: feeds every plugin's live heap bytes to its leak detector.
    void observe_memory(double t_seconds, const leak_settings& s);

    /// Per-plugin latency figures (copied under a lock; for the API).
    std::map<std::string, plugin_latency> latency() const;
    /// One plugin's figures; false when the plugin has none.
    bool latency_of(const std::string& plugin, plugin_latency& out) const;

private:
    template <class T>
    struct family {
        std::unordered_map<std::string, std::shared_ptr<T>> by_key;
    };
    template <class T, class Make>
    T* get_or_create(family<T>& f, const std::string& plugin, std::string key,
                     std::string plugin_overflow_key, std::string total_overflow_key, Make&& make);
    template <class T>
    std::size_t expire(family<T>& f, std::uint32_t expiry_windows);

    bucket_bounds bounds_;
    limits budget_;
    std::function<std::uint64_t(const std::string&)> slow_ns_;
    mutable std::mutex mu_;
    family<query_series> queries_;
    family<execution_series> executions_;
    family<counter_series> counters_;
    family<pool_series> pools_;
    family<memory_series> memories_;
    std::size_t live_ = 0;                                       // guarded by mu_
    std::unordered_map<std::string, std::uint64_t> per_plugin_;  // guarded by mu_
    std::atomic<std::uint64_t> folded_sets_{0}, expired_{0};

    /// Lock order: latency_mu_ before mu_ (close_window holds the first while it takes the
    /// second); never the other way round.
    mutable std::mutex latency_mu_;
    std::map<std::string, plugin_latency> latency_;  // guarded by latency_mu_
};

}  // namespace plugmon::agent
