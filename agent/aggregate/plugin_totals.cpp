// Folding the series registry's families by plugin.
#include "aggregate/plugin_totals.hpp"

namespace plugmon::agent {

std::map<std::string, plugin_totals> fold_by_plugin(const series_registry::view& v,
                                                    const std::string* only) {
    std::map<std::string, plugin_totals> by_plugin;
    for (const auto& s : v.queries) {
        if (only && s->plugin != *only) continue;
        plugin_totals& a = by_plugin[s->plugin];
        a.ok += s->ok.get();
        a.error += s->error.get();
        a.rows += s->rows.get();
        a.sum_ns += s->duration.sum_ns();
        plugin_totals::table_totals& t = a.tables[{s->op, s->table}];
        t.calls += s->ok.get() + s->error.get();
        t.ns += s->duration.sum_ns();
    }
    for (const auto& s : v.executions) {
        if (only && s->plugin != *only) continue;
        plugin_totals& a = by_plugin[s->plugin];
        a.executions += s->ok.get() + s->error.get();
        a.cpu_ns += s->cpu_ns.get();
    }
    std::map<std::string, std::shared_ptr<const pool_series>> pools;
    for (const auto& ps : v.pools)
        if (!only || ps->plugin == *only) pools[ps->plugin] = ps;
    for (const auto& m : v.memories)
        if (!only || m->plugin == *only) by_plugin[m->plugin].memory = m;
    for (auto& [name, a] : by_plugin)
        if (const auto ps = pools.find(name); ps != pools.end()) a.pool = ps->second;
    return by_plugin;
}

std::optional<std::uint64_t> plugin_totals::heap_bytes() const {
    if (!memory) return std::nullopt;
    const std::uint64_t al = memory->allocated.get(), fr = memory->freed.get();
    return al >= fr ? al - fr : 0;
}

std::optional<double> plugin_totals::pool_utilization() const {
    if (!pool) return std::nullopt;
    const std::uint64_t in_use = pool->in_use.get(), idle = pool->idle.get();
    if (in_use + idle == 0) return std::nullopt;
    return double(in_use) / double(in_use + idle);
}

}  // namespace plugmon::agent
