// Building the dashboard's snapshot: one fold of the series per tick, rates over a short span,
// the chart point kept for history, statement checkpoints for the 5 min and 1 h windows.
#include "web/ui/snapshot.hpp"

#include "aggregate/plugin_totals.hpp"
#include "alert/engine/engine.hpp"
#include "web/api/json.hpp"

#include <algorithm>
#include <functional>
#include <limits>

namespace plugmon::agent::ui {

namespace {

using api::seconds;
using api::unix_seconds;
using clock = snapshot_builder::clock;

constexpr auto fine_step = std::chrono::seconds{30};
constexpr auto fine_span = std::chrono::minutes{5};
constexpr auto coarse_step = std::chrono::minutes{5};
constexpr auto coarse_span = std::chrono::hours{1};
constexpr std::size_t max_statement_rows = 500;

double span_seconds(clock::time_point from, clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

/// (now - base) / dt, or 0 when no time has passed yet.
double rate(std::uint64_t now, std::uint64_t base, double dt) {
    return dt > 0 && now >= base ? double(now - base) / dt : 0.0;
}

/// Duration quantiles of the plugin's last closed window, in seconds; nulls before one closed.
void add_latency(nlohmann::json& p, const plugin_latency* l) {
    if (l == nullptr) return p.update(api::quantiles_json(0, 0, 0, 0, 0));
    const auto& w = l->window;
    p.update(api::quantiles_json(w.calls, w.p50_ns, w.p95_ns, w.p99_ns, w.max_ns));
}

/// A null for a figure the plugin does not report.
template <class T>
nlohmann::json or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

/// The producers shown: live, with at least one process sample.
std::vector<std::shared_ptr<producer>> shown_processes(const drain& d) {
    std::vector<std::shared_ptr<producer>> out;
    for (auto& p : d.producers())
        if (p->live() && p->sampled()) out.push_back(std::move(p));
    return out;
}

std::string statement_key(const statement_stats& s) {
    return s.plugin + '\x1f' + api::fingerprint_hex(s.fingerprint);
}

/// Keeps one checkpoint per `step`, and the newest one at least `span` old.
template <class Checkpoint>
void roll(std::deque<Checkpoint>& q, clock::time_point now, clock::duration step,
          clock::duration span, const std::function<Checkpoint()>& take) {
    if (q.empty() || now - q.back().at >= step) q.push_back(take());
    while (q.size() >= 2 && q[1].at <= now - span) q.pop_front();
}

}  // namespace

std::optional<statement_window> parse_statement_window(std::string_view s) {
    if (s == "5m") return statement_window::five_minutes;
    if (s == "1h") return statement_window::one_hour;
    if (s == "start") return statement_window::since_start;
    return std::nullopt;
}

snapshot_builder::snapshot_builder(const api_context& ctx, snapshot_options o)
    : ctx_(ctx), o_(std::move(o)), started_(clock::now()),
      max_points_(std::size_t(std::max<std::int64_t>(1, o_.history / o_.interval))) {}

snapshot_builder::totals_at snapshot_builder::take_totals(clock::time_point now,
                                                          const inputs& in) const {
    totals_at t;
    t.at = now;
    t.drops = ctx_.drainer.totals().full.get();
    for (const auto& [name, a] : in.plugins)
        t.plugins[name] = {a.ok + a.error, a.error, a.executions, a.cpu_ns};
    for (const auto& p : in.processes) t.process_cpu_ns[p->pid()] = p->resources().cpu_ns.get();
    return t;
}

const snapshot_builder::totals_at& snapshot_builder::rate_base(totals_at now) {
    const auto since = now.at - o_.rate_span;
    recent_.push_back(std::move(now));
    while (recent_.size() >= 2 && recent_[1].at <= since) recent_.pop_front();
    return recent_.front();
}

nlohmann::json snapshot_builder::plugins_json(const std::map<std::string, plugin_totals>& folded,
                                              const totals_at& now, const totals_at& base,
                                              nlohmann::json& point) const {
    const double dt = span_seconds(base.at, now.at);
    const auto latency = ctx_.store.latency();
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [name, a] : folded) {
        const auto& cur = now.plugins.at(name);
        const auto b = base.plugins.find(name);
        const std::array<std::uint64_t, 4> zero{};
        const auto& was = b != base.plugins.end() ? b->second : zero;
        const std::uint64_t calls = cur[0] - std::min(cur[0], was[0]);
        const std::uint64_t errors = cur[1] - std::min(cur[1], was[1]);
        nlohmann::json p = {
            {"plugin", name},
            {"calls_total", cur[0]},
            {"errors_total", cur[1]},
            {"calls_per_second", rate(cur[0], was[0], dt)},
            {"errors_per_second", rate(cur[1], was[1], dt)},
            {"error_ratio", calls ? nlohmann::json(double(errors) / double(calls)) : nullptr},
            {"executions_per_second", rate(cur[2], was[2], dt)},
            {"cpu_seconds_per_second", rate(cur[3], was[3], dt) / 1e9}};
        const auto l = latency.find(name);
        add_latency(p, l != latency.end() ? &l->second : nullptr);
        p["heap_bytes"] = or_null(a.heap_bytes());
        p["leak"] = a.memory && a.memory->leak.suspected.load(std::memory_order_relaxed);
        p["pool_utilization"] = or_null(a.pool_utilization());
        point["plugins"][name] = {{"calls_per_second", p["calls_per_second"]},
                                  {"errors_per_second", p["errors_per_second"]},
                                  {"p99_seconds", p["p99_seconds"]},
                                  {"pool_utilization", p["pool_utilization"]}};
        list.push_back(std::move(p));
    }
    return list;
}

nlohmann::json snapshot_builder::processes_json(const inputs& in, const totals_at& now,
                                                const totals_at& base,
                                                nlohmann::json& point) const {
    const double dt = span_seconds(base.at, now.at);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : in.processes) {
        const auto& r = p->resources();
        const auto was = base.process_cpu_ns.find(p->pid());
        const double cpu = was != base.process_cpu_ns.end()
                               ? rate(now.process_cpu_ns.at(p->pid()), was->second, dt) / 1e9
                               : 0.0;
        list.push_back({{"pid", p->pid()},
                        {"name", p->name()},
                        {"rss_bytes", r.rss_bytes.get()},
                        {"fds", r.open_fds.get()},
                        {"threads", r.threads.get()},
                        {"cpu_seconds_per_second", cpu}});
        point["processes"][std::to_string(p->pid()) + " " + p->name()] = r.rss_bytes.get();
    }
    return list;
}

nlohmann::json snapshot_builder::alerts_json(std::size_t& firing, std::size_t& pending) const {
    firing = pending = 0;
    if (ctx_.alerts == nullptr) return nlohmann::json::array();
    nlohmann::json list = std::move(ctx_.alerts->alerts_json("", "")["alerts"]);
    for (const auto& a : list) {
        const auto& state = a["state"];
        firing += state == "firing";
        pending += state == "pending";
    }
    return list;
}

std::string snapshot_builder::build(clock::time_point now, std::size_t stream_clients) {
    // Everything is read once per tick; the figures below are all taken from these.
    const inputs in{fold_by_plugin(ctx_.store.snapshot()), shown_processes(ctx_.drainer)};
    const totals_at& base = rate_base(take_totals(now, in));
    const totals_at& cur = recent_.back();  // deque: push_back keeps references valid

    nlohmann::json point = {{"time", unix_seconds(now)},
                            {"plugins", nlohmann::json::object()},
                            {"processes", nlohmann::json::object()}};
    nlohmann::json plugins = plugins_json(in.plugins, cur, base, point);
    nlohmann::json processes = processes_json(in, cur, base, point);
    std::size_t firing = 0, pending = 0;
    nlohmann::json alerts = alerts_json(firing, pending);
    const double dt = span_seconds(base.at, now);
    nlohmann::json j = {
        {"seq", ++seq_},
        {"time", unix_seconds(now)},
        {"interval_seconds", std::chrono::duration<double>(o_.interval).count()},
        {"agent",
         {{"version", ctx_.version},
          {"host", o_.host},
          {"ready", ctx_.drainer.running() && ctx_.in != nullptr},
          {"started", unix_seconds(started_)},
          {"read_only", o_.read_only},
          {"alerting", ctx_.alerts != nullptr},
          {"max_streams", o_.max_streams},
          {"window_seconds", std::chrono::duration<double>(o_.flush_window).count()}}},
        {"status",
         {{"store", ctx_.store_state ? ctx_.store_state() : std::string("disabled")},
          {"ring_drops_total", cur.drops},
          {"ring_drops_per_second", rate(cur.drops, base.drops, dt)},
          {"alerts_firing", firing},
          {"alerts_pending", pending},
          {"producers", processes.size()},
          {"series", ctx_.store.series_count()},
          {"stream_clients", stream_clients}}},
        {"plugins", std::move(plugins)},
        {"processes", std::move(processes)},
        {"alerts", std::move(alerts)},
        {"point", point}};
    keep_point(std::move(point));
    checkpoint_statements(now);
    return j.dump();
}

void snapshot_builder::keep_point(nlohmann::json point) {
    std::string text = point.dump();
    std::lock_guard<std::mutex> lock(history_mu_);
    points_.push_back(std::move(text));
    while (points_.size() > max_points_) points_.pop_front();
}

std::string snapshot_builder::history_json() const {
    std::string out = "{\"interval_seconds\":" +
                      nlohmann::json(std::chrono::duration<double>(o_.interval).count()).dump() +
                      ",\"points\":[";
    std::lock_guard<std::mutex> lock(history_mu_);
    for (std::size_t i = 0; i < points_.size(); ++i) {
        if (i) out += ',';
        out += points_[i];
    }
    out += "]}";
    return out;
}

snapshot_builder::statement_totals snapshot_builder::statement_now() const {
    statement_totals t;
    if (ctx_.statements == nullptr) return t;
    for (const auto& s : ctx_.statements->top(nullptr, std::numeric_limits<std::size_t>::max()))
        t[statement_key(*s)] = {s->calls.get(), s->errors.get(), s->rows.get(), s->slow.get(),
                                s->total_ns.get()};
    return t;
}

void snapshot_builder::checkpoint_statements(clock::time_point now) {
    const std::function<statement_checkpoint()> take = [&] {
        return statement_checkpoint{now, statement_now()};
    };
    std::lock_guard<std::mutex> lock(statements_mu_);
    roll(fine_, now, fine_step, fine_span, take);
    roll(coarse_, now, coarse_step, coarse_span, take);
}

nlohmann::json snapshot_builder::statements_json(statement_window w, const std::string& plugin,
                                                 clock::time_point now) const {
    statement_totals base;
    clock::time_point from = started_;
    if (w != statement_window::since_start) {
        std::lock_guard<std::mutex> lock(statements_mu_);
        // The newest checkpoint at least the window's span old; none yet: since start.
        const bool five = w == statement_window::five_minutes;
        const auto& q = five ? fine_ : coarse_;
        const clock::duration span = five ? clock::duration(fine_span) : coarse_span;
        if (!q.empty() && q.front().at <= now - span) {
            base = q.front().totals;
            from = q.front().at;
        }
    }
    struct row {
        std::shared_ptr<const statement_stats> s;
        std::array<std::uint64_t, 5> d;
    };
    std::vector<row> rows;
    if (ctx_.statements != nullptr) {
        const std::string* only = plugin.empty() ? nullptr : &plugin;
        for (auto& s : ctx_.statements->top(only, std::numeric_limits<std::size_t>::max())) {
            std::array<std::uint64_t, 5> d = {s->calls.get(), s->errors.get(), s->rows.get(),
                                              s->slow.get(), s->total_ns.get()};
            if (const auto b = base.find(statement_key(*s)); b != base.end())
                for (std::size_t i = 0; i < d.size(); ++i) d[i] -= std::min(d[i], b->second[i]);
            if (d[0] > 0) rows.push_back({std::move(s), d});
        }
    }
    std::sort(rows.begin(), rows.end(), [](const row& x, const row& y) { return x.d[4] > y.d[4]; });
    if (rows.size() > max_statement_rows) rows.resize(max_statement_rows);
    nlohmann::json list = nlohmann::json::array();
    for (const row& r : rows)
        list.push_back({{"plugin", r.s->plugin},
                        {"fingerprint", api::fingerprint_hex(r.s->fingerprint)},
                        {"statement", r.s->text},
                        {"calls", r.d[0]},
                        {"errors", r.d[1]},
                        {"rows", r.d[2]},
                        {"slow", r.d[3]},
                        {"total_seconds", seconds(r.d[4])},
                        {"mean_seconds", seconds(r.d[4]) / double(r.d[0])},
                        {"max_seconds", seconds(r.s->max_ns.get())}});
    static const char* const names[] = {"5m", "1h", "start"};
    return {{"window", names[static_cast<int>(w)]},
            {"seconds", span_seconds(from, now)},
            {"statements", std::move(list)}};
}

}  // namespace plugmon::agent::ui
