// Writes the exposition directly into one string: no intermediate objects per series.
#include "prometheus.hpp"

#include <charconv>
#include <cstdio>

namespace plugmon::agent {

void append_label_value(std::string& out, const std::string& v) {
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

struct labels {
    std::string& out;
    bool first = true;
    labels& add(const char* k, const std::string& v) {
        out.push_back(first ? '{' : ',');
        first = false;
        out += k;
        out += "=\"";
        append_label_value(out, v);
        out.push_back('"');
        return *this;
    }
    void close() {
        if (!first) out.push_back('}');
    }
};

template <class Labels>
void histogram_lines(std::string& out, const char* name, const histogram& h,
                     const std::vector<double>& bounds_s, Labels&& put_labels) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        cumulative += h.bucket(i);
        out += name;
        out += "_bucket";
        labels l{out};
        put_labels(l);
        out.push_back(l.first ? '{' : ',');
        out += "le=\"";
        if (i + 1 == h.size())
            out += "+Inf";
        else
            append_double(out, bounds_s[i]);
        out += "\"} ";
        append_u64(out, cumulative);
        out.push_back('\n');
    }
    out += name;
    out += "_sum";
    {
        labels l{out};
        put_labels(l);
        l.close();
    }
    out.push_back(' ');
    append_seconds(out, h.sum_ns());
    out.push_back('\n');
    out += name;
    out += "_count";
    {
        labels l{out};
        put_labels(l);
        l.close();
    }
    out.push_back(' ');
    append_u64(out, cumulative);  // = the +Inf bucket, so the two always agree
    out.push_back('\n');
}

}  // namespace

std::string render_metrics(const series_store& store, const drain& d, const intake* in) {
    const series_store::view v = store.snapshot();
    const auto& b = store.bounds();
    std::string out;
    out.reserve(256 + v.queries.size() * (600 + 120 * b.query_s.size()));

    header(out, "plugmon_queries_total", "counter", "Queries recorded by plugins, by outcome.");
    for (const query_series* s : v.queries) {
        for (int err = 0; err < 2; ++err) {
            const std::uint64_t n = err ? s->error.get() : s->ok.get();
            if (n == 0 && err) continue;
            out += "plugmon_queries_total";
            labels l{out};
            l.add("plugin", s->plugin).add("op", s->op).add("table", s->table).add("tenant", s->tenant);
            l.add("status", std::string(err ? "error" : "ok"));
            l.close();
            out.push_back(' ');
            append_u64(out, n);
            out.push_back('\n');
        }
    }
    header(out, "plugmon_query_rows_total", "counter", "Rows returned or affected by queries.");
    for (const query_series* s : v.queries) {
        out += "plugmon_query_rows_total";
        labels l{out};
        l.add("plugin", s->plugin).add("op", s->op).add("table", s->table).add("tenant", s->tenant);
        l.close();
        out.push_back(' ');
        append_u64(out, s->rows.get());
        out.push_back('\n');
    }
    header(out, "plugmon_query_duration_seconds", "histogram", "Query duration.");
    for (const query_series* s : v.queries)
        histogram_lines(out, "plugmon_query_duration_seconds", s->duration, b.query_s, [&](labels& l) {
            l.add("plugin", s->plugin).add("op", s->op).add("table", s->table).add("tenant", s->tenant);
        });

    header(out, "plugmon_executions_total", "counter", "Plugin executions, by outcome.");
    for (const execution_series* s : v.executions) {
        for (int err = 0; err < 2; ++err) {
            const std::uint64_t n = err ? s->error.get() : s->ok.get();
            if (n == 0 && err) continue;
            out += "plugmon_executions_total";
            labels l{out};
            l.add("plugin", s->plugin).add("tenant", s->tenant).add("status", std::string(err ? "error" : "ok"));
            l.close();
            out.push_back(' ');
            append_u64(out, n);
            out.push_back('\n');
        }
    }
    header(out, "plugmon_execution_duration_seconds", "histogram", "Plugin execution wall time.");
    for (const execution_series* s : v.executions)
        histogram_lines(out, "plugmon_execution_duration_seconds", s->duration, b.execution_s,
                        [&](labels& l) { l.add("plugin", s->plugin).add("tenant", s->tenant); });
    header(out, "plugmon_plugin_cpu_seconds_total", "counter",
           "Thread CPU time spent inside plugin executions.");
    for (const execution_series* s : v.executions) {
        out += "plugmon_plugin_cpu_seconds_total";
        labels l{out};
        l.add("plugin", s->plugin).add("tenant", s->tenant);
        l.close();
        out.push_back(' ');
        append_seconds(out, s->cpu_ns.get());
        out.push_back('\n');
    }

    header(out, "plugmon_plugin_events_total", "counter", "Named plugin event counters.");
    for (const counter_series* s : v.counters) {
        out += "plugmon_plugin_events_total";
        labels l{out};
        l.add("plugin", s->plugin).add("event", s->event);
        l.close();
        out.push_back(' ');
        append_u64(out, s->total.get());
        out.push_back('\n');
    }
    header(out, "plugmon_pool_connections", "gauge",
           "Connection-pool connections by state, last sample of each producer, summed.");
    for (const pool_series* s : v.pools) {
        const std::pair<const char*, std::uint64_t> states[] = {
            {"in_use", s->in_use.get()}, {"idle", s->idle.get()}, {"waiting", s->waiting.get()}};
        for (const auto& [state, n] : states) {
            out += "plugmon_pool_connections";
            labels l{out};
            l.add("plugin", s->plugin).add("state", std::string(state));
            l.close();
            out.push_back(' ');
            append_u64(out, n);
            out.push_back('\n');
        }
    }

    const drain_totals& t = d.totals();
    header(out, "plugmon_ring_events_dropped_total", "counter",
           "Events recorded by probes that were not aggregated, by reason.");
    const std::pair<const char*, std::uint64_t> reasons[] = {{"full", t.full.get()},
                                                              {"torn", t.torn.get()},
                                                              {"invalid", t.invalid.get()},
                                                              {"series_overflow", t.series_overflow.get()}};
    for (const auto& [reason, n] : reasons) {
        out += "plugmon_ring_events_dropped_total{reason=\"";
        out += reason;
        out += "\"} ";
        append_u64(out, n);
        out.push_back('\n');
    }
    header(out, "plugmon_agent_events_drained_total", "counter",
           "Events read from producer segments and aggregated.");
    out += "plugmon_agent_events_drained_total ";
    append_u64(out, t.drained.get());
    out.push_back('\n');

    std::uint64_t attached = 0, quarantined = 0;
    for (const auto& p : d.producers()) {
        if (p->state() == producer_state::attached && !p->gone()) ++attached;
        if (p->state() == producer_state::quarantined) ++quarantined;
    }
    header(out, "plugmon_producers", "gauge", "Registered producer processes, by state.");
    out += "plugmon_producers{state=\"attached\"} ";
    append_u64(out, attached);
    out += "\nplugmon_producers{state=\"quarantined\"} ";
    append_u64(out, quarantined);
    out.push_back('\n');
    header(out, "plugmon_agent_producers_registered_total", "counter",
           "Producer registrations accepted (re-registrations included).");
    out += "plugmon_agent_producers_registered_total ";
    append_u64(out, t.producers_registered.get());
    out.push_back('\n');
    header(out, "plugmon_ring_used_ratio", "gauge", "Fill ratio of the fullest producer lane.");
    out += "plugmon_ring_used_ratio ";
    append_double(out, double(t.ring_used_ppm.load()) / 1e6);
    out.push_back('\n');
    header(out, "plugmon_ring_backlog_events", "gauge", "Events published but not yet drained.");
    out += "plugmon_ring_backlog_events ";
    append_u64(out, t.backlog.load());
    out.push_back('\n');

    if (in != nullptr) {
        const intake_totals& it = in->totals();
        header(out, "plugmon_agent_registrations_refused_total", "counter",
               "Producer registrations refused, by reason.");
        for (std::size_t r = 1; r < it.rejected.size(); ++r) {
            out += "plugmon_agent_registrations_refused_total{reason=\"segment_";
            out += to_string(reject_reason(r));
            out += "\"} ";
            append_u64(out, it.rejected[r].get());
            out.push_back('\n');
        }
        const std::pair<const char*, std::uint64_t> other[] = {
            {"protocol", it.refused_protocol.get()},
            {"limit", it.refused_limit.get()},
            {"duplicate", it.refused_duplicate.get()}};
        for (const auto& [reason, n] : other) {
            out += "plugmon_agent_registrations_refused_total{reason=\"";
            out += reason;
            out += "\"} ";
            append_u64(out, n);
            out.push_back('\n');
        }
    }
    header(out, "plugmon_agent_series", "gauge", "Series held in memory.");
    out += "plugmon_agent_series ";
    append_u64(out, store.series_count());
    out.push_back('\n');
    return out;
}

}  // namespace plugmon::agent
