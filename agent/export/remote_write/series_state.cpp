// The cumulative series of one remote, rendered per window as remote-write time series.
#include "export/remote_write/series_state.hpp"

#include "aggregate/sketch.hpp"
#include "common/exposition.hpp"

#include <chrono>
#include <stdexcept>

namespace plugmon::agent::remote_write {

namespace {

/// One float series: labels (the prefix, then __name__ and `extra`), sorted, and one sample.
void add_float(std::vector<time_series>& out, const std::vector<label>& prefix,
               std::string_view name, std::vector<label> extra, double v, std::int64_t ts) {
    time_series s;
    s.labels = prefix;
    s.labels.push_back({"__name__", std::string(name)});
    for (auto& l : extra) s.labels.push_back(std::move(l));
    sort_labels(s.labels);
    s.samples.push_back({v, ts});
    out.push_back(std::move(s));
}

std::vector<label> with(const std::vector<label>& external,
                        std::initializer_list<std::pair<const char*, const std::string*>> own) {
    std::vector<label> out = external;
    for (const auto& [name, value] : own)
        if (!value->empty()) out.push_back({name, *value});  // an empty value means no label
    return out;
}

}  // namespace

series_state::series_state(series_options o) : opts_(std::move(o)) {
    for (const double b : opts_.query_buckets) {
        std::string t;
        exposition::append_double(t, b);
        le_.push_back(std::move(t));
    }
}

bool series_state::ended(std::uint64_t last_seen) const {
    return opts_.stale_after_windows != 0 && window_ - last_seen >= opts_.stale_after_windows;
}

void series_state::apply(const window_batch& w) {
    std::vector<dd_sketch> sketches;
    sketches.reserve(w.queries.size());
    for (const auto& r : w.queries) {
        std::string why;
        auto s = dd_sketch::try_decode(r.sketch, &why);
        if (!s)
            throw std::invalid_argument("query rollup " + r.plugin + "/" + r.op +
                                        ": sketch: " + why);
        sketches.push_back(std::move(*s));
    }
    ++window_;
    const auto end =
        w.bucket_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(w.length);
    timestamp_ms_ =
        std::chrono::duration_cast<std::chrono::milliseconds>(end.time_since_epoch()).count();
    for (std::size_t i = 0; i < w.queries.size(); ++i) {
        const auto& r = w.queries[i];
        auto [it, fresh] =
            queries_.try_emplace(query_key{r.plugin, r.op, r.table, r.tenant}, opts_.schema);
        query_state& s = it->second;
        s.ok += r.calls - std::min(r.errors, r.calls);
        s.error += r.errors;
        s.rows += r.rows;
        s.duration.add(sketches[i]);
        s.last_seen = window_;
    }
    for (const auto& r : w.executions) {
        execution_state& s = executions_[execution_key{r.plugin, r.tenant}];
        s.ok += r.calls - std::min(r.errors, r.calls);
        s.error += r.errors;
        s.cpu_ns += r.cpu_ns;
        s.last_seen = window_;
    }
}

void series_state::render_query(const query_key& k, const query_state& s, bool native, bool stale,
                                std::vector<time_series>& out) const {
    const auto prefix =
        with(opts_.external_labels,
             {{"plugin", &k[0]}, {"op", &k[1]}, {"table", &k[2]}, {"tenant", &k[3]}});
    const std::int64_t ts = timestamp_ms_;
    const auto v = [&](double x) { return stale ? stale_nan() : x; };
    add_float(out, prefix, "plugmon_queries_total", {{"status", "ok"}}, v(double(s.ok)), ts);
    if (s.error != 0)
        add_float(out, prefix, "plugmon_queries_total", {{"status", "error"}}, v(double(s.error)),
                  ts);
    add_float(out, prefix, "plugmon_query_rows_total", {}, v(double(s.rows)), ts);
    if (native) {
        if (stale) {
            add_float(out, prefix, "plugmon_query_duration_seconds", {}, stale_nan(), ts);
            return;
        }
        time_series h;
        h.labels = prefix;
        h.labels.push_back({"__name__", "plugmon_query_duration_seconds"});
        sort_labels(h.labels);
        h.histograms.push_back({s.duration.snapshot(), ts, 0});
        out.push_back(std::move(h));
        return;
    }
    const auto counts = s.duration.classic_counts(opts_.query_buckets);
    for (std::size_t i = 0; i < le_.size(); ++i)
        add_float(out, prefix, "plugmon_query_duration_seconds_bucket", {{"le", le_[i]}},
                  v(double(i < counts.size() ? counts[i] : s.duration.count())), ts);
    add_float(out, prefix, "plugmon_query_duration_seconds_bucket", {{"le", "+Inf"}},
              v(double(s.duration.count())), ts);
    add_float(out, prefix, "plugmon_query_duration_seconds_sum", {}, v(s.duration.sum()), ts);
    add_float(out, prefix, "plugmon_query_duration_seconds_count", {},
              v(double(s.duration.count())), ts);
}

void series_state::render_execution(const execution_key& k, const execution_state& s, bool stale,
                                    std::vector<time_series>& out) const {
    const auto prefix = with(opts_.external_labels, {{"plugin", &k[0]}, {"tenant", &k[1]}});
    const std::int64_t ts = timestamp_ms_;
    const auto v = [&](double x) { return stale ? stale_nan() : x; };
    add_float(out, prefix, "plugmon_executions_total", {{"status", "ok"}}, v(double(s.ok)), ts);
    if (s.error != 0)
        add_float(out, prefix, "plugmon_executions_total", {{"status", "error"}},
                  v(double(s.error)), ts);
    add_float(out, prefix, "plugmon_plugin_cpu_seconds_total", {}, v(double(s.cpu_ns) / 1e9), ts);
}

std::vector<time_series> series_state::render(bool native) const {
    std::vector<time_series> out;
    out.reserve(queries_.size() * (native ? 4 : le_.size() + 6) + executions_.size() * 3);
    for (const auto& [k, s] : queries_) render_query(k, s, native, ended(s.last_seen), out);
    for (const auto& [k, s] : executions_) render_execution(k, s, ended(s.last_seen), out);
    return out;
}

void series_state::finish() {
    for (auto it = queries_.begin(); it != queries_.end();)
        it = ended(it->second.last_seen) ? queries_.erase(it) : std::next(it);
    for (auto it = executions_.begin(); it != executions_.end();)
        it = ended(it->second.last_seen) ? executions_.erase(it) : std::next(it);
}

}  // namespace plugmon::agent::remote_write
