// The alert engine's evaluation cost per flush window: N rules over P plugins' series, with the
// windows of a 5 min `over` in history. Prints the median CPU time per window and what share of
// one core that is at a 10 s window (the goal: at most 5 %).
//
//   alert_bench [rules=1000] [plugins=1000] [windows=20] [--distinct-views]
//
// By default rules differ in kind and thresholds but share selectors, as rule sets do (one
// pass over the windows per kind then serves all of them); --distinct-views gives every rule a
// selector of its own (no sharing: the worst case).
#include "aggregate/sketch.hpp"
#include "alert/engine/engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <time.h>

namespace {

using namespace plugmon::agent;
using namespace plugmon::agent::alert;
using namespace std::chrono_literals;

class counting_sink final : public notification_sink {
public:
    void submit(std::vector<notification> batch) override { sent += batch.size(); }
    std::size_t sent = 0;
};

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

rule make_rule(int i, bool distinct) {
    static const rule_kind kinds[] = {rule_kind::error_ratio, rule_kind::latency_quantile,
                                      rule_kind::slow_rate, rule_kind::cpu_rate,
                                      rule_kind::pool_utilization};
    rule r;
    r.name = "Rule" + std::to_string(i);
    r.kind = kinds[i % 5];
    r.select = {{"plugin", distinct ? "*" + std::string(std::size_t(i / 5 + 1), '*') : "*"}};
    r.group_by = {"plugin"};
    r.over = 5min;
    r.receivers = {"hook"};
    const double scale = 1.0 + double(i % 50) / 100.0;
    double warn = 0.05;
    if (r.kind == rule_kind::latency_quantile) warn = 0.25;
    if (r.kind == rule_kind::slow_rate) warn = 1.0;
    if (r.kind == rule_kind::cpu_rate) warn = 0.5;
    if (r.kind == rule_kind::pool_utilization) warn = 0.9;
    r.levels[int(severity::warning)] = level_spec{warn * scale, {}, warn * scale * 0.8, {}};
    r.min_samples = r.kind == rule_kind::cpu_rate || r.kind == rule_kind::pool_utilization ? 0 : 50;
    return r;
}

/// One 10 s window: per plugin two query series with sketches, an execution series, a pool;
/// every 100th plugin misbehaves (errors, slow queries) so that some alerts fire.
window_batch make_window(time_point start, int plugins, std::mt19937_64& rng) {
    window_batch w;
    w.bucket_start = start;
    w.length = 10s;
    std::lognormal_distribution<double> ms(std::log(2e6), 1.0);
    for (int p = 0; p < plugins; ++p) {
        const std::string name = "plugin-" + std::to_string(p);
        const bool bad = p % 100 == 0;
        for (const char* op : {"select", "insert"}) {
            query_rollup q;
            q.plugin = name;
            q.op = op;
            q.table = "orders";
            q.calls = 200;
            q.errors = bad ? 40 : 1;
            dd_sketch s;
            for (int k = 0; k < 200; ++k) s.add(std::uint64_t(ms(rng) * (bad ? 200 : 1)));
            q.sketch = s.encode();
            w.queries.push_back(std::move(q));
        }
        w.executions.push_back(
            {name, "", 100, 0, 1'000'000'000, bad ? 9'000'000'000ull : 10'000'000});
        w.pools.push_back({name, bad ? 10u : 2u, bad ? 0u : 8u, 0});
        if (bad)
            for (int k = 0; k < 20; ++k)
                w.slow.push_back(
                    {start, name, "select", "orders", "", "", 0, 3'000'000'000, 1, false, 1});
    }
    return w;
}

}  // namespace

int main(int argc, char** argv) {
    int rules = 1000, plugins = 1000, windows = 20;
    bool distinct = false;
    int pos = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--distinct-views") == 0) {
            distinct = true;
            continue;
        }
        const int v = std::atoi(argv[i]);
        if (pos == 0) rules = v;
        if (pos == 1) plugins = v;
        if (pos == 2) windows = v;
        ++pos;
    }
    rule_set set;
    for (int i = 0; i < rules; ++i) set.rules.push_back(make_rule(i, distinct));
    receiver_spec hook;
    hook.name = "hook";
    set.receivers.push_back(hook);
    auto sink = std::make_shared<counting_sink>();
    engine_options o;
    o.host = "bench";
    engine e(std::move(set), sink, o);
    std::mt19937_64 rng(7);
    time_point t = time_point(std::chrono::seconds(1'790'000'000));
    // Prebuilt windows, so that only evaluation is timed.
    const int warmup = 30;  // fills the 5 min `over`
    std::vector<window_ptr> ws;
    for (int i = 0; i < warmup + windows; ++i, t += 10s)
        ws.push_back(std::make_shared<const window_batch>(make_window(t, plugins, rng)));
    std::vector<double> cpu, wall;
    for (int i = 0; i < warmup + windows; ++i) {
        const double c0 = thread_cpu_seconds();
        const auto w0 = std::chrono::steady_clock::now();
        e.consume(ws[std::size_t(i)]);
        const double c = thread_cpu_seconds() - c0;
        const double w =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
        if (i >= warmup) {
            cpu.push_back(c);
            wall.push_back(w);
        }
    }
    std::sort(cpu.begin(), cpu.end());
    std::sort(wall.begin(), wall.end());
    const double median = cpu[cpu.size() / 2];
    std::printf(
        "rules=%d plugins=%d views=%s windows=%d: per window CPU median %.1f ms (min %.1f, max "
        "%.1f), wall median %.1f ms; %.2f %% of one core at a 10 s window; %zu alerts, %zu "
        "notifications\n",
        rules, plugins, distinct ? "distinct" : "shared", windows, median * 1e3, cpu.front() * 1e3,
        cpu.back() * 1e3, wall[wall.size() / 2] * 1e3, median / 10.0 * 100.0, e.size(), sink->sent);
    return 0;
}
