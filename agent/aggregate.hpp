// Aggregation: per-series counters and duration histograms, written by the drain thread only and
// read concurrently by the exporters (relaxed atomics; series are created under a mutex).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent {

/// A counter with one writer: load+store, no read-modify-write on the drain path.
class cell {
public:
    void add(std::uint64_t d) { v_.store(v_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
    void set(std::uint64_t x) { v_.store(x, std::memory_order_relaxed); }
    std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

/// Cumulative-bucket histogram over nanoseconds with upper bounds given in seconds.
class histogram {
public:
    explicit histogram(const std::vector<std::uint64_t>& bounds_ns);
    void observe(std::uint64_t ns);
    /// Count in bucket i (not cumulative); i == bounds size is the +Inf overflow bucket.
    std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }
    std::uint64_t sum_ns() const { return sum_ns_.get(); }
    std::size_t size() const { return n_; }

private:
    const std::vector<std::uint64_t>& bounds_;
    std::size_t n_;
    std::unique_ptr<cell[]> buckets_;
    cell sum_ns_;
};

struct query_series {
    std::string plugin, op, table, tenant;
    cell ok, error, rows;
    histogram duration;
};

struct execution_series {
    std::string plugin, tenant;
    cell ok, error, cpu_ns;
    histogram duration;
};

struct counter_series {
    std::string plugin, event;
    cell total;
};

struct pool_series {
    std::string plugin;
    cell in_use, idle, waiting;  // summed over the producers that reported this plugin
};

/// Bucket bounds of both histogram families, in seconds (for the exposition) and ns.
struct bucket_bounds {
    std::vector<double> query_s, execution_s;
    std::vector<std::uint64_t> query_ns, execution_ns;
    static bucket_bounds from_seconds(const std::vector<double>& query, const std::vector<double>& execution);
};

/// Every series the agent has seen. Lookups and creation happen on the drain thread; readers take
/// a consistent list of series under the same mutex and then read the cells without it.
class series_store {
public:
    explicit series_store(bucket_bounds bounds);

    query_series* query(const std::string& plugin, const std::string& op, const std::string& table,
                        const std::string& tenant);
    execution_series* execution(const std::string& plugin, const std::string& tenant);
    counter_series* counter(const std::string& plugin, const std::string& event);
    pool_series* pool(const std::string& plugin);

    struct view {
        std::vector<const query_series*> queries;
        std::vector<const execution_series*> executions;
        std::vector<const counter_series*> counters;
        std::vector<const pool_series*> pools;
    };
    view snapshot() const;
    const bucket_bounds& bounds() const { return bounds_; }
    std::size_t series_count() const;

private:
    template <class T>
    struct family {
        std::unordered_map<std::string, std::unique_ptr<T>> by_key;
        std::vector<const T*> list;
    };
    template <class T, class Make>
    T* get_or_create(family<T>& f, std::string key, Make&& make);

    bucket_bounds bounds_;
    mutable std::mutex mu_;
    family<query_series> queries_;
    family<execution_series> executions_;
    family<counter_series> counters_;
    family<pool_series> pools_;
};

}  // namespace plugmon::agent
