// GET /api/v1/plugins and /api/v1/plugins/{name}: per-plugin calls, errors, top tables, memory,
// pool use and latency quantiles, folded from the series store.
#include "aggregate/plugin_totals.hpp"
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace plugmon::agent::api {

namespace {

/// The ten tables with the most query time.
nlohmann::json top_tables_json(const plugin_totals& a) {
    std::vector<std::pair<std::pair<std::string, std::string>, plugin_totals::table_totals>> tables(
        a.tables.begin(), a.tables.end());
    std::sort(tables.begin(), tables.end(),
              [](const auto& x, const auto& y) { return x.second.ns > y.second.ns; });
    if (tables.size() > 10) tables.resize(10);
    nlohmann::json tj = nlohmann::json::array();
    for (const auto& [key, t] : tables)
        tj.push_back({{"op", key.first},
                      {"table", key.second},
                      {"calls", t.calls},
                      {"seconds", seconds(t.ns)}});
    return tj;
}

void add_memory_and_pool(nlohmann::json& p, const plugin_totals& a) {
    if (a.memory) {
        p["alloc_tracked"] = true;
        p["live_bytes"] = *a.heap_bytes();
        p["allocated_bytes"] = a.memory->allocated.get();
        p["freed_bytes"] = a.memory->freed.get();
        p["leak"] = leak_json(a.memory->leak);
    } else {
        p["alloc_tracked"] = false;
        p["live_bytes"] = nullptr;
        p["leak"] = nullptr;
    }
    if (a.pool) {
        // last sample of each producer, summed: utilisation of the plugin's connections
        p["pool"] = {{"in_use", a.pool->in_use.get()},
                     {"idle", a.pool->idle.get()},
                     {"waiting", a.pool->waiting.get()},
                     {"utilization", a.pool_utilization().value_or(0.0)}};
    } else {
        p["pool"] = nullptr;
    }
}

void add_latency(nlohmann::json& p, const plugin_latency* l) {
    if (l == nullptr) {
        p["window"] = nullptr;  // no window has closed since the plugin's first query
        p["since_start"] = quantiles_json(0, 0, 0, 0, 0);
        p["since_start"]["calls"] = 0;
        return;
    }
    const auto& w = l->window;
    nlohmann::json wj = {{"start", unix_seconds(w.start)},
                         {"seconds", std::chrono::duration<double>(w.length).count()},
                         {"calls", w.calls},
                         {"errors", w.errors},
                         {"query_seconds", seconds(w.total_ns)}};
    wj.update(quantiles_json(w.calls, w.p50_ns, w.p95_ns, w.p99_ns, w.max_ns));
    p["window"] = wj;
    const dd_sketch& ss = l->since_start;
    p["since_start"] = quantiles_json(ss.count(), ss.quantile(0.50), ss.quantile(0.95),
                                      ss.quantile(0.99), ss.max());
    p["since_start"]["calls"] = ss.count();
}

nlohmann::json plugins_json(const series_registry& store, const std::string* only) {
    const auto by_plugin = fold_by_plugin(store.snapshot(), only);
    const auto latency = store.latency();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, a] : by_plugin) {
        const std::uint64_t calls = a.ok + a.error;
        nlohmann::json p = {{"plugin", name},
                            {"calls", calls},
                            {"errors", a.error},
                            {"error_ratio", calls ? double(a.error) / double(calls) : 0.0},
                            {"rows", a.rows},
                            {"query_seconds", seconds(a.sum_ns)},
                            {"executions", a.executions},
                            {"cpu_seconds", seconds(a.cpu_ns)},
                            {"tables", top_tables_json(a)}};
        add_memory_and_pool(p, a);
        const auto it = latency.find(name);
        add_latency(p, it != latency.end() ? &it->second : nullptr);
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace

void add_plugins_routes(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/plugins", "plugins", scope::read,
           [&ctx](const http_request&, const route_params&) {
               return json_response({{"plugins", plugins_json(ctx.store, nullptr)}});
           }});
    // {name...}: the rest of the path, as before the route table ("a/b" is one name).
    r.add({"GET", "/api/v1/plugins/{name...}", "plugin", scope::read,
           [&ctx](const http_request&, const route_params& params) {
               const std::string& name = params.at("name");
               auto list = plugins_json(ctx.store, &name);
               if (list.empty()) return error_response(404, "no plugin named \"" + name + "\"");
               return json_response(list[0]);
           }});
}

}  // namespace plugmon::agent::api
