// The log_format key: its flag, its file form, its default, and a bad value named with the
// allowed ones.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/config.hpp"

namespace {

using namespace plugmon::agent;

config parse(std::vector<std::string> args) {
    args.insert(args.begin(), "plugmon-agent");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    return parse_command_line(static_cast<int>(args.size()), argv.data());
}

TEST(log_format_key, defaults_to_text_and_takes_json_from_the_flag_or_the_file) {
    EXPECT_EQ(parse({}).log_format, log::format::text);
    EXPECT_EQ(parse({"--log-format", "json"}).log_format, log::format::json);
    EXPECT_EQ(parse({"--log-format", "text"}).log_format, log::format::text);
    const std::string file = ::testing::TempDir() + "/log_format_config_test.toml";
    std::ofstream(file) << "log_format = \"json\"\n";
    EXPECT_EQ(parse({"--config", file}).log_format, log::format::json);
    EXPECT_NE(describe(parse({"--config", file})).find("log_format=json"), std::string::npos);
}

TEST(log_format_key, a_bad_value_names_the_key_and_the_allowed_values) {
    try {
        parse({"--log-format", "xml"});
        FAIL() << "xml was accepted";
    } catch (const config_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("log_format"), std::string::npos) << what;
        EXPECT_NE(what.find("xml"), std::string::npos) << what;
        EXPECT_NE(what.find("text, json"), std::string::npos) << what;
    }
}

}  // namespace
