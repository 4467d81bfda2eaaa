// Writes the exposition directly into one string: no intermediate objects per series.
#include "prometheus.hpp"

#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <string_view>
#include <utility>

namespace plugmon::agent {

void append_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out.push_back(c);
        }
    }
}

namespace {

void append_u64(std::string& out, std::uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_double(std::string& out, double v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_seconds(std::string& out, std::uint64_t ns) {
    append_double(out, double(ns) / 1e9);
}

void header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    out += help;
    out += "\n# TYPE ";
    out += name;
    out.push_back(' ');
    out += type;
    out.push_back('\n');
}

using label_list = std::initializer_list<std::pair<const char*, std::string_view>>;

/// Writes `name{k="v",...,extra}`; `extra` is an already-escaped last label (e.g. le="0.5").
void series_name(std::string& out, std::string_view name, label_list labels, std::string_view extra = {}) {
    out += name;
    char sep = '{';
    for (const auto& [k, v] : labels) {
        out.push_back(sep);
        sep = ',';
        out += k;
        out += "=\"";
        append_label_value(out, v);
        out.push_back('"');
    }
    if (!extra.empty()) {
        out.push_back(sep);
        sep = ',';
        out += extra;
    }
    if (sep == ',') out.push_back('}');
    out.push_back(' ');
}

void sample(std::string& out, std::string_view name, label_list labels, std::uint64_t v) {
    series_name(out, name, labels);
    append_u64(out, v);
    out.push_back('\n');
}

void sample_seconds(std::string& out, std::string_view name, label_list labels, std::uint64_t ns) {
    series_name(out, name, labels);
    append_seconds(out, ns);
    out.push_back('\n');
}

void histogram_lines(std::string& out, const std::string& name, const histogram& h,
                     const std::vector<double>& bounds_s, label_list labels) {
    std::uint64_t cumulative = 0;
    std::string le;
    for (std::size_t i = 0; i < h.size(); ++i) {
        cumulative += h.bucket(i);
        le = "le=\"";
        if (i + 1 == h.size())
            le += "+Inf";
        else
            append_double(le, bounds_s[i]);
        le.push_back('"');
        series_name(out, name + "_bucket", labels, le);
        append_u64(out, cumulative);
        out.push_back('\n');
    }
    sample_seconds(out, name + "_sum", labels, h.sum_ns());
    sample(out, name + "_count", labels, cumulative);  // = the +Inf bucket: always in agreement
}

}  // namespace

std::string render_metrics(const series_store& store, const drain& d, const intake* in) {
    const series_store::view v = store.snapshot();
    const auto& b = store.bounds();
    std::string out;
    out.reserve(256 + v.queries.size() * (600 + 120 * b.query_s.size()));

    header(out, "plugmon_queries_total", "counter", "Queries recorded by plugins, by outcome.");
    for (const auto& s : v.queries) {
        sample(out, "plugmon_queries_total",
               {{"plugin", s->plugin}, {"op", s->op}, {"table", s->table}, {"tenant", s->tenant}, {"status", "ok"}},
               s->ok.get());
        if (const std::uint64_t e = s->error.get())
            sample(out, "plugmon_queries_total",
                   {{"plugin", s->plugin}, {"op", s->op}, {"table", s->table}, {"tenant", s->tenant}, {"status", "error"}},
                   e);
    }
    header(out, "plugmon_query_rows_total", "counter", "Rows returned or affected by queries.");
    for (const auto& s : v.queries)
        sample(out, "plugmon_query_rows_total",
               {{"plugin", s->plugin}, {"op", s->op}, {"table", s->table}, {"tenant", s->tenant}}, s->rows.get());
    header(out, "plugmon_query_duration_seconds", "histogram", "Query duration.");
    for (const auto& s : v.queries)
        histogram_lines(out, "plugmon_query_duration_seconds", s->duration, b.query_s,
                        {{"plugin", s->plugin}, {"op", s->op}, {"table", s->table}, {"tenant", s->tenant}});

    header(out, "plugmon_executions_total", "counter", "Plugin executions, by outcome.");
    for (const auto& s : v.executions) {
        sample(out, "plugmon_executions_total", {{"plugin", s->plugin}, {"tenant", s->tenant}, {"status", "ok"}},
               s->ok.get());
        if (const std::uint64_t e = s->error.get())
            sample(out, "plugmon_executions_total",
                   {{"plugin", s->plugin}, {"tenant", s->tenant}, {"status", "error"}}, e);
    }
    header(out, "plugmon_execution_duration_seconds", "histogram", "Plugin execution wall time.");
    for (const auto& s : v.executions)
        histogram_lines(out, "plugmon_execution_duration_seconds", s->duration, b.execution_s,
                        {{"plugin", s->plugin}, {"tenant", s->tenant}});
    header(out, "plugmon_plugin_cpu_seconds_total", "counter",
           "Thread CPU time spent inside plugin executions.");
    for (const auto& s : v.executions)
        sample_seconds(out, "plugmon_plugin_cpu_seconds_total", {{"plugin", s->plugin}, {"tenant", s->tenant}},
                       s->cpu_ns.get());

    header(out, "plugmon_plugin_events_total", "counter", "Named plugin event counters.");
    for (const auto& s : v.counters)
        sample(out, "plugmon_plugin_events_total", {{"plugin", s->plugin}, {"event", s->event}}, s->total.get());
    header(out, "plugmon_pool_connections", "gauge",
           "Connection-pool connections by state, last sample of each producer, summed.");
    for (const auto& s : v.pools) {
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "in_use"}}, s->in_use.get());
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "idle"}}, s->idle.get());
        sample(out, "plugmon_pool_connections", {{"plugin", s->plugin}, {"state", "waiting"}}, s->waiting.get());
    }

    const drain_totals& t = d.totals();
    header(out, "plugmon_ring_events_dropped_total", "counter",
           "Events recorded by probes that were not aggregated, by reason.");
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "full"}}, t.full.get());
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "torn"}}, t.torn.get());
    sample(out, "plugmon_ring_events_dropped_total", {{"reason", "invalid"}}, t.invalid.get());
    header(out, "plugmon_agent_events_folded_total", "counter",
           "Events aggregated under __overflow__ labels because the series budget was reached "
           "(counted as drained too: they are not lost, only their labels are).");
    sample(out, "plugmon_agent_events_folded_total", {}, t.folded.get());
    header(out, "plugmon_agent_series_budget", "gauge", "Series budget, total and per plugin.");
    sample(out, "plugmon_agent_series_budget", {{"scope", "total"}}, store.budget().total);
    sample(out, "plugmon_agent_series_budget", {{"scope", "per_plugin"}}, store.budget().per_plugin);
    header(out, "plugmon_agent_series_folded_total", "counter",
           "Label sets refused a series of their own by the budget and folded into __overflow__.");
    sample(out, "plugmon_agent_series_folded_total", {}, store.folded_label_sets());
    header(out, "plugmon_agent_series_expired_total", "counter",
           "Series forgotten after series_expiry_windows flush windows without events.");
    sample(out, "plugmon_agent_series_expired_total", {}, store.expired_series());
    header(out, "plugmon_agent_windows_total", "counter", "Flush windows closed.");
    sample(out, "plugmon_agent_windows_total", {}, t.windows.get());
    header(out, "plugmon_agent_events_drained_total", "counter",
           "Events read from producer segments and aggregated.");
    sample(out, "plugmon_agent_events_drained_total", {}, t.drained.get());

    std::uint64_t attached = 0, quarantined = 0;
    for (const auto& p : d.producers()) {
        if (p->state() == producer_state::attached && !p->gone()) ++attached;
        if (p->state() == producer_state::quarantined) ++quarantined;
    }
    header(out, "plugmon_producers", "gauge", "Registered producer processes, by state.");
    sample(out, "plugmon_producers", {{"state", "attached"}}, attached);
    sample(out, "plugmon_producers", {{"state", "quarantined"}}, quarantined);
    header(out, "plugmon_agent_producers_registered_total", "counter",
           "Producer registrations accepted (re-registrations included).");
    sample(out, "plugmon_agent_producers_registered_total", {}, t.producers_registered.get());
    header(out, "plugmon_ring_used_ratio", "gauge", "Fill ratio of the fullest producer lane.");
    out += "plugmon_ring_used_ratio ";
    append_double(out, double(t.ring_used_ppm.load()) / 1e6);
    out.push_back('\n');
    header(out, "plugmon_ring_backlog_events", "gauge", "Events published but not yet drained.");
    sample(out, "plugmon_ring_backlog_events", {}, t.backlog.load());

    if (in != nullptr) {
        const intake_totals& it = in->totals();
        header(out, "plugmon_agent_registrations_refused_total", "counter",
               "Producer registrations refused, by reason.");
        for (std::size_t r = 1; r < it.rejected.size(); ++r)
            sample(out, "plugmon_agent_registrations_refused_total",
                   {{"reason", std::string("segment_") + to_string(reject_reason(r))}}, it.rejected[r].get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "protocol"}}, it.refused_protocol.get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "limit"}}, it.refused_limit.get());
        sample(out, "plugmon_agent_registrations_refused_total", {{"reason", "duplicate"}}, it.refused_duplicate.get());
    }
    header(out, "plugmon_agent_series", "gauge", "Series held in memory.");
    sample(out, "plugmon_agent_series", {}, store.series_count());
    return out;
}

}  // namespace plugmon::agent
