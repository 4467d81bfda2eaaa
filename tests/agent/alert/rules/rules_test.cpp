// Rules files: the contract example, strict keys with file:line, validation, globs, templates,
// check-rules and the shipped example.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "alert/rules/rules.hpp"

namespace plugmon::agent::alert {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* contract = R"([[receiver]]
name = "am"
type = "alertmanager"            # alertmanager | webhook | slack
url = "http://127.0.0.1:9093"    # Alertmanager's base URL: the agent POSTs /api/v2/alerts

[[receiver]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:8099/hook"
# secret_file = "/etc/plugmon/ops.secret"   # then the body is signed (Standard Webhooks)

[[rule]]
name = "PluginErrorRatioHigh"    # the alertname
kind = "error_ratio"
select = { plugin = "*" }        # a glob per label
group_by = ["plugin"]            # one alert per distinct value set
over = "5m"                      # the condition's window, merged from flush windows
min_samples = 100                # fewer calls: no data, which neither fires nor resolves
for = "2m"
keep_firing_for = "0s"
receivers = ["am", "ops"]
  [rule.levels.warning]
  above = 0.05
  clear_below = 0.02             # hysteresis
  [rule.levels.critical]
  above = 0.20
  [rule.labels]
  team = "db"
  [rule.annotations]
  summary = "plugin {{ labels.plugin }} fails {{ value | percent }} of its queries"
)";

/// The errors parse_rules reports for `text` (empty when it parses).
std::vector<std::string> errors_of(const std::string& text, const std::string& file = "r.toml") {
    try {
        parse_rules(text, file);
    } catch (const rules_error& e) {
        return e.errors();
    }
    return {};
}

/// True when exactly one error was reported and it contains `part`.
::testing::AssertionResult one_error(const std::string& text, const std::string& part) {
    const auto errors = errors_of(text);
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    if (errors.size() != 1)
        return ::testing::AssertionFailure() << errors.size() << " errors:\n" << all;
    if (errors[0].find(part) == std::string::npos)
        return ::testing::AssertionFailure() << "no \"" << part << "\" in:\n" << all;
    return ::testing::AssertionSuccess();
}

/// A valid error_ratio rule with `extra` appended to its table.
std::string rule_with(const std::string& extra, const std::string& levels = "") {
    return "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://a:9093\"\n"
           "[[rule]]\nname = \"R\"\nkind = \"error_ratio\"\nreceivers = [\"am\"]\n" +
           extra + "\n" +
           (levels.empty() ? std::string("[rule.levels.warning]\nabove = 0.1\n") : levels);
}

/// A temporary directory, removed at the end of the test.
struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/plugmon-rules-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { fs::remove_all(path); }
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name) << text;
        return (path / name).string();
    }
};

TEST(rules, contract_example_parses_to_the_model) {
    const rule_set s = parse_rules(contract, "alerts.toml");
    ASSERT_EQ(s.receivers.size(), 2u);
    EXPECT_EQ(s.receivers[0].name, "am");
    EXPECT_EQ(s.receivers[0].type, receiver_type::alertmanager);
    EXPECT_EQ(s.receivers[0].url, "http://127.0.0.1:9093");
    EXPECT_EQ(s.receivers[0].line, 1);
    EXPECT_EQ(s.receivers[1].type, receiver_type::webhook);
    EXPECT_EQ(s.receivers[1].timeout, 10s);
    ASSERT_EQ(s.rules.size(), 1u);
    const rule& r = s.rules[0];
    EXPECT_EQ(r.name, "PluginErrorRatioHigh");
    EXPECT_EQ(r.kind, rule_kind::error_ratio);
    EXPECT_EQ(r.select, (label_set{{"plugin", "*"}}));
    EXPECT_EQ(r.group_by, std::vector<std::string>{"plugin"});
    EXPECT_EQ(r.over, 5min);
    EXPECT_EQ(r.min_samples, 100u);
    EXPECT_EQ(r.for_, 2min);
    EXPECT_EQ(r.keep_firing_for, 0s);
    EXPECT_EQ(r.receivers, (std::vector<std::string>{"am", "ops"}));
    EXPECT_FALSE(r.levels[int(severity::info)]);
    ASSERT_TRUE(r.levels[int(severity::warning)]);
    EXPECT_DOUBLE_EQ(*r.levels[int(severity::warning)]->above, 0.05);
    EXPECT_DOUBLE_EQ(*r.levels[int(severity::warning)]->clear_below, 0.02);
    EXPECT_FALSE(r.levels[int(severity::warning)]->below);
    ASSERT_TRUE(r.levels[int(severity::critical)]);
    EXPECT_DOUBLE_EQ(*r.levels[int(severity::critical)]->above, 0.20);
    EXPECT_FALSE(r.levels[int(severity::critical)]->clear_below);
    EXPECT_EQ(r.labels, (label_set{{"team", "db"}}));
    EXPECT_EQ(r.annotations.at("summary"),
              "plugin {{ labels.plugin }} fails {{ value | percent }} of its queries");
    EXPECT_EQ(r.file, "alerts.toml");
    EXPECT_EQ(r.line, 12);
    EXPECT_EQ(r.on_no_data, no_data_policy::keep);
    EXPECT_EQ(r.repeat_interval[int(severity::critical)], 1h);
    EXPECT_EQ(s.files, std::vector<std::string>{"alerts.toml"});
    EXPECT_EQ(s.digest.size(), 64u);
}

TEST(rules, digest_follows_content_not_position) {
    const auto a = parse_rules(contract, "a.toml");
    const auto b = parse_rules(std::string("\n\n") + contract, "b.toml");
    EXPECT_EQ(a.digest, b.digest);
    std::string changed = contract;
    changed.replace(changed.find("above = 0.20"), 12, "above = 0.30");
    EXPECT_NE(parse_rules(changed, "a.toml").digest, a.digest);
}

TEST(rules, unknown_keys_name_file_line_and_key_at_every_depth) {
    std::string text = contract;
    text.replace(text.find("  clear_below = 0.02"), 20, "  abve = 0.02");
    text += "bogus = 1\n";  // inside [rule.annotations]: a string is required, so use the top
    text = "colour = \"red\"\n" + text;
    text.replace(text.find("url = \"http://127.0.0.1:8099/hook\""), 0, "retries = 3\n");
    text += "[defaults]\nfour = \"2m\"\n";
    text +=
        "[[escalation]]\nname = \"e\"\nwhen = 1\n[[escalation.level]]\nreceivers = [\"am\"]\n"
        "afterr = \"1m\"\n";
    const auto errors = errors_of(text, "x.toml");
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    EXPECT_NE(all.find("x.toml:1: key 'colour': unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find("x.toml:10: key 'receiver.retries': unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find("x.toml:26: key 'rule.levels.warning.abve': unknown key (did you mean "
                       "'above'?)"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("key 'rule.annotations.bogus': expected a string"), std::string::npos)
        << all;
    EXPECT_NE(all.find("key 'defaults.four': unknown key (did you mean 'for'?)"), std::string::npos)
        << all;
    EXPECT_NE(all.find("key 'escalation.when': unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find("key 'escalation.level.afterr': unknown key"), std::string::npos) << all;
    EXPECT_EQ(errors.size(), 7u) << all;
}

TEST(rules, unknown_level_and_nested_keys) {
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warn]\nabove = 0.1\n"),
                          "key 'rule.levels.warn': unknown key"));
    EXPECT_TRUE(one_error(rule_with("notify_delay = { up = \"1s\", dwn = \"1m\" }"),
                          "key 'rule.notify_delay.dwn': unknown key"));
    EXPECT_TRUE(one_error(rule_with("repeat_interval = { fatal = \"1h\" }"),
                          "key 'rule.repeat_interval.fatal': unknown key"));
}

TEST(rules, wrong_types_and_bad_values) {
    EXPECT_TRUE(one_error(rule_with("for = 120"), "key 'rule.for': a bare number has no unit"));
    EXPECT_TRUE(one_error(rule_with("for = \"2 minutes\""), "is not a duration"));
    EXPECT_TRUE(one_error(rule_with("over = \"0s\""), "key 'rule.over': 0s is out of range"));
    EXPECT_TRUE(one_error(rule_with("min_samples = \"100\""), "expected an integer, got a string"));
    EXPECT_TRUE(one_error(rule_with("group_by = \"plugin\""), "expected an array of strings"));
    EXPECT_TRUE(one_error(rule_with("on_no_data = \"ignore\""), "is not one of keep, resolve"));
    EXPECT_TRUE(one_error(rule_with("flap_threshold = 1"), "key 'rule.flap_threshold'"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nabove = \"high\"\n"),
                          "\"high\" is not a ratio such as 0.05 or \"5%\""));
    EXPECT_TRUE(
        one_error(rule_with("", "[rule.levels.warning]\nabove = 1.5\n"), "is not a ratio in 0..1"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nabove = -0.1\n"), "negative"));
}

TEST(rules, kind_severity_receiver_type_and_name) {
    std::string bad_kind = rule_with("");
    bad_kind.replace(bad_kind.find("error_ratio"), 11, "error_rate");
    EXPECT_TRUE(one_error(bad_kind, "key 'rule.kind': \"error_rate\" is not a rule kind"));
    std::string bad_type = rule_with("");
    bad_type.replace(bad_type.find("alertmanager"), 12, "pagerduty");
    EXPECT_TRUE(one_error(bad_type, "key 'receiver.type': \"pagerduty\" is not one of"));
    std::string bad_name = rule_with("");
    bad_name.replace(bad_name.find("name = \"R\""), 10, "name = \"1-bad\"");
    EXPECT_TRUE(one_error(bad_name, "key 'rule.name': \"1-bad\" is not an alertname"));
    EXPECT_TRUE(one_error("[[rule]]\nname = \"W\"\nkind = \"watchdog\"\nseverity = \"fatal\"\n",
                          "key 'rule.severity': \"fatal\" is not one of info"));
    EXPECT_TRUE(one_error(rule_with("severity = \"info\""), "only a watchdog"));
}

TEST(rules, missing_required_fields) {
    EXPECT_TRUE(one_error("[[rule]]\nkind = \"watchdog\"\n", "r.toml:1: key 'rule.name': missing"));
    EXPECT_TRUE(one_error("[[rule]]\nname = \"X\"\n", "key 'rule.kind': missing"));
    EXPECT_TRUE(one_error("[[receiver]]\nname = \"a\"\ntype = \"webhook\"\n",
                          "key 'receiver.url': missing"));
    EXPECT_TRUE(one_error("[[escalation]]\nname = \"e\"\n", "key 'escalation.level': missing"));
    std::string no_levels = rule_with("", "");
    no_levels = no_levels.substr(0, no_levels.find("[rule.levels"));
    EXPECT_TRUE(one_error(no_levels, "key 'rule.levels': missing"));
}

TEST(rules, level_validation) {
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nabove = 0.1\nclear_below = 0.2\n"),
                          "clear_below': 0.2 is above the trigger above = 0.1"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nabove = 0.1\nbelow = 0.05\n"),
                          "key 'rule.levels.warning': has both above and below"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nclear_below = 0.1\n"),
                          "needs above or below"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nabove = 0.1\nclear_above = 0.2\n"),
                          "clear_above': goes with below"));
    EXPECT_TRUE(one_error(rule_with("", "[rule.levels.warning]\nbelow = 0.5\nclear_above = 0.4\n"),
                          "is below the trigger below = 0.5"));
    EXPECT_TRUE(one_error(rule_with("",
                                    "[rule.levels.warning]\nabove = 0.3\n"
                                    "[rule.levels.critical]\nabove = 0.2\n"),
                          "key 'rule.levels.critical': above = 0.2 is lower than level warning"));
    EXPECT_TRUE(one_error(rule_with("",
                                    "[rule.levels.warning]\nabove = 0.3\n"
                                    "[rule.levels.critical]\nbelow = 0.2\n"),
                          "triggers the other way"));
    const auto ok =
        parse_rules(rule_with("", "[rule.levels.warning]\nbelow = 0.5\nclear_above = 0.6\n"), "f");
    EXPECT_DOUBLE_EQ(*ok.rules[0].levels[int(severity::warning)]->clear_above, 0.6);
}

TEST(rules, quantile_and_min_samples_belong_to_their_kinds) {
    EXPECT_TRUE(one_error(rule_with("quantile = 0.9"), "only latency_quantile rules"));
    const std::string latency = "[[rule]]\nname = \"L\"\nkind = \"latency_quantile\"\n";
    EXPECT_TRUE(one_error(latency + "quantile = 1.0\n[rule.levels.warning]\nabove = 1\n",
                          "1 is not strictly between 0 and 1"));
    EXPECT_TRUE(one_error(latency + "quantile = 0\n[rule.levels.warning]\nabove = 1\n",
                          "not strictly between 0 and 1"));
    const auto s = parse_rules(latency +
                                   "quantile = 0.95\n[rule.levels.warning]\nabove = "
                                   "\"250ms\"\nclear_below = \"0.2s\"\n",
                               "f");
    EXPECT_DOUBLE_EQ(s.rules[0].quantile, 0.95);
    EXPECT_DOUBLE_EQ(*s.rules[0].levels[1]->above, 0.25);
    EXPECT_DOUBLE_EQ(*s.rules[0].levels[1]->clear_below, 0.2);
    EXPECT_TRUE(
        one_error("[[rule]]\nname = \"P\"\nkind = \"pool_waiting\"\nmin_samples = 5\n"
                  "[rule.levels.warning]\nabove = 1\n",
                  "kind pool_waiting has no call samples"));
}

TEST(rules, threshold_units_per_kind) {
    const auto one = [](const std::string& kind, const std::string& value) {
        const auto s = parse_rules("[[rule]]\nname = \"K\"\nkind = \"" + kind +
                                       "\"\n[rule.levels.warning]\nabove = " + value + "\n",
                                   "f");
        return *s.rules[0].levels[int(severity::warning)]->above;
    };
    EXPECT_DOUBLE_EQ(one("error_ratio", "\"5%\""), 0.05);
    EXPECT_DOUBLE_EQ(one("process_fds", "\"80%\""), 0.8);
    EXPECT_DOUBLE_EQ(one("heap_bytes", "\"512MiB\""), 512.0 * 1024 * 1024);
    EXPECT_DOUBLE_EQ(one("process_rss", "1024"), 1024);
    EXPECT_DOUBLE_EQ(one("heap_leak", "\"1MiB/h\""), 1048576.0 / 3600);
    EXPECT_DOUBLE_EQ(one("heap_leak", "\"100KiB/s\""), 102400);
    EXPECT_DOUBLE_EQ(one("slow_rate", "\"6/m\""), 0.1);
    EXPECT_DOUBLE_EQ(one("latency_quantile", "\"1.5s\""), 1.5);
    EXPECT_DOUBLE_EQ(one("store_down", "\"1m\""), 60);
    EXPECT_DOUBLE_EQ(one("ring_drops", "3"), 3);
    EXPECT_TRUE(
        one_error("[[rule]]\nname = \"K\"\nkind = \"cpu_rate\"\n[rule.levels.warning]\n"
                  "above = \"80%\"\n",
                  "is not a number of cores"));
}

TEST(rules, watchdog_and_store_down_defaults) {
    const auto s = parse_rules(
        "[[rule]]\nname = \"W\"\nkind = \"watchdog\"\n[[rule]]\nname = \"W2\"\nkind = "
        "\"watchdog\"\nseverity = \"critical\"\n[[rule]]\nname = \"S\"\nkind = \"store_down\"\n",
        "f");
    ASSERT_TRUE(s.rules[0].levels[int(severity::info)]);
    EXPECT_DOUBLE_EQ(*s.rules[0].levels[int(severity::info)]->above, 0);
    EXPECT_FALSE(s.rules[0].levels[int(severity::warning)]);
    ASSERT_TRUE(s.rules[1].levels[int(severity::critical)]);
    EXPECT_FALSE(s.rules[1].levels[int(severity::info)]);
    ASSERT_TRUE(s.rules[2].levels[int(severity::critical)]);
    EXPECT_DOUBLE_EQ(*s.rules[2].levels[int(severity::critical)]->above, 0);
    EXPECT_TRUE(
        one_error("[[rule]]\nname = \"W\"\nkind = \"watchdog\"\n[rule.levels.info]\n"
                  "above = 0\n",
                  "a watchdog always fires"));
}

TEST(rules, select_and_group_by_labels_follow_the_kind) {
    EXPECT_TRUE(one_error(rule_with("group_by = [\"pid\"]"),
                          "key 'rule.group_by': label \"pid\" is not one of kind error_ratio's "
                          "labels (plugin, op, table, tenant)"));
    EXPECT_TRUE(one_error(rule_with("select = { process = \"x*\" }"),
                          "key 'rule.select': label \"process\""));
    EXPECT_TRUE(one_error(rule_with("group_by = [\"plugin\", \"plugin\"]"), "listed twice"));
    EXPECT_EQ(labels_of(rule_kind::cpu_rate), (std::vector<std::string>{"plugin", "tenant"}));
    EXPECT_EQ(labels_of(rule_kind::ring_drops), (std::vector<std::string>{"process", "pid"}));
    EXPECT_TRUE(labels_of(rule_kind::watchdog).empty());
}

TEST(rules, rule_labels_are_checked) {
    EXPECT_TRUE(one_error(rule_with("labels = { severity = \"x\" }"), "is set by the agent"));
    EXPECT_TRUE(one_error(rule_with("labels = { \"a-b\" = \"x\" }"), "is not a label name"));
    EXPECT_TRUE(one_error(rule_with("group_by = [\"plugin\"]\nlabels = { plugin = \"x\" }"),
                          "also a group_by label"));
}

TEST(rules, escalation_limits_and_references) {
    const std::string am =
        "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://a\"\n";
    EXPECT_TRUE(one_error(am + "[[escalation]]\nname = \"e\"\nrepeat = 6\n[[escalation.level]]\n"
                               "receivers = [\"am\"]\n",
                          "key 'escalation.repeat': 6 is out of range (0..5)"));
    EXPECT_TRUE(one_error(am + "[[escalation]]\nname = \"e\"\n[[escalation.level]]\n"
                               "receivers = [\"pager\"]\n",
                          "r.toml:8: key 'escalation.level.receivers': unknown receiver "
                          "\"pager\""));
    EXPECT_TRUE(one_error(am + "[[escalation]]\nname = \"e\"\ncondition = \"unacked\"\n"
                               "[[escalation.level]]\nreceivers = [\"am\"]\n",
                          "is not one of unacknowledged, unresolved"));
    EXPECT_TRUE(one_error(rule_with("escalation = \"nobody\""),
                          "key 'rule.escalation': unknown escalation policy \"nobody\""));
    std::string unknown = rule_with("");
    unknown.replace(unknown.find("receivers = [\"am\"]"), 18, "receivers = [\"amm\"]");
    EXPECT_TRUE(one_error(unknown, "r.toml:8: key 'rule.receivers': unknown receiver \"amm\""));
    const auto s = parse_rules(am + "[[escalation]]\nname = \"e\"\ncondition = \"unresolved\"\n"
                                    "repeat = 5\n[[escalation.level]]\nreceivers = [\"am\"]\n"
                                    "[[escalation.level]]\nafter = \"15m\"\nreceivers = [\"am\"]\n"
                                    "min_severity = \"critical\"\n",
                               "f");
    ASSERT_EQ(s.escalations.size(), 1u);
    EXPECT_EQ(s.escalations[0].condition, escalation_condition::unresolved);
    EXPECT_EQ(s.escalations[0].repeat, 5);
    ASSERT_EQ(s.escalations[0].levels.size(), 2u);
    EXPECT_EQ(s.escalations[0].levels[1].after, 15min);
    EXPECT_EQ(s.escalations[0].levels[1].min_severity, severity::critical);
}

TEST(rules, receiver_options) {
    const auto s = parse_rules(
        "[[receiver]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"https://h/x\"\nsecret_file = "
        "\"/s\"\nbearer_token_file = \"/t\"\nheaders = { X-Team = \"db\" }\ntimeout = \"3s\"\n"
        "max_notifications_per_minute = 10\nmax_event_age = \"2h\"\n",
        "f");
    const auto& r = s.receivers.at(0);
    EXPECT_EQ(r.secret_file, "/s");
    EXPECT_EQ(r.bearer_token_file, "/t");
    EXPECT_EQ(r.headers, (label_set{{"X-Team", "db"}}));
    EXPECT_EQ(r.timeout, 3s);
    EXPECT_EQ(r.max_notifications_per_minute, 10);
    EXPECT_EQ(r.max_event_age, 2h);
    EXPECT_TRUE(one_error("[[receiver]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"ftp://x\"\n",
                          "is not an http:// or https:// URL"));
    EXPECT_TRUE(
        one_error("[[receiver]]\nname = \"a\"\ntype = \"webhook\"\nurl = \"http://x\"\n"
                  "resend_interval = \"1m\"\n",
                  "applies to alertmanager receivers only"));
}

TEST(rules, defaults_apply_to_rules_that_do_not_set_them) {
    const auto s = parse_rules(
        "[defaults]\nreceivers = [\"am\"]\nfor = \"3m\"\nmin_samples = 20\non_no_data = "
        "\"resolve\"\nrepeat_interval = { warning = \"2h\" }\nnotify_delay = { up = \"10s\", down "
        "= \"15m\", multiplier = 2, max = \"1h\" }\n[[receiver]]\nname = \"am\"\ntype = "
        "\"alertmanager\"\nurl = \"http://a\"\n[[receiver]]\nname = \"b\"\ntype = \"webhook\"\n"
        "url = \"http://b\"\n[[rule]]\nname = \"A\"\nkind = \"error_ratio\"\n"
        "[rule.levels.warning]\nabove = 0.1\n[[rule]]\nname = \"B\"\nkind = \"pool_waiting\"\n"
        "for = \"1m\"\nreceivers = [\"b\"]\nrepeat_interval = { critical = \"30m\" }\n"
        "[rule.levels.critical]\nabove = 1\n",
        "f");
    const rule& a = s.rules.at(0);
    EXPECT_EQ(a.receivers, std::vector<std::string>{"am"});
    EXPECT_EQ(a.for_, 3min);
    EXPECT_EQ(a.min_samples, 20u);
    EXPECT_EQ(a.on_no_data, no_data_policy::resolve);
    EXPECT_EQ(a.repeat_interval[int(severity::warning)], 2h);
    EXPECT_EQ(a.repeat_interval[int(severity::critical)], 1h);
    EXPECT_EQ(a.notify_delay.up, 10s);
    EXPECT_EQ(a.notify_delay.down, 15min);
    EXPECT_EQ(a.notify_delay.max, 1h);
    EXPECT_DOUBLE_EQ(a.notify_delay.multiplier, 2);
    const rule& b = s.rules.at(1);
    EXPECT_EQ(b.receivers, std::vector<std::string>{"b"});
    EXPECT_EQ(b.for_, 1min);
    EXPECT_EQ(b.min_samples, 0u);  // pool_waiting has no call samples
    EXPECT_EQ(b.repeat_interval[int(severity::warning)], 2h);
    EXPECT_EQ(b.repeat_interval[int(severity::critical)], 30min);
}

TEST(rules, collects_every_error_of_a_file) {
    const auto errors = errors_of(
        "[[rule]]\nname = \"A\"\nkind = \"nope\"\n[[rule]]\nname = \"B\"\nkind = \"error_ratio\"\n"
        "for = 5\n[rule.levels.warning]\nabove = 2\n[[rule]]\nkind = \"watchdog\"\n");
    ASSERT_EQ(errors.size(), 4u);
    EXPECT_NE(errors[0].find("r.toml:3: key 'rule.kind'"), std::string::npos) << errors[0];
    EXPECT_NE(errors[1].find("r.toml:7: key 'rule.for'"), std::string::npos) << errors[1];
    EXPECT_NE(errors[2].find("r.toml:9: key 'rule.levels.warning.above'"), std::string::npos)
        << errors[2];
    EXPECT_NE(errors[3].find("r.toml:10: key 'rule.name': missing"), std::string::npos)
        << errors[3];
}

TEST(rules, syntax_errors_name_the_line) {
    EXPECT_TRUE(one_error("[[rule]]\nname = \"A\nkind = 1\n", "r.toml:2: TOML syntax error"));
}

TEST(rules, duplicate_names_name_both_places) {
    EXPECT_TRUE(
        one_error("[[rule]]\nname = \"W\"\nkind = \"watchdog\"\n[[rule]]\nname = \"W\"\n"
                  "kind = \"watchdog\"\n",
                  "r.toml:4: key 'rule.name': rule \"W\" is already declared at r.toml:1"));
    temp_dir d;
    const auto a = d.write("a.toml",
                           "[[receiver]]\nname = \"am\"\ntype = \"alertmanager\"\n"
                           "url = \"http://a\"\n");
    const auto b = d.write("b.toml",
                           "\n[[receiver]]\nname = \"am\"\ntype = \"webhook\"\n"
                           "url = \"http://b\"\n");
    try {
        load_rules({a, b});
        FAIL() << "no error";
    } catch (const rules_error& e) {
        ASSERT_EQ(e.errors().size(), 1u);
        EXPECT_EQ(e.errors()[0], b +
                                     ":2: key 'receiver.name': receiver \"am\" is already "
                                     "declared at " +
                                     a + ":1");
    }
}

TEST(rules, load_expands_globs_and_resolves_across_files) {
    temp_dir d;
    const auto a = d.write("10-receivers.toml",
                           "[[receiver]]\nname = \"am\"\ntype = "
                           "\"alertmanager\"\nurl = \"http://a\"\n");
    const auto b = d.write("20-rules.toml",
                           "[[rule]]\nname = \"W\"\nkind = \"watchdog\"\n"
                           "receivers = [\"am\"]\n");
    const auto s = load_rules({(d.path / "*.toml").string()});
    EXPECT_EQ(s.files, (std::vector<std::string>{a, b}));
    EXPECT_EQ(s.rules.size(), 1u);
    EXPECT_EQ(s.receivers.size(), 1u);
    const auto again = load_rules({a, (d.path / "2?-rules.toml").string(), a});
    EXPECT_EQ(again.files, (std::vector<std::string>{a, b}));
    EXPECT_EQ(again.digest, s.digest);
    EXPECT_TRUE(load_rules({}).rules.empty());
}

TEST(rules, load_refuses_missing_files_and_empty_globs) {
    temp_dir d;
    try {
        load_rules({(d.path / "none.toml").string(), (d.path / "*.toml").string()});
        FAIL() << "no error";
    } catch (const rules_error& e) {
        ASSERT_EQ(e.errors().size(), 2u);
        EXPECT_NE(e.errors()[0].find("none.toml: cannot read: No such file"), std::string::npos)
            << e.errors()[0];
        EXPECT_NE(e.errors()[1].find("*.toml: the glob matches no file"), std::string::npos)
            << e.errors()[1];
    }
}

TEST(rules, check_rules_prints_ok_or_every_error) {
    temp_dir d;
    const auto good = d.write("good.toml", contract);
    const auto bad = d.write("bad.toml",
                             "[[rule]]\nname = \"X\"\nkind = \"watchdog\"\nfoo = 1\n"
                             "receivers = [\"nobody\"]\n");
    std::ostringstream out, err;
    EXPECT_EQ(check_rules({good}, out, err), 0);
    EXPECT_EQ(out.str(), good + ": 1 rules, 2 receivers, 0 escalation policies: OK\n");
    EXPECT_EQ(err.str(), "");
    out.str("");
    EXPECT_EQ(check_rules({good, bad}, out, err), 1);
    EXPECT_NE(out.str().find(good + ": 1 rules, 2 receivers, 0 escalation policies: OK\n"),
              std::string::npos);
    EXPECT_NE(out.str().find(bad + ": 1 rules, 0 receivers, 0 escalation policies: FAILED\n"),
              std::string::npos);
    EXPECT_NE(err.str().find(bad + ":4: key 'rule.foo': unknown key"), std::string::npos)
        << err.str();
    EXPECT_NE(err.str().find(bad + ":5: key 'rule.receivers': unknown receiver \"nobody\""),
              std::string::npos)
        << err.str();
    EXPECT_NE(err.str().find("2 problems found"), std::string::npos) << err.str();
    std::ostringstream out2, err2;
    EXPECT_EQ(check_rules({(d.path / "missing.toml").string()}, out2, err2), 1);
    EXPECT_NE(err2.str().find("cannot read"), std::string::npos);
    EXPECT_EQ(check_rules({}, out2, err2), 1);
}

TEST(rules, shipped_example_loads) {
    const std::string path = std::string(PLUGMON_SOURCE_DIR) + "/deploy/alerts.example.toml";
    std::ostringstream out, err;
    EXPECT_EQ(check_rules({path}, out, err), 0) << err.str();
    const auto s = load_rules({path});
    EXPECT_GE(s.rules.size(), 12u);
    EXPECT_EQ(s.escalations.size(), 1u);
    bool watchdog = false;
    for (const auto& r : s.rules) watchdog = watchdog || r.kind == rule_kind::watchdog;
    EXPECT_TRUE(watchdog);
}

TEST(glob, star_and_question_mark) {
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("*", "billing"));
    EXPECT_TRUE(glob_match("bill*", "billing"));
    EXPECT_TRUE(glob_match("*ing", "billing"));
    EXPECT_TRUE(glob_match("b?ll*g", "billing"));
    EXPECT_TRUE(glob_match("*l*i*", "billing"));
    EXPECT_TRUE(glob_match("", ""));
    EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
    EXPECT_FALSE(glob_match("", "x"));
    EXPECT_FALSE(glob_match("bill", "billing"));
    EXPECT_FALSE(glob_match("?", ""));
    EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
    EXPECT_FALSE(glob_match("[ab]", "a"));  // no classes: '[' is literal
    EXPECT_TRUE(glob_match("[ab]", "[ab]"));
}

TEST(glob, pathological_patterns_stay_fast) {
    const std::string text(20000, 'a');
    const std::string pattern = std::string(50, '*') + "a*a*a*a*a*a*a*a*b";
    EXPECT_FALSE(glob_match(pattern, text));
    EXPECT_TRUE(glob_match(std::string(50, '*') + "a", text));
}

TEST(templates, names_and_filters) {
    template_vars v;
    v.labels = {{"plugin", "billing"}, {"n", "1536"}};
    v.value = 0.052;
    v.threshold = 0.05;
    v.samples = 1234;
    v.over = 5min;
    v.severity = severity::critical;
    EXPECT_EQ(render_template("plugin {{ labels.plugin }} fails {{ value | percent }}", v),
              "plugin billing fails 5.2%");
    EXPECT_EQ(render_template("{{value}} {{ threshold|percent }} {{ samples }} {{ over }}", v),
              "0.052 5% 1234 5m");
    EXPECT_EQ(render_template("{{ severity }}/{{ labels.missing }}/", v), "critical//");
    EXPECT_EQ(render_template("{{ samples | humanize }}", v), "1.23k");
    EXPECT_EQ(render_template("{{ labels.n | bytes }}", v), "1.5KiB");
    v.value = 0.25;
    EXPECT_EQ(render_template("{{ value | duration }}", v), "250ms");
    v.value = 1.5;
    EXPECT_EQ(render_template("{{ value | duration }}", v), "1.5s");
    v.value = 13107200;
    EXPECT_EQ(render_template("{{ value | bytes }}", v), "12.5MiB");
    v.value = 1200;
    EXPECT_EQ(render_template("{{ value | humanize }}", v), "1.2k");
    v.value = 0.0012;
    EXPECT_EQ(render_template("{{ value | humanize }}", v), "1.2m");
    v.value = 3e9;
    EXPECT_EQ(render_template("{{ value | humanize }}", v), "3G");
    EXPECT_EQ(render_template("{{ over | duration }}", v), "5m");
    EXPECT_EQ(render_template("no placeholders", v), "no placeholders");
}

TEST(templates, errors_render_in_place_and_are_checked_at_load) {
    const template_vars v;
    EXPECT_EQ(render_template("a {{ value", v), "<template error: unclosed \"{{\" at offset 2>");
    EXPECT_EQ(render_template("{{ valeu }}", v).rfind("<template error: unknown name \"valeu\"", 0),
              0u);
    EXPECT_EQ(render_template("{{ value | upper }}", v)
                  .rfind("<template error: unknown filter \"upper\"", 0),
              0u);
    EXPECT_EQ(render_template("{{ labels.x | percent }}", v),
              "<template error: filter percent needs a number, got \"\">");
    EXPECT_FALSE(check_template("{{ labels.plugin | percent }} {{ over }}"));
    EXPECT_TRUE(check_template("{{ }}"));
    EXPECT_TRUE(check_template("x }}"));
    EXPECT_TRUE(one_error(rule_with("annotations = { summary = \"{{ valu }}\" }"),
                          "r.toml:9: key 'rule.annotations.summary': template error: unknown "
                          "name \"valu\""));
}

}  // namespace
}  // namespace plugmon::agent::alert
