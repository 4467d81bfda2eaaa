// Series creation and histogram bucketing.
#include "aggregate/series.hpp"

#include <plugmon/layout.hpp>

#include <algorithm>
#include <cmath>

namespace plugmon::agent {

void fill_durations(query_rollup& r, const dd_sketch& s) {
    r.calls = s.count();
    r.total_ns = s.sum();
    r.min_ns = s.min();
    r.max_ns = s.max();
    r.p50_ns = s.quantile(0.50);
    r.p95_ns = s.quantile(0.95);
    r.p99_ns = s.quantile(0.99);
    r.sketch = s.encode();
}

histogram::histogram(const std::vector<std::uint64_t>& bounds_ns,
                     const std::vector<std::uint16_t>& by_index)
    : bounds_(bounds_ns), by_index_(by_index), n_(bounds_ns.size() + 1),
      buckets_(new cell[bounds_ns.size() + 1]) {}

namespace {
std::vector<std::uint16_t> buckets_by_index(const std::vector<std::uint64_t>& bounds) {
    std::vector<std::uint16_t> out(dd_sketch::index_limit);
    if (bounds.size() > histogram::bucket_mask) return {};
    for (std::uint32_t i = 0; i < dd_sketch::index_limit; ++i) {
        const std::uint64_t lo = dd_sketch::lower_bound(i), hi = dd_sketch::upper_bound(i);
        // bucket of lo: the number of bounds below it; then the bounds in [lo, hi)
        const auto first = std::lower_bound(bounds.begin(), bounds.end(), lo);
        const auto inside = std::lower_bound(first, bounds.end(), hi) - first;
        const auto b = std::uint16_t(first - bounds.begin());
        out[i] = inside == 0   ? b
                 : inside == 1 ? std::uint16_t(b | histogram::bucket_straddles)
                               : histogram::bucket_search;
    }
    return out;
}

// Label values may hold any byte but NUL-free text, so '\0' cannot collide inside a key.
std::string key_of(std::initializer_list<const std::string*> parts) {
    std::string k;
    for (const std::string* p : parts) {
        k += *p;
        k.push_back('\0');
    }
    return k;
}
const std::string overflow = layout::overflow_label;
enum fold_kind { fold_none = 0, fold_plugin = 1, fold_total = 2 };

template <class T>
std::vector<std::shared_ptr<const T>> list_of(
    const std::unordered_map<std::string, std::shared_ptr<T>>& m) {
    std::vector<std::shared_ptr<const T>> out;
    out.reserve(m.size());
    for (const auto& [key, s] : m) out.push_back(s);
    return out;
}
}  // namespace

void histogram::observe(std::uint64_t ns) {
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), ns);  // le: ns <= bound
    buckets_[std::size_t(it - bounds_.begin())].add(1);
    sum_ns_.add(ns);
}

bucket_bounds bucket_bounds::from_seconds(const std::vector<double>& query,
                                          const std::vector<double>& execution) {
    bucket_bounds b;
    b.query_s = query;
    b.execution_s = execution;
    auto to_ns = [](const std::vector<double>& s) {
        std::vector<std::uint64_t> ns;
        ns.reserve(s.size());
        for (double v : s) ns.push_back(std::uint64_t(std::llround(v * 1e9)));
        return ns;
    };
    b.query_ns = to_ns(query);
    b.execution_ns = to_ns(execution);
    b.query_by_index = buckets_by_index(b.query_ns);
    b.execution_by_index = buckets_by_index(b.execution_ns);
    return b;
}

series_registry::series_registry(bucket_bounds bounds, limits budget)
    : bounds_(std::move(bounds)), budget_(budget) {}

template <class T, class Make>
T* series_registry::get_or_create(family<T>& f, const std::string& plugin, std::string key,
                                  std::string plugin_overflow_key, std::string total_overflow_key,
                                  Make&& make) {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = f.by_key.find(key); it != f.by_key.end()) return it->second.get();
    // find, not operator[]: a flood of new plugin names must not grow per_plugin_ past the budget
    const auto pc = per_plugin_.find(plugin);
    int fold = fold_none;
    if (live_ >= budget_.total)
        fold = fold_total;
    else if (pc != per_plugin_.end() && pc->second >= budget_.per_plugin)
        fold = fold_plugin;
    if (fold != fold_none) {
        folded_sets_.fetch_add(1, std::memory_order_relaxed);
        key = fold == fold_plugin ? std::move(plugin_overflow_key) : std::move(total_overflow_key);
        if (auto it = f.by_key.find(key); it != f.by_key.end()) return it->second.get();
        // The overflow series themselves are created beyond the budget: at most one per plugin
        // and family, plus one per family for the total budget.
    }
    std::shared_ptr<T> series(make(fold));
    series->folded = fold != fold_none;
    T* raw = series.get();
    f.by_key.emplace(std::move(key), std::move(series));
    ++live_;
    ++per_plugin_[fold == fold_total ? overflow : plugin];
    return raw;
}

query_series* series_registry::query(const std::string& plugin, const std::string& op,
                                     const std::string& table, const std::string& tenant) {
    query_series* s = get_or_create(
        queries_, plugin, key_of({&plugin, &op, &table, &tenant}),
        key_of({&plugin, &overflow, &overflow, &overflow}),
        key_of({&overflow, &overflow, &overflow, &overflow}), [&](int fold) {
            if (fold == fold_none)
                return new query_series(plugin, op, table, tenant, bounds_.query_ns,
                                        bounds_.query_by_index);
            return new query_series(fold == fold_plugin ? plugin : overflow, overflow, overflow,
                                    overflow, bounds_.query_ns, bounds_.query_by_index);
        });
    if (slow_ns_) s->slow_ns = slow_ns_(plugin);  // drain thread: the only writer
    return s;
}

execution_series* series_registry::execution(const std::string& plugin, const std::string& tenant) {
    return get_or_create(
        executions_, plugin, key_of({&plugin, &tenant}), key_of({&plugin, &overflow}),
        key_of({&overflow, &overflow}), [&](int fold) {
            if (fold == fold_none)
                return new execution_series(plugin, tenant, bounds_.execution_ns,
                                            bounds_.execution_by_index);
            return new execution_series(fold == fold_plugin ? plugin : overflow, overflow,
                                        bounds_.execution_ns, bounds_.execution_by_index);
        });
}

counter_series* series_registry::counter(const std::string& plugin, const std::string& event) {
    return get_or_create(counters_, plugin, key_of({&plugin, &event}), key_of({&plugin, &overflow}),
                         key_of({&overflow, &overflow}), [&](int fold) {
                             if (fold == fold_none) return new counter_series(plugin, event);
                             return new counter_series(fold == fold_plugin ? plugin : overflow,
                                                       overflow);
                         });
}

pool_series* series_registry::pool(const std::string& plugin) {
    return get_or_create(pools_, plugin, plugin, plugin, overflow, [&](int fold) {
        return new pool_series(fold == fold_total ? overflow : plugin);
    });
}

memory_series* series_registry::memory(const std::string& plugin) {
    return get_or_create(memories_, plugin, plugin, plugin, overflow, [&](int fold) {
        return new memory_series(fold == fold_total ? overflow : plugin);
    });
}

void series_registry::observe_memory(double t_seconds, const leak_settings& s) {
    // drain thread: the only one that creates or erases series, so no lock to iterate
    for (auto& [key, m] : memories_.by_key)
        m->leak.observe(t_seconds, double(m->allocated.get()) - double(m->freed.get()), s);
}

series_registry::view series_registry::snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return view{list_of(queries_.by_key), list_of(executions_.by_key), list_of(counters_.by_key),
                list_of(pools_.by_key), list_of(memories_.by_key)};
}

void series_registry::set_slow_threshold(std::function<std::uint64_t(const std::string&)> f) {
    slow_ns_ = std::move(f);
    if (!slow_ns_) return;
    // slow_ns is the drain thread's alone; the lock keeps the map still for the walk only
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, s] : queries_.by_key) s->slow_ns = slow_ns_(s->plugin);
}

void series_registry::set_budget(limits budget) {
    std::lock_guard<std::mutex> lock(mu_);
    budget_ = budget;
}

series_registry::limits series_registry::budget() const {
    std::lock_guard<std::mutex> lock(mu_);
    return budget_;
}

std::size_t series_registry::series_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_;
}

template <class T>
std::size_t series_registry::expire(family<T>& f, std::uint32_t expiry_windows) {
    std::size_t n = 0;
    for (auto it = f.by_key.begin(); it != f.by_key.end();) {
        T& s = *it->second;
        if (s.active) {
            s.active = false;
            s.idle_windows = 0;
        } else if (expiry_windows != 0 && ++s.idle_windows >= expiry_windows) {
            const auto pc = per_plugin_.find(s.plugin);
            if (pc != per_plugin_.end() && --pc->second == 0) per_plugin_.erase(pc);
            --live_;
            ++n;
            it = f.by_key.erase(it);  // readers that hold it keep it alive until they finish
            continue;
        }
        ++it;
    }
    return n;
}

window_batch series_registry::close_window(std::chrono::system_clock::time_point start,
                                           std::chrono::nanoseconds length,
                                           std::uint32_t expiry_windows, std::size_t& expired) {
    window_batch b;
    b.bucket_start = start;
    b.length = length;
    struct plugin_window {
        dd_sketch sketch;
        std::uint64_t errors = 0;
    };
    std::map<std::string, plugin_window> per_plugin;
    // Only this (the drain) thread creates, expires or writes window state, so iterating without
    // mu_ is safe; mu_ is taken below only to erase, which readers must not see half-done.
    for (auto& [key, s] : queries_.by_key) {
        if (s->window.empty()) continue;
        query_rollup r;
        r.plugin = s->plugin;
        r.op = s->op;
        r.table = s->table;
        r.tenant = s->tenant;
        fill_durations(r, s->window);
        r.errors = s->window_errors;
        r.rows = s->window_rows;
        plugin_window& pw = per_plugin[s->plugin];
        pw.sketch.merge(s->window);
        pw.errors += s->window_errors;
        s->window.clear();
        s->window_errors = s->window_rows = 0;
        b.queries.push_back(std::move(r));
    }
    for (auto& [key, s] : executions_.by_key) {
        if (s->window_calls == 0) continue;
        b.executions.push_back({s->plugin, s->tenant, s->window_calls, s->window_errors,
                                s->window_wall_ns, s->window_cpu_ns});
        s->window_calls = s->window_errors = s->window_wall_ns = s->window_cpu_ns = 0;
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        expired = expire(queries_, expiry_windows) + expire(executions_, expiry_windows) +
                  expire(counters_, expiry_windows) + expire(pools_, expiry_windows) +
                  expire(memories_, expiry_windows);
        // inside the lock: whoever reads series_count() and then expired_series() sees both
        expired_.fetch_add(expired, std::memory_order_relaxed);
    }
    // Lock order: latency_mu_, then mu_ (taken inside the loop below to see whether a plugin
    // still has series). Nothing takes latency_mu_ while holding mu_, so the two cannot deadlock.
    std::lock_guard<std::mutex> lock(latency_mu_);
    for (auto it = latency_.begin(); it != latency_.end();) {
        if (per_plugin.count(it->first) == 0) {
            bool live = false;
            {
                std::lock_guard<std::mutex> series_lock(mu_);
                live = per_plugin_.count(it->first) != 0;
            }
            if (!live) {  // every series of the plugin expired: forget it
                it = latency_.erase(it);
                continue;
            }
            it->second.window = {start, length, 0, 0, 0, 0, 0, 0, 0};
        }
        ++it;
    }
    for (auto& [plugin, pw] : per_plugin) {
        plugin_latency& l = latency_[plugin];
        l.window = {start,
                    length,
                    pw.sketch.count(),
                    pw.errors,
                    pw.sketch.sum(),
                    pw.sketch.quantile(0.50),
                    pw.sketch.quantile(0.95),
                    pw.sketch.quantile(0.99),
                    pw.sketch.max()};
        l.since_start.merge(pw.sketch);
    }
    return b;
}

std::map<std::string, plugin_latency> series_registry::latency() const {
    std::lock_guard<std::mutex> lock(latency_mu_);
    return latency_;
}

bool series_registry::latency_of(const std::string& plugin, plugin_latency& out) const {
    std::lock_guard<std::mutex> lock(latency_mu_);
    const auto it = latency_.find(plugin);
    if (it == latency_.end()) return false;
    out = it->second;
    return true;
}

}  // namespace plugmon::agent
