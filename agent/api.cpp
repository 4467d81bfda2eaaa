// The HTTP routes. JSON bodies are built with nlohmann::json.
#include "api.hpp"

#include "prometheus.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>

#include <chrono>
#include <map>

namespace plugmon::agent {

namespace {

http_response json_response(const nlohmann::json& j, unsigned status = 200) {
    http_response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = j.dump(2);
    r.body.push_back('\n');
    return r;
}

http_response error_response(unsigned status, const std::string& message) {
    return json_response(nlohmann::json{{"error", message}}, status);
}

nlohmann::json producers_json(const std::vector<std::shared_ptr<producer>>& producers) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : producers) {
        const auto& s = p->stats();
        list.push_back({
            {"id", p->id()},
            {"pid", p->pid()},
            {"uid", p->uid()},
            {"state", p->gone() && p->state() == producer_state::attached ? "closing"
                                                                           : to_string(p->state())},
            {"drained", s.drained.get()},
            {"dropped_full", s.full.get()},
            {"torn", s.torn.get()},
            {"invalid", s.invalid.get()},
            {"resource_samples", s.resource_samples.get()},
            {"consumed_at_attach", s.consumed_at_attach},
            {"attached_at_unix", std::chrono::duration_cast<std::chrono::seconds>(
                                     p->attached_at().time_since_epoch())
                                     .count()},
        });
    }
    return list;
}

nlohmann::json totals_json(const drain& d) {
    const auto& t = d.totals();
    return {{"drained", t.drained.get()},
            {"dropped", {{"full", t.full.get()},
                         {"torn", t.torn.get()},
                         {"invalid", t.invalid.get()}}},
            {"folded", t.folded.get()},
            {"windows", t.windows.get()},
            {"producers_registered", t.producers_registered.get()},
            {"producers_finished", t.producers_finished.get()},
            {"producers_quarantined", t.producers_quarantined.get()},
            {"backlog", t.backlog.load()},
            {"ring_used_ratio", double(t.ring_used_ppm.load()) / 1e6}};
}

double seconds(std::uint64_t ns) { return double(ns) / 1e9; }

double unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

/// Quantiles of a sketch in seconds; nulls when it is empty (no figure beats a made-up zero).
nlohmann::json quantiles_json(std::uint64_t count, std::uint64_t p50, std::uint64_t p95, std::uint64_t p99,
                              std::uint64_t max) {
    if (count == 0)
        return {{"p50_seconds", nullptr}, {"p95_seconds", nullptr}, {"p99_seconds", nullptr}, {"max_seconds", nullptr}};
    return {{"p50_seconds", seconds(p50)}, {"p95_seconds", seconds(p95)}, {"p99_seconds", seconds(p99)},
            {"max_seconds", seconds(max)}};
}

nlohmann::json plugins_json(const series_store& store, const std::string* only) {
    struct table_agg {
        std::uint64_t calls = 0, ns = 0;
    };
    struct agg {
        std::uint64_t ok = 0, error = 0, rows = 0, sum_ns = 0, executions = 0, cpu_ns = 0;
        std::map<std::pair<std::string, std::string>, table_agg> tables;
    };
    std::map<std::string, agg> by_plugin;
    const auto v = store.snapshot();
    for (const auto& s : v.queries) {
        if (only && s->plugin != *only) continue;
        agg& a = by_plugin[s->plugin];
        a.ok += s->ok.get();
        a.error += s->error.get();
        a.rows += s->rows.get();
        a.sum_ns += s->duration.sum_ns();
        table_agg& t = a.tables[{s->op, s->table}];
        t.calls += s->ok.get() + s->error.get();
        t.ns += s->duration.sum_ns();
    }
    for (const auto& s : v.executions) {
        if (only && s->plugin != *only) continue;
        agg& a = by_plugin[s->plugin];
        a.executions += s->ok.get() + s->error.get();
        a.cpu_ns += s->cpu_ns.get();
    }
    const auto latency = store.latency();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, a] : by_plugin) {
        const std::uint64_t calls = a.ok + a.error;
        // top tables: by total time, at most 10
        std::vector<std::pair<std::pair<std::string, std::string>, table_agg>> tables(a.tables.begin(), a.tables.end());
        std::sort(tables.begin(), tables.end(), [](const auto& x, const auto& y) { return x.second.ns > y.second.ns; });
        if (tables.size() > 10) tables.resize(10);
        nlohmann::json tj = nlohmann::json::array();
        for (const auto& [key, t] : tables)
            tj.push_back({{"op", key.first}, {"table", key.second}, {"calls", t.calls}, {"seconds", seconds(t.ns)}});
        nlohmann::json p = {{"plugin", name},
                            {"calls", calls},
                            {"errors", a.error},
                            {"error_ratio", calls ? double(a.error) / double(calls) : 0.0},
                            {"rows", a.rows},
                            {"query_seconds", seconds(a.sum_ns)},
                            {"executions", a.executions},
                            {"cpu_seconds", seconds(a.cpu_ns)},
                            {"tables", tj}};
        const auto it = latency.find(name);
        if (it != latency.end()) {
            const plugin_latency& l = it->second;
            const auto& w = l.window;
            nlohmann::json wj = {{"start", unix_seconds(w.start)},
                                 {"seconds", std::chrono::duration<double>(w.length).count()},
                                 {"calls", w.calls},
                                 {"errors", w.errors},
                                 {"query_seconds", seconds(w.total_ns)}};
            wj.update(quantiles_json(w.calls, w.p50_ns, w.p95_ns, w.p99_ns, w.max_ns));
            p["window"] = wj;
            const dd_sketch& ss = l.since_start;
            p["since_start"] = quantiles_json(ss.count(), ss.quantile(0.50), ss.quantile(0.95), ss.quantile(0.99), ss.max());
            p["since_start"]["calls"] = ss.count();
        } else {
            p["window"] = nullptr;  // no window has closed since the plugin's first query
            p["since_start"] = quantiles_json(0, 0, 0, 0, 0);
            p["since_start"]["calls"] = 0;
        }
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace

http_response handle_request(const api_context& ctx, const http_request& req) {
    std::string path = req.target.substr(0, req.target.find('?'));
    if (req.method != "GET" && req.method != "HEAD") return error_response(405, "method not allowed");
    if (path == "/metrics") {
        http_response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = render_metrics(ctx.store, ctx.drainer, ctx.in);
        return r;
    }
    if (path == "/healthz") {
        http_response r;
        r.body = ctx.drainer.running() ? "ok\n" : "drain stopped\n";
        r.status = ctx.drainer.running() ? 200 : 503;
        return r;
    }
    if (path == "/readyz") {
        const bool ready = ctx.drainer.running() && ctx.in != nullptr;
        const std::string store = ctx.store_state ? ctx.store_state() : "disabled";
        std::size_t attached = 0;
        for (const auto& p : ctx.drainer.producers())
            if (p->state() == producer_state::attached && !p->gone()) ++attached;
        return json_response({{"ready", ready},
                              {"socket", ctx.in ? ctx.in->socket_path() : ""},
                              {"producers", attached},
                              {"store", store},
                              {"version", ctx.version}},
                             ready ? 200 : 503);
    }
    if (path == "/api/v1/producers")
        return json_response({{"producers", producers_json(ctx.drainer.producers())},
                              {"finished", producers_json(ctx.drainer.finished())},
                              {"totals", totals_json(ctx.drainer)}});
    if (path == "/api/v1/plugins") return json_response({{"plugins", plugins_json(ctx.store, nullptr)}});
    const std::string prefix = "/api/v1/plugins/";
    if (path.rfind(prefix, 0) == 0 && path.size() > prefix.size()) {
        const std::string name = path.substr(prefix.size());
        auto list = plugins_json(ctx.store, &name);
        if (list.empty()) return error_response(404, "no plugin named \"" + name + "\"");
        return json_response(list[0]);
    }
    return error_response(404, "no such endpoint: " + path);
}

}  // namespace plugmon::agent
