// Parity with Prometheus: the cases of tests/agent/alert/parity/cases.json, which promtool checks
// against the generated Prometheus rules, fed to the engine window by window; the same alerts
// must be firing at the same evaluation times.
#include "alert/engine/engine.hpp"
#include "common/duration.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace plugmon::agent::alert {
namespace {

using namespace std::chrono_literals;

nlohmann::json cases() {
    std::ifstream in(std::string(PLUGMON_SOURCE_DIR) + "/tests/agent/alert/parity/cases.json");
    return nlohmann::json::parse(in);
}

nanoseconds duration_of(const nlohmann::json& j, const char* key) {
    const auto d = parse_duration(j.value(key, "0s"));
    if (!d) throw std::runtime_error(std::string("bad duration in ") + key);
    return *d;
}

rule rule_of(const nlohmann::json& j) {
    rule r;
    r.name = j.at("name");
    r.kind = *rule_kind_from(j.at("kind").get<std::string>());
    r.group_by = j.at("group_by").get<std::vector<std::string>>();
    r.over = duration_of(j, "over");
    r.for_ = duration_of(j, "for");
    r.keep_firing_for = duration_of(j, "keep_firing_for");
    r.min_samples = j.value("min_samples", 0);
    for (const auto& [name, spec] : j.at("levels").items()) {
        level_spec l;
        if (spec.contains("above")) l.above = spec["above"].get<double>();
        if (spec.contains("below")) l.below = spec["below"].get<double>();
        if (spec.contains("clear_below")) l.clear_below = spec["clear_below"].get<double>();
        if (spec.contains("clear_above")) l.clear_above = spec["clear_above"].get<double>();
        r.levels[int(*severity_from(name))] = l;
    }
    return r;
}

using firing_set = std::set<std::pair<std::string, std::string>>;  // plugin, severity

firing_set firing(const engine& e) {
    firing_set out;
    const nlohmann::json all = e.alerts_json("firing", "");  // alive through the loop
    for (const auto& a : all["alerts"])
        out.insert({a["labels"]["plugin"].get<std::string>(), a["severity"].get<std::string>()});
    return out;
}

TEST(alert_parity, the_engine_fires_what_promtool_expects_of_the_prometheus_rules) {
    const auto all = cases();
    const auto window = std::chrono::seconds(all.at("window_seconds").get<int>());
    ASSERT_FALSE(all.at("cases").empty());
    for (const auto& c : all.at("cases")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        rule_set set;
        set.rules.push_back(rule_of(c.at("rule")));
        const time_point zero = time_point(std::chrono::seconds(1'790'000'000));
        engine_options o;
        o.clock = [] { return time_point(std::chrono::seconds(1'790'000'000)); };
        engine e(std::move(set), nullptr, o);
        std::map<int, firing_set> expected;
        for (const auto& x : c.at("expect")) {
            firing_set f;
            for (const auto& a : x.at("firing"))
                f.insert({a.at("plugin").get<std::string>(), a.at("severity").get<std::string>()});
            expected[x.at("at").get<int>()] = f;
        }
        int checked = 0;
        const auto& windows = c.at("windows");
        for (std::size_t i = 0; i < windows.size(); ++i) {
            window_batch w;
            w.bucket_start = zero + window * std::int64_t(i);
            w.length = window;
            for (const auto& [plugin, v] : windows[i].items()) {
                query_rollup q;
                q.plugin = plugin;
                q.calls = v[0];
                q.errors = v[1];
                w.queries.push_back(q);
            }
            e.consume(std::make_shared<const window_batch>(std::move(w)));
            const int at = int(window.count() * std::int64_t(i + 1));
            if (expected.count(at) == 0) continue;
            EXPECT_EQ(firing(e), expected[at]) << "at t = " << at << " s";
            ++checked;
        }
        EXPECT_EQ(checked, int(expected.size())) << "every expected time is a window's end";
    }
}

}  // namespace
}  // namespace plugmon::agent::alert
