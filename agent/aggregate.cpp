// Series creation and histogram bucketing.
#include "aggregate.hpp"

#include <algorithm>
#include <cmath>

namespace plugmon::agent {

histogram::histogram(const std::vector<std::uint64_t>& bounds_ns)
    : bounds_(bounds_ns), n_(bounds_ns.size() + 1), buckets_(new cell[bounds_ns.size() + 1]) {}

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
    return b;
}

series_store::series_store(bucket_bounds bounds) : bounds_(std::move(bounds)) {}

namespace {
// Label values may hold any byte but NUL-free text, so '\0' cannot collide inside a key.
std::string key_of(std::initializer_list<const std::string*> parts) {
    std::string k;
    for (const std::string* p : parts) {
        k += *p;
        k.push_back('\0');
    }
    return k;
}
}  // namespace

template <class T, class Make>
T* series_store::get_or_create(family<T>& f, std::string key, Make&& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = f.by_key[std::move(key)];
    if (!slot) {
        slot.reset(make());
        f.list.push_back(slot.get());
    }
    return slot.get();
}

query_series* series_store::query(const std::string& plugin, const std::string& op,
                                  const std::string& table, const std::string& tenant) {
    return get_or_create(queries_, key_of({&plugin, &op, &table, &tenant}), [&] {
        return new query_series{plugin, op, table, tenant, {}, {}, {}, histogram(bounds_.query_ns)};
    });
}

execution_series* series_store::execution(const std::string& plugin, const std::string& tenant) {
    return get_or_create(executions_, key_of({&plugin, &tenant}), [&] {
        return new execution_series{plugin, tenant, {}, {}, {}, histogram(bounds_.execution_ns)};
    });
}

counter_series* series_store::counter(const std::string& plugin, const std::string& event) {
    return get_or_create(counters_, key_of({&plugin, &event}),
                         [&] { return new counter_series{plugin, event, {}}; });
}

pool_series* series_store::pool(const std::string& plugin) {
    return get_or_create(pools_, plugin, [&] { return new pool_series{plugin, {}, {}, {}}; });
}

series_store::view series_store::snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return view{queries_.list, executions_.list, counters_.list, pools_.list};
}

std::size_t series_store::series_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queries_.list.size() + executions_.list.size() + counters_.list.size() +
           pools_.list.size();
}

}  // namespace plugmon::agent
