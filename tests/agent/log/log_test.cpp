// The text and JSON formatters: every JSON line parses, carries ts/level/component/msg and the
// fields, escapes what it must; text lines carry key=value fields; plain spdlog calls still work.
#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/rfc3339.hpp"
#include "log/formatter.hpp"

namespace {

using namespace plugmon::agent;
using log::field;

/// A logger writing into a string, with the formatter of `f`.
struct captured {
    explicit captured(log::format f, std::string name = "")
        : logger(std::move(name), std::make_shared<spdlog::sinks::ostream_sink_st>(out)) {
        logger.set_formatter(log::make_formatter(f));
        logger.set_level(spdlog::level::trace);
    }
    void write(spdlog::level::level_enum level, std::string_view component, std::string_view msg,
               log::fields f = {}, std::uint64_t suppressed = 0) {
        log::write_with(logger, level, msg, {component, f.begin(), f.end(), suppressed});
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> v;
        std::istringstream in(out.str());
        for (std::string l; std::getline(in, l);) v.push_back(l);
        return v;
    }
    nlohmann::json only_json() const {
        const auto v = lines();
        EXPECT_EQ(v.size(), 1u) << out.str();
        return v.empty() ? nlohmann::json{} : nlohmann::json::parse(v.front());
    }
    std::ostringstream out;
    spdlog::logger logger;
};

TEST(log_json, a_line_is_one_object_with_ts_level_component_msg_and_fields) {
    captured c(log::format::json);
    const auto before = std::chrono::system_clock::now();
    c.write(spdlog::level::info, "store", "batch committed",
            {{"batch", 42},
             {"rows", std::uint64_t{7}},
             {"ratio", 0.5},
             {"ok", true},
             {"table", "samples"}});
    const auto j = c.only_json();
    EXPECT_EQ(j.at("level"), "info");
    EXPECT_EQ(j.at("component"), "store");
    EXPECT_EQ(j.at("msg"), "batch committed");
    EXPECT_EQ(j.at("batch"), 42);
    EXPECT_EQ(j.at("rows"), 7);
    EXPECT_EQ(j.at("ratio"), 0.5);
    EXPECT_EQ(j.at("ok"), true);
    EXPECT_EQ(j.at("table"), "samples");
    EXPECT_FALSE(j.contains("suppressed"));
    const std::string ts = j.at("ts");
    ASSERT_EQ(ts.size(), std::string("2026-12-05T00:45:12.345Z").size()) << ts;
    EXPECT_EQ(ts[19], '.');
    EXPECT_EQ(ts.back(), 'Z');
    const auto t = parse_rfc3339(ts);
    ASSERT_TRUE(t) << ts;
    EXPECT_LE(std::chrono::abs(*t - before), std::chrono::minutes{1});
}

TEST(log_json, every_level_has_its_name) {
    captured c(log::format::json);
    const std::vector<std::pair<spdlog::level::level_enum, std::string>> levels{
        {spdlog::level::trace, "trace"}, {spdlog::level::debug, "debug"},
        {spdlog::level::info, "info"},   {spdlog::level::warn, "warn"},
        {spdlog::level::err, "error"},   {spdlog::level::critical, "critical"}};
    for (const auto& [level, name] : levels) c.write(level, "app", "x");
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), levels.size());
    for (std::size_t i = 0; i < lines.size(); ++i)
        EXPECT_EQ(nlohmann::json::parse(lines[i]).at("level"), levels[i].second);
}

TEST(log_json, escapes_quotes_control_characters_and_invalid_utf8) {
    captured c(log::format::json);
    const std::string nasty =
        std::string("a \"quoted\"\nline\twith\x01 nul ") + '\0' + " bad \xff\xfe utf8 \xc3\x28 é";
    c.write(spdlog::level::warn, "ingest", nasty, {{"detail", nasty}});
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u) << "a newline in a message must not split the line";
    const auto j = nlohmann::json::parse(lines[0]);  // throws on invalid JSON or UTF-8
    const std::string msg = j.at("msg");
    EXPECT_NE(msg.find("\"quoted\"\nline\twith\x01"), std::string::npos);
    EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos) << "invalid bytes become U+FFFD";
    EXPECT_NE(msg.find("é"), std::string::npos) << "valid UTF-8 is kept";
    EXPECT_EQ(j.at("detail"), msg);
}

TEST(log_json, plain_spdlog_calls_get_the_default_component_or_the_logger_name) {
    captured c(log::format::json);
    c.logger.warn("legacy {} line", 3);
    auto j = c.only_json();
    EXPECT_EQ(j.at("component"), "agent");
    EXPECT_EQ(j.at("msg"), "legacy 3 line");
    EXPECT_EQ(j.at("level"), "warn");

    captured named(log::format::json, "web");
    named.logger.info("hello");
    EXPECT_EQ(named.only_json().at("component"), "web");
}

TEST(log_json, fields_never_replace_the_line_keys_and_suppressed_is_a_number) {
    captured c(log::format::json);
    c.write(spdlog::level::err, "store", "retrying", {{"msg", "inner"}, {"level", 1}}, 5);
    const auto j = c.only_json();
    EXPECT_EQ(j.at("msg"), "retrying");
    EXPECT_EQ(j.at("level"), "error");
    EXPECT_EQ(j.at("field_msg"), "inner");
    EXPECT_EQ(j.at("field_level"), 1);
    EXPECT_EQ(j.at("suppressed"), 5);
}

TEST(log_json, secrets_are_masked_in_messages_and_fields) {
    captured c(log::format::json);
    c.write(spdlog::level::err, "store", "cannot connect to postgresql://plugmon:hunter2@db/x",
            {{"conninfo", "host=db password=hunter2"},
             {"api_token", "tok-abc123"},
             {"header", "Authorization: Bearer tok-abc123"}});
    const auto line = c.lines().at(0);
    EXPECT_EQ(line.find("hunter2"), std::string::npos) << line;
    EXPECT_EQ(line.find("tok-abc123"), std::string::npos) << line;
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("api_token"), "***");
    EXPECT_EQ(j.at("msg"), "cannot connect to postgresql://plugmon:***@db/x");
}

TEST(log_text, fields_follow_the_message_as_key_value) {
    captured c(log::format::text);
    c.write(spdlog::level::warn, "ingest", "producer gone",
            {{"pid", 1234}, {"plugin", "my plugin"}, {"quote", "a\"b"}, {"empty", ""}});
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), 1u);
    const auto& l = lines[0];
    EXPECT_NE(l.find(" warn ingest: producer gone pid=1234 plugin=\"my plugin\" "
                     "quote=\"a\\\"b\" empty=\"\""),
              std::string::npos)
        << l;
    // The classic local-time stamp with milliseconds leads the line.
    ASSERT_GT(l.size(), 24u);
    EXPECT_EQ(l[4], '-');
    EXPECT_EQ(l[10], 'T');
    EXPECT_EQ(l[19], '.');
}

TEST(log_text, suppressed_lines_are_counted_and_the_default_component_is_left_out) {
    captured c(log::format::text);
    c.write(spdlog::level::err, "agent", "store down", {}, 12);
    c.logger.info("multi\nline");
    const auto lines = c.lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find(" error store down (12 similar lines suppressed)"), std::string::npos)
        << lines[0];
    EXPECT_NE(lines[1].find(" info multi\\nline"), std::string::npos) << lines[1];
}

TEST(log_setup, switches_the_default_logger_between_formats) {
    std::ostringstream out;
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "", std::make_shared<spdlog::sinks::ostream_sink_st>(out)));
    log::setup(log::format::json, spdlog::level::info);
    log::info("app", "json now", {{"n", 1}});
    log::debug("app", "below the level");
    log::setup(log::format::text, spdlog::level::debug);
    log::debug("app", "text now", {{"n", 2}});
    spdlog::set_default_logger(previous);

    std::istringstream in(out.str());
    std::string first, second, extra;
    ASSERT_TRUE(std::getline(in, first));
    ASSERT_TRUE(std::getline(in, second));
    EXPECT_FALSE(std::getline(in, extra)) << extra;
    EXPECT_EQ(nlohmann::json::parse(first).at("msg"), "json now");
    EXPECT_NE(second.find(" debug app: text now n=2"), std::string::npos) << second;
}

}  // namespace
