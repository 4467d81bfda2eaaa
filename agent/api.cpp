// The HTTP routes. JSON bodies are built with nlohmann::json.
#include "api.hpp"

#include "prometheus.hpp"

#include <nlohmann/json.hpp>

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
                         {"invalid", t.invalid.get()},
                         {"series_overflow", t.series_overflow.get()}}},
            {"producers_registered", t.producers_registered.get()},
            {"producers_finished", t.producers_finished.get()},
            {"producers_quarantined", t.producers_quarantined.get()},
            {"backlog", t.backlog.load()},
            {"ring_used_ratio", double(t.ring_used_ppm.load()) / 1e6}};
}

nlohmann::json plugins_json(const series_store& store, const std::string* only) {
    struct agg {
        std::uint64_t ok = 0, error = 0, rows = 0, sum_ns = 0, executions = 0, cpu_ns = 0;
        std::map<std::string, std::uint64_t> table_ns;
    };
    std::map<std::string, agg> by_plugin;
    const auto v = store.snapshot();
    for (const query_series* s : v.queries) {
        if (only && s->plugin != *only) continue;
        agg& a = by_plugin[s->plugin];
        a.ok += s->ok.get();
        a.error += s->error.get();
        a.rows += s->rows.get();
        a.sum_ns += s->duration.sum_ns();
        a.table_ns[s->table] += s->duration.sum_ns();
    }
    for (const execution_series* s : v.executions) {
        if (only && s->plugin != *only) continue;
        agg& a = by_plugin[s->plugin];
        a.executions += s->ok.get() + s->error.get();
        a.cpu_ns += s->cpu_ns.get();
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, a] : by_plugin) {
        const std::uint64_t calls = a.ok + a.error;
        nlohmann::json tables = nlohmann::json::array();
        for (const auto& [t, ns] : a.table_ns) tables.push_back({{"table", t}, {"seconds", double(ns) / 1e9}});
        out.push_back({{"plugin", name},
                       {"calls", calls},
                       {"errors", a.error},
                       {"error_ratio", calls ? double(a.error) / double(calls) : 0.0},
                       {"rows", a.rows},
                       {"query_seconds", double(a.sum_ns) / 1e9},
                       {"executions", a.executions},
                       {"cpu_seconds", double(a.cpu_ns) / 1e9},
                       {"tables", tables}});
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
