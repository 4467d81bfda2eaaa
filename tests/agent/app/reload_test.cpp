// The reload protocol: every step prepared before any applies, a refusal changes nothing, and
// the report names the keys applied live and those waiting for a restart.
#include "app/reload.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace plugmon::agent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

/// A step that records what it was asked to do.
struct probe_step {
    std::vector<std::string> log;
    bool refuse = false;
    reload_step make(const std::string& name, std::vector<std::string> keys) {
        return {name, std::move(keys),
                [this, name](const config&) {
                    log.push_back("prepare " + name);
                    if (refuse) throw config_error(name, "is refused by the test");
                },
                [this, name](const config& c) {
                    log.push_back("apply " + name + " " + std::to_string(c.series_budget));
                }};
    }
};

double sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace

TEST(reloader, prepares_every_step_before_applying_any_and_reports_changed_keys) {
    config started;
    reloader r(started);
    probe_step a, b;
    r.add(a.make("series", {"series_budget", "slow_query_thresholds."}));
    r.add(b.make("log", {"log_level"}));
    config fresh = started;
    fresh.series_budget = 5;
    fresh.slow_query_thresholds.emplace_back("billing", std::chrono::milliseconds(20));
    fresh.max_producers = 7;
    fresh.listen = "127.0.0.1:9999";
    const reload_report rep = r.reload(fresh);
    EXPECT_FALSE(rep.error);
    EXPECT_THAT(a.log, ElementsAre("prepare series", "apply series 5"));
    EXPECT_THAT(b.log, ElementsAre("prepare log", "apply log 5"));
    EXPECT_THAT(rep.applied, ElementsAre("series_budget", "slow_query_thresholds.billing"));
    EXPECT_THAT(rep.restart_required, ElementsAre("listen", "max_producers"));

    // applied keys are reported once; a pending restart is reported until it happens
    const reload_report again = r.reload(fresh);
    EXPECT_TRUE(again.applied.empty());
    EXPECT_THAT(again.restart_required, ElementsAre("listen", "max_producers"));
    std::string m;
    r.render_metrics(m);
    EXPECT_EQ(sample(m, "plugmon_config_reloads_total{result=\"applied\"}"), 2.0) << m;
    EXPECT_EQ(sample(m, "plugmon_config_last_reload_successful"), 1.0) << m;
}

TEST(reloader, a_refused_step_applies_nothing_and_is_counted) {
    config started;
    reloader r(started);
    probe_step a, b;
    r.add(a.make("series", {"series_budget"}));
    r.add(b.make("alerts", {"alert_rules"}));
    b.refuse = true;
    config fresh = started;
    fresh.series_budget = 9;
    const reload_report rep = r.reload(fresh);
    ASSERT_TRUE(rep.error);
    EXPECT_THAT(*rep.error, HasSubstr("is refused by the test"));
    EXPECT_THAT(a.log, ElementsAre("prepare series")) << "prepared, never applied";
    EXPECT_THAT(b.log, ElementsAre("prepare alerts"));
    std::string m;
    r.render_metrics(m);
    EXPECT_EQ(sample(m, "plugmon_config_last_reload_successful"), 0.0) << m;
    EXPECT_EQ(sample(m, "plugmon_config_reloads_total{result=\"refused\"}"), 1.0) << m;

    // the refused change was never applied: once accepted, it is reported as applied
    b.refuse = false;
    const reload_report ok = r.reload(fresh);
    EXPECT_FALSE(ok.error);
    EXPECT_THAT(ok.applied, ElementsAre("series_budget"));
    m.clear();
    r.render_metrics(m);
    EXPECT_EQ(sample(m, "plugmon_config_last_reload_successful"), 1.0) << m;
}

TEST(reloader, a_file_that_does_not_parse_is_a_refusal) {
    reloader r(config{});
    const reload_report rep = r.refuse("series_budget: \"lots\" is not an integer");
    ASSERT_TRUE(rep.error);
    EXPECT_TRUE(rep.applied.empty());
    std::string m;
    r.render_metrics(m);
    EXPECT_EQ(sample(m, "plugmon_config_last_reload_successful"), 0.0) << m;
    EXPECT_GT(sample(m, "plugmon_config_last_reload_success_timestamp_seconds"), 1.7e9) << m;
}
