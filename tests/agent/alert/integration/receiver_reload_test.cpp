// Receivers change on reload, end to end: a real plugmon-agent fed by plugmon-loadgen fires to a
// local webhook; POST /-/reload refuses a receiver whose secret file is missing (the running
// receivers stay), then swaps that receiver for a new one: the alert still firing reaches the new
// one, and the removed one hears nothing more, not even the resolve.
#include "agent/alert/notify/hook_server.hpp"
#include "support/harness.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace plugmon::test {
namespace {

using namespace std::chrono_literals;
using plugmon::agent::testing::hook_server;

constexpr const char* admin_token = "receivers-admin-secret-0123456789";

/// One webhook receiver and an error-ratio rule that notifies it.
std::string rules_toml(const std::string& name, const std::string& url,
                       const std::string& secret_file = "") {
    return "[[receiver]]\nname = \"" + name + "\"\ntype = \"webhook\"\nurl = \"" + url +
           "\"\ntimeout = \"2s\"\n" +
           (secret_file.empty() ? "" : "secret_file = \"" + secret_file + "\"\n") +
           "\n[[rule]]\nname = \"PluginErrorRatioHigh\"\nkind = \"error_ratio\"\n"
           "select = { plugin = \"billing*\" }\ngroup_by = [\"plugin\"]\nover = \"2s\"\n"
           "min_samples = 20\nreceivers = [\"" +
           name + "\"]\n  [rule.levels.warning]\n  above = 0.2\n  clear_below = 0.05\n";
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
}

/// The events of the messages `hook` received ("firing", "resolved", ...), in order.
std::vector<std::string> events(const hook_server& hook) {
    std::vector<std::string> out;
    for (const auto& r : hook.requests())
        out.push_back(nlohmann::json::parse(r.body)["plugmon"]["event"]);
    return out;
}

std::size_t count(const hook_server& hook, const std::string& event) {
    const auto all = events(hook);
    return std::size_t(std::count(all.begin(), all.end(), event));
}

std::unique_ptr<loadgen_run> load(const temp_dir& dir, const std::string& name,
                                  const std::string& rt, double ratio, int seconds) {
    return std::make_unique<loadgen_run>(
        dir, name, rt,
        std::vector<std::string>{"--processes", "1", "--threads", "1", "--plugins", "1",
                                 "--plugin-prefix", "billing", "--rate", "200", "--duration",
                                 std::to_string(seconds) + "s", "--error-ratio",
                                 std::to_string(ratio)});
}

}  // namespace

TEST(alert_reload, an_added_webhook_gets_the_next_firing_and_a_removed_one_hears_nothing_more) {
    temp_dir dir;
    const std::string rt = dir.path() + "/rt", rules = dir.path() + "/rules.toml";
    std::filesystem::create_directories(rt);
    hook_server old_hook, new_hook;
    write_file(rules, rules_toml("old", old_hook.url("/old")));
    write_file(dir.path() + "/agent.toml", "api_token = \"" + std::string(admin_token) +
                                               "\"\nflush_interval = \"1s\"\nalert_rules = \"" +
                                               rules + "\"\nalert_state_dir = \"" + dir.path() +
                                               "/alerts\"\n");
    const std::string log = dir.path() + "/agent.log";
    agent a(rt, log, {"--config", dir.path() + "/agent.toml"});

    auto errors = load(dir, "errors", rt, 0.4, 20);
    ASSERT_TRUE(wait_until([&] { return count(old_hook, "firing") == 1; }, 30s)) << read_file(log);

    // A receiver that cannot start refuses the whole reload: the running rules and receivers stay.
    write_file(rules, rules_toml("new", new_hook.url("/new"), dir.path() + "/missing.secret"));
    const auto refused = http_post(a.port(), "/-/reload", admin_token);
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->first, 500) << refused->second;
    EXPECT_NE(refused->second.find("rules.toml:1: "), std::string::npos) << refused->second;
    EXPECT_NE(refused->second.find("secret_file"), std::string::npos) << refused->second;
    EXPECT_NE(refused->second.find("missing.secret"), std::string::npos) << refused->second;
    EXPECT_EQ(a.scrape().sum("plugmon_config_last_reload_successful"), 0.0);

    // The same receiver, startable: "new" replaces "old" while the alert is firing.
    write_file(dir.path() + "/new.secret", "whsec_c2VjcmV0LWZvci10ZXN0cw==");
    write_file(rules, rules_toml("new", new_hook.url("/new"), dir.path() + "/new.secret"));
    const auto applied = http_post(a.port(), "/-/reload", admin_token);
    ASSERT_TRUE(applied.has_value());
    ASSERT_EQ(applied->first, 200) << applied->second;
    EXPECT_EQ(nlohmann::json::parse(applied->second)["restart_required"], nlohmann::json::array())
        << applied->second;
    EXPECT_EQ(a.scrape().sum("plugmon_config_last_reload_successful"), 1.0);
    const std::size_t old_seen = old_hook.requests().size();

    ASSERT_TRUE(wait_until([&] { return count(new_hook, "firing") == 1; }, 30s)) << read_file(log);
    EXPECT_TRUE(new_hook.requests().front().headers.count("webhook-signature") == 1);
    ASSERT_EQ(errors->finish(60s), 0) << errors->log();
    auto quiet = load(dir, "quiet", rt, 0.0, 5);
    ASSERT_EQ(quiet->finish(60s), 0) << quiet->log();
    ASSERT_TRUE(wait_until([&] { return count(new_hook, "resolved") == 1; }, 30s))
        << read_file(log);

    EXPECT_EQ(old_hook.requests().size(), old_seen) << "the removed receiver heard more";
    EXPECT_EQ(count(old_hook, "resolved"), 0u);
    const metrics m = a.scrape();
    EXPECT_EQ(m.sum("plugmon_notifications_total", {{"receiver", "new"}, {"event", "firing"}}),
              1.0);
    EXPECT_EQ(m.sum("plugmon_notifications_total", {{"receiver", "old"}}), 0.0)
        << "a removed receiver's series go";
    EXPECT_EQ(m.sum("plugmon_notifications_unrouted"), 0.0);
    const std::string text = read_file(log);
    EXPECT_NE(text.find("receivers added: new; changed: none; removed: old"), std::string::npos)
        << text;
    EXPECT_NE(text.find("receiver old was removed while 1 alerts it was told of were firing"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("next restart"), std::string::npos) << text;
    EXPECT_EQ(a.stop(), 0);
}

}  // namespace plugmon::test
