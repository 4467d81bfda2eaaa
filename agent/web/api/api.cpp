// The HTTP routes. JSON bodies are built with nlohmann::json.
#include "web/api/api.hpp"

#include "export/prometheus/prometheus.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string_view>
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

nlohmann::json leak_json(const leak_watch& w) {
    return {{"suspected", w.suspected.load(std::memory_order_relaxed)},
            {"slope_bytes_per_second", w.slope.load(std::memory_order_relaxed)},
            {"r2", w.r2.load(std::memory_order_relaxed)}};
}

nlohmann::json resources_json(const producer& p) {
    const auto& r = p.resources();
    if (!r.sampled.load(std::memory_order_acquire)) return nullptr;
    return {{"rss_bytes", r.rss_bytes.get()},   {"cpu_seconds", double(r.cpu_ns.get()) / 1e9},
            {"open_fds", r.open_fds.get()},     {"threads", r.threads.get()},
            {"read_bytes", r.read_bytes.get()}, {"write_bytes", r.write_bytes.get()},
            {"leak", leak_json(r.leak)}};
}

nlohmann::json producers_json(const std::vector<std::shared_ptr<producer>>& producers) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : producers) {
        const auto& s = p->stats();
        list.push_back({
            {"id", p->id()},
            {"name", p->name()},
            {"resources", resources_json(*p)},
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
            {"attached_at_unix",
             std::chrono::duration_cast<std::chrono::seconds>(p->attached_at().time_since_epoch())
                 .count()},
        });
    }
    return list;
}

nlohmann::json totals_json(const drain& d) {
    const auto& t = d.totals();
    return {
        {"drained", t.drained.get()},
        {"dropped", {{"full", t.full.get()}, {"torn", t.torn.get()}, {"invalid", t.invalid.get()}}},
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
nlohmann::json quantiles_json(std::uint64_t count, std::uint64_t p50, std::uint64_t p95,
                              std::uint64_t p99, std::uint64_t max) {
    if (count == 0)
        return {{"p50_seconds", nullptr},
                {"p95_seconds", nullptr},
                {"p99_seconds", nullptr},
                {"max_seconds", nullptr}};
    return {{"p50_seconds", seconds(p50)},
            {"p95_seconds", seconds(p95)},
            {"p99_seconds", seconds(p99)},
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
    std::map<std::string, std::shared_ptr<const pool_series>> pools;
    for (const auto& ps : v.pools)
        if (!only || ps->plugin == *only) pools[ps->plugin] = ps;
    std::map<std::string, std::shared_ptr<const memory_series>> memory;
    for (const auto& m : v.memories)
        if (!only || m->plugin == *only) {
            memory[m->plugin] = m;
            by_plugin[m->plugin];  // a plugin seen only through its heap is still listed
        }
    const auto latency = store.latency();
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [name, a] : by_plugin) {
        const std::uint64_t calls = a.ok + a.error;
        // top tables: by total time, at most 10
        std::vector<std::pair<std::pair<std::string, std::string>, table_agg>> tables(
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
        nlohmann::json p = {{"plugin", name},
                            {"calls", calls},
                            {"errors", a.error},
                            {"error_ratio", calls ? double(a.error) / double(calls) : 0.0},
                            {"rows", a.rows},
                            {"query_seconds", seconds(a.sum_ns)},
                            {"executions", a.executions},
                            {"cpu_seconds", seconds(a.cpu_ns)},
                            {"tables", tj}};
        if (const auto m = memory.find(name); m != memory.end()) {
            const std::uint64_t al = m->second->allocated.get(), fr = m->second->freed.get();
            p["alloc_tracked"] = true;
            p["live_bytes"] = al >= fr ? al - fr : 0;
            p["allocated_bytes"] = al;
            p["freed_bytes"] = fr;
            p["leak"] = leak_json(m->second->leak);
        } else {
            p["alloc_tracked"] = false;
            p["live_bytes"] = nullptr;
            p["leak"] = nullptr;
        }
        if (const auto ps = pools.find(name); ps != pools.end()) {
            // last sample of each producer, summed: utilisation of the plugin's connections
            const std::uint64_t in_use = ps->second->in_use.get(), idle = ps->second->idle.get();
            p["pool"] = {
                {"in_use", in_use},
                {"idle", idle},
                {"waiting", ps->second->waiting.get()},
                {"utilization", in_use + idle ? double(in_use) / double(in_use + idle) : 0.0}};
        } else {
            p["pool"] = nullptr;
        }
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
            p["since_start"] = quantiles_json(ss.count(), ss.quantile(0.50), ss.quantile(0.95),
                                              ss.quantile(0.99), ss.max());
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

/// The value of `name` in a query string ("a=1&b=2"), percent-decoding %XX and '+'.
std::optional<std::string> query_param(const std::string& target, const std::string& name) {
    const auto q = target.find('?');
    if (q == std::string::npos) return std::nullopt;
    std::string_view rest(target);
    rest.remove_prefix(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const auto eq = item.find('=');
        if (item.substr(0, eq) != name) continue;
        std::string out;
        const std::string_view v =
            eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '+') {
                out.push_back(' ');
            } else if (v[i] == '%' && i + 2 < v.size() &&
                       std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                       std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
                out.push_back(char(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16)));
                i += 2;
            } else {
                out.push_back(v[i]);
            }
        }
        return out;
    }
    return std::nullopt;
}

/// True when an Accept-Encoding header lists gzip with a non-zero quality.
bool accepts_gzip(std::string_view header) {
    std::string lower(header);
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    std::string_view rest = lower;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        const auto semi = item.find(';');
        std::string_view coding = item.substr(0, semi);
        while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
        if (coding != "gzip") continue;
        if (semi == std::string_view::npos) return true;
        const auto q = item.find("q=", semi);
        return q == std::string_view::npos ||
               std::strtod(std::string(item.substr(q + 2)).c_str(), nullptr) > 0;
    }
    return false;
}

std::string hex64(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

http_response slow_queries(const api_context& ctx, const http_request& req) {
    if (ctx.statements == nullptr)
        return error_response(404, "slow queries are not kept by this agent");
    const auto plugin = query_param(req.target, "plugin");
    std::size_t limit = 100;
    if (const auto l = query_param(req.target, "limit")) {
        char* end = nullptr;
        const unsigned long v = std::strtoul(l->c_str(), &end, 10);
        if (l->empty() || *end != '\0' || v == 0 || v > 100000)
            return error_response(
                400, "limit: expected an integer from 1 to 100000, got \"" + *l + "\"");
        limit = v;
    }
    const std::string* only = plugin ? &*plugin : nullptr;
    nlohmann::json samples = nlohmann::json::array();
    for (const slow_sample& s : ctx.statements->recent(only, limit)) {
        nlohmann::json j = {{"time", unix_seconds(s.at)},
                            {"plugin", s.plugin},
                            {"op", s.op},
                            {"table", s.table},
                            {"tenant", s.tenant},
                            {"duration_seconds", seconds(s.duration_ns)},
                            {"rows", s.rows},
                            {"error", s.error},
                            {"pid", s.pid}};
        j["statement"] =
            s.statement.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.statement);
        j["fingerprint"] =
            s.statement.empty() ? nlohmann::json(nullptr) : nlohmann::json(hex64(s.fingerprint));
        samples.push_back(std::move(j));
    }
    nlohmann::json top = nlohmann::json::array();
    for (const auto& st : ctx.statements->top(only, ctx.top_statements)) {
        const std::uint64_t calls = st->calls.get();
        top.push_back({{"plugin", st->plugin},
                       {"fingerprint", hex64(st->fingerprint)},
                       {"statement", st->text},
                       {"calls", calls},
                       {"errors", st->errors.get()},
                       {"rows", st->rows.get()},
                       {"slow", st->slow.get()},
                       {"total_seconds", seconds(st->total_ns.get())},
                       {"mean_seconds", calls ? seconds(st->total_ns.get()) / double(calls) : 0.0},
                       {"max_seconds", seconds(st->max_ns.get())}});
    }
    return json_response(
        {{"slow_total", ctx.statements->slow_total()}, {"samples", samples}, {"top", top}});
}

}  // namespace

http_response handle_request(const api_context& ctx, const http_request& req) {
    std::string path = req.target.substr(0, req.target.find('?'));
    if (req.method != "GET" && req.method != "HEAD")
        return error_response(405, "method not allowed");
    if (path == "/metrics") {
        if (ctx.metrics == nullptr) return error_response(404, "no metrics");
        http_response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        if (accepts_gzip(req.accept_encoding)) {
            // Prometheus asks for gzip: rendered piece by piece into the compressor, so the agent
            // never holds the whole text (31 MiB at 10 k series)
            r.body = render_metrics_gzip(*ctx.metrics);
            r.headers.emplace_back("Content-Encoding", "gzip");
        } else {
            r.body = render_metrics(*ctx.metrics);
        }
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
    if (path == "/api/v1/slow-queries") return slow_queries(ctx, req);
    if (path == "/api/v1/store") {
        if (!ctx.store_json) return error_response(404, "no PostgreSQL store is configured");
        http_response r;
        r.content_type = "application/json";
        r.body = ctx.store_json();
        return r;
    }
    if (path == "/api/v1/plugins")
        return json_response({{"plugins", plugins_json(ctx.store, nullptr)}});
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
