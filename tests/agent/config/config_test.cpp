// Specifies the agent's configuration: defaults, file and flags, and the errors it reports.
#include "config/config.hpp"
#include "support/scoped_env.hpp"

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace plugmon::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

/// Runs parse_command_line as the agent would see `plugmon-agent args...`.
config parse(std::initializer_list<std::string> args) {
    std::vector<std::string> storage{"plugmon-agent"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<const char*> argv;
    for (const auto& a : storage) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    return parse_command_line(static_cast<int>(storage.size()), argv.data());
}

/// The config_error a call throws; fails the test if it throws nothing.
template <typename F>
config_error error_of(F&& f) {
    try {
        f();
    } catch (const config_error& e) {
        return e;
    }
    ADD_FAILURE() << "no config_error thrown";
    return config_error("", "");
}

/// A TOML file in a fresh directory, removed at the end of the test.
class config_file : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = ::testing::TempDir() + "plugmon-config-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        path_ = dir_ + "/agent.toml";
    }
    void TearDown() override {
        std::remove(path_.c_str());
        ::rmdir(dir_.c_str());
    }
    const std::string& write(const std::string& text) {
        std::ofstream(path_) << text;
        return path_;
    }
    std::string dir_;
    std::string path_;
};

using plugmon::test::scoped_env;

TEST(config, defaults_match_the_design) {
    scoped_env runtime("PLUGMON_RUNTIME_DIR", "/tmp/plugmon-test-runtime");
    const config c = parse({});
    EXPECT_EQ(c.runtime_dir, "/tmp/plugmon-test-runtime");
    EXPECT_EQ(c.listen, "127.0.0.1:9464");
    EXPECT_EQ(c.postgres, "");
    EXPECT_EQ(c.flush_interval, 10s);
    EXPECT_EQ(c.drain_interval, 1ms);
    EXPECT_EQ(c.exit_drain_timeout, 5s);
    EXPECT_EQ(c.log_level, spdlog::level::info);
    EXPECT_EQ(c.max_producers, 1024u);
    EXPECT_EQ(c.socket_mode, 0666u);
    const std::vector<double> buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
    EXPECT_EQ(c.query_buckets, buckets);
    EXPECT_EQ(c.execution_buckets, buckets);
    EXPECT_EQ(c.api_token, "");
    EXPECT_EQ(c.series_budget, 100000u);
    EXPECT_EQ(c.series_budget_per_plugin, 10000u);
    EXPECT_EQ(c.config_file, "");
}

TEST(config, runtime_dir_prefers_the_environment_variable) {
    scoped_env runtime("PLUGMON_RUNTIME_DIR", "/srv/plugmon");
    EXPECT_EQ(default_runtime_dir(), "/srv/plugmon");
}

TEST(config, runtime_dir_falls_back_by_user) {
    scoped_env runtime("PLUGMON_RUNTIME_DIR", nullptr);
    {
        scoped_env xdg("XDG_RUNTIME_DIR", "/run/user/4242");
        EXPECT_EQ(default_runtime_dir(),
                  ::geteuid() == 0 ? "/run/plugmon" : "/run/user/4242/plugmon");
    }
    {
        scoped_env xdg("XDG_RUNTIME_DIR", nullptr);
        EXPECT_EQ(default_runtime_dir(), ::geteuid() == 0
                                             ? std::string("/run/plugmon")
                                             : "/tmp/plugmon-" + std::to_string(::geteuid()));
    }
}

TEST_F(config_file, reads_every_key_from_the_file) {
    const auto& path = write(R"(
runtime_dir = "/var/run/pm"
listen = "[::1]:0"
postgres = "postgresql://pm@db/metrics"
flush_interval = "2m"
drain_interval = "250us"
exit_drain_timeout = "1500ms"
log_level = "debug"
max_producers = 16
socket_mode = "0660"
query_buckets = [0.001, 0.01, 1]
execution_buckets = [1, 2.5, 10]
api_token = "s3cret"
series_budget = 5000
series_budget_per_plugin = 500
)");
    const config c = parse({"--config", path});
    EXPECT_EQ(c.runtime_dir, "/var/run/pm");
    EXPECT_EQ(c.listen, "[::1]:0");
    EXPECT_EQ(c.postgres, "postgresql://pm@db/metrics");
    EXPECT_EQ(c.flush_interval, 2min);
    EXPECT_EQ(c.drain_interval, 250us);
    EXPECT_EQ(c.exit_drain_timeout, 1500ms);
    EXPECT_EQ(c.log_level, spdlog::level::debug);
    EXPECT_EQ(c.max_producers, 16u);
    EXPECT_EQ(c.socket_mode, 0660u);
    EXPECT_EQ(c.query_buckets, (std::vector<double>{0.001, 0.01, 1}));
    EXPECT_EQ(c.execution_buckets, (std::vector<double>{1, 2.5, 10}));
    EXPECT_EQ(c.api_token, "s3cret");
    EXPECT_EQ(c.series_budget, 5000u);
    EXPECT_EQ(c.series_budget_per_plugin, 500u);
    EXPECT_EQ(c.config_file, path);
}

TEST_F(config_file, flags_override_file_values) {
    const auto& path =
        write("flush_interval = \"30s\"\nlisten = \"127.0.0.1:1\"\nmax_producers = 8\n");
    const config c = parse({"--flush-interval", "500ms", "--config", path, "--max-producers=99",
                            "--query-buckets", "0.5, 1,2"});
    EXPECT_EQ(c.flush_interval, 500ms);
    EXPECT_EQ(c.max_producers, 99u);
    EXPECT_EQ(c.listen, "127.0.0.1:1");  // from the file: no flag given
    EXPECT_EQ(c.query_buckets, (std::vector<double>{0.5, 1, 2}));
}

TEST_F(config_file, rejects_unknown_key_with_suggestion) {
    const auto& path = write("\nflsuh_interval = \"10s\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(),
                HasSubstr("unknown key \"flsuh_interval\" (did you mean \"flush_interval\"?)"));
    EXPECT_THAT(e.what(), HasSubstr(path + ":2:1:"));
    EXPECT_EQ(e.key(), "flsuh_interval");
}

TEST_F(config_file, rejects_unknown_key_without_suggestion_when_none_is_close) {
    const auto& path = write("colour = \"blue\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(), HasSubstr("unknown key \"colour\""));
    EXPECT_THAT(e.what(), Not(HasSubstr("did you mean")));
}

TEST_F(config_file, rejects_wrong_type_naming_the_key) {
    const auto& path = write("max_producers = \"many\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(), HasSubstr("max_producers: expected an integer, got a string"));
    EXPECT_EQ(e.key(), "max_producers");

    write("[postgres]\nhost = \"db\"\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("postgres: expected a string, got a table"));
}

TEST_F(config_file, rejects_out_of_range_values_naming_the_key) {
    const auto& path = write("max_producers = 0\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("max_producers: 0 is out of range (1..65536)"));
    EXPECT_THAT(error_of([] {
                    parse({"--max-producers", "65537"});
                }).what(),
                HasSubstr("max_producers: 65537 is out of range (1..65536)"));
    EXPECT_THAT(error_of([] {
                    parse({"--flush-interval", "25h"});
                }).what(),
                HasSubstr("flush_interval: 25h is out of range (100ms..1d)"));
}

TEST(config, reports_unreadable_file_with_path_and_reason) {
    const auto e = error_of([] { parse({"--config", "/nonexistent/plugmon/agent.toml"}); });
    EXPECT_THAT(e.what(), HasSubstr("\"/nonexistent/plugmon/agent.toml\""));
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
    EXPECT_EQ(e.key(), "config");

    EXPECT_THAT(error_of([] { parse({"--config", "/"}); }).what(), HasSubstr("Is a directory"));
}

TEST_F(config_file, reports_toml_syntax_error_with_line_and_column) {
    const auto& path = write("listen = \"127.0.0.1:9464\"\nflush_interval = = \"10s\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(), HasSubstr(path + ":2:"));
    EXPECT_THAT(e.what(), HasSubstr("TOML syntax error"));
    EXPECT_EQ(e.key(), "config");
}

TEST(config, parses_durations_with_units) {
    EXPECT_EQ(parse_duration("10s"), std::chrono::nanoseconds(10s));
    EXPECT_EQ(parse_duration("500ms"), std::chrono::nanoseconds(500ms));
    EXPECT_EQ(parse_duration("250us"), std::chrono::nanoseconds(250us));
    EXPECT_EQ(parse_duration("250\xC2\xB5s"), std::chrono::nanoseconds(250us));
    EXPECT_EQ(parse_duration("2m"), std::chrono::nanoseconds(2min));
    EXPECT_EQ(parse_duration("1h"), std::chrono::nanoseconds(1h));
    EXPECT_EQ(parse_duration("15ns"), std::chrono::nanoseconds(15));
    EXPECT_EQ(parse_duration("1.5s"), std::chrono::nanoseconds(1500ms));
    EXPECT_EQ(parse_duration("1m30s"), std::chrono::nanoseconds(90s));
}

TEST(config, rejects_text_that_is_not_a_duration) {
    EXPECT_EQ(parse_duration(""), std::nullopt);
    EXPECT_EQ(parse_duration("10"), std::nullopt);
    EXPECT_EQ(parse_duration("-5s"), std::nullopt);
    EXPECT_EQ(parse_duration("10 parsecs"), std::nullopt);
    EXPECT_EQ(parse_duration("s"), std::nullopt);
    EXPECT_EQ(parse_duration("99999999999999999999h"), std::nullopt);
}

TEST(config, formats_durations_in_their_largest_exact_unit) {
    EXPECT_EQ(format_duration(10s), "10s");
    EXPECT_EQ(format_duration(1ms), "1ms");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(2min), "2m");
    EXPECT_EQ(format_duration(std::chrono::nanoseconds(7)), "7ns");
    EXPECT_EQ(format_duration(std::chrono::nanoseconds(0)), "0s");
}

TEST_F(config_file, rejects_a_bad_duration_naming_key_and_example) {
    const auto& path = write("flush_interval = \"10 parsecs\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(), HasSubstr("flush_interval: \"10 parsecs\" is not a duration (use e.g. "
                                    "\"10s\", \"500ms\")"));
    EXPECT_THAT(error_of([] {
                    parse({"--drain-interval", "fast"});
                }).what(),
                HasSubstr("drain_interval: \"fast\" is not a duration"));
}

TEST_F(config_file, rejects_bare_numbers_as_durations_and_says_why) {
    const auto& path = write("flush_interval = 10000\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_THAT(e.what(), HasSubstr("flush_interval: 10000 has no unit"));
    EXPECT_THAT(e.what(), HasSubstr("a bare number of milliseconds is not accepted"));
    EXPECT_THAT(error_of([] {
                    parse({"--exit-drain-timeout", "5"});
                }).what(),
                HasSubstr("exit_drain_timeout: \"5\" has no unit"));
}

TEST_F(config_file, validates_histogram_buckets) {
    const auto& path = write("query_buckets = [0.1, 0.1, 1]\n");
    EXPECT_THAT(
        error_of([&] {
            parse({"--config", path});
        }).what(),
        HasSubstr("query_buckets: 0.1 does not follow 0.1 (bounds must be strictly increasing)"));
    write("execution_buckets = [1, 0.5]\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("execution_buckets: 0.5 does not follow 1"));
    write("query_buckets = [0, 1]\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("query_buckets: 0 is not a positive number of seconds"));
    write("query_buckets = []\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("query_buckets: must list at least one bucket bound"));
    write("query_buckets = [0.1, \"1s\"]\n");
    EXPECT_THAT(error_of([&] {
                    parse({"--config", path});
                }).what(),
                HasSubstr("query_buckets[1]: expected a number of seconds, got a string"));
    EXPECT_THAT(error_of([] {
                    parse({"--query-buckets", "0.1,x"});
                }).what(),
                HasSubstr("query_buckets: \"x\" is not a number of seconds"));
    EXPECT_THAT(error_of([] {
                    parse({"--query-buckets", "0.1,-1"});
                }).what(),
                HasSubstr("query_buckets: -1 is not a positive number of seconds"));
}

TEST(config, validates_log_level_socket_mode_and_runtime_dir) {
    EXPECT_EQ(parse({"--log-level", "warn"}).log_level, spdlog::level::warn);
    EXPECT_EQ(parse({"--log-level", "off"}).log_level, spdlog::level::off);
    EXPECT_THAT(
        error_of([] {
            parse({"--log-level", "verbose"});
        }).what(),
        HasSubstr("log_level: \"verbose\" is not one of trace, debug, info, warn, error, off"));
    EXPECT_EQ(parse({"--socket-mode", "600"}).socket_mode, 0600u);
    EXPECT_THAT(error_of([] {
                    parse({"--socket-mode", "0999"});
                }).what(),
                HasSubstr("socket_mode: \"0999\" is not an octal permission mode"));
    EXPECT_THAT(error_of([] {
                    parse({"--runtime-dir", "relative/dir"});
                }).what(),
                HasSubstr("runtime_dir: \"relative/dir\" is not an absolute path"));
    EXPECT_THAT(error_of([] {
                    parse({"--runtime-dir", "/" + std::string(200, 'd')});
                }).what(),
                HasSubstr("runtime_dir: path is 201 bytes"));
}

TEST_F(config_file, rejects_socket_mode_given_as_a_number) {
    const auto& path = write("socket_mode = 660\n");
    EXPECT_THAT(
        error_of([&] {
            parse({"--config", path});
        }).what(),
        HasSubstr(
            "socket_mode: expected a string of octal digits such as \"0660\", got an integer"));
}

TEST(config, rejects_per_plugin_budget_above_the_total) {
    const auto e = error_of([] {
        parse({"--series-budget", "100", "--series-budget-per-plugin", "101"});
    });
    EXPECT_THAT(e.what(), HasSubstr("series_budget_per_plugin: 101 exceeds series_budget (100)"));
    EXPECT_EQ(e.key(), "series_budget_per_plugin");
}

TEST(config, rejects_postgres_value_that_is_no_connection_string_without_echoing_it) {
    const auto e = error_of([] { parse({"--postgres", "user:hunter2@db"}); });
    EXPECT_THAT(e.what(), HasSubstr("postgres: is neither a postgresql:// URL nor a key=value"));
    EXPECT_THAT(e.what(), Not(HasSubstr("hunter2")));
    EXPECT_EQ(parse({"--postgres", "host=db dbname=m"}).postgres, "host=db dbname=m");
}

TEST(config, rejects_unknown_flag_with_suggestion) {
    const auto e = error_of([] { parse({"--flsuh-interval", "10s"}); });
    EXPECT_THAT(
        e.what(),
        HasSubstr("unknown option \"--flsuh-interval\" (did you mean \"--flush-interval\"?)"));
    EXPECT_THAT(error_of([] { parse({"stray"}); }).what(),
                HasSubstr("unexpected argument \"stray\""));
}

TEST(config, signals_help_and_version_apart_from_errors) {
    try {
        parse({"--help"});
        FAIL() << "--help did not signal";
    } catch (const help_requested& h) {
        EXPECT_THAT(h.text(), HasSubstr("--flush-interval"));
        EXPECT_THAT(h.text(), HasSubstr("--config"));
        EXPECT_THAT(h.text(), HasSubstr("--series-budget-per-plugin"));
    }
    try {
        parse({"--version"});
        FAIL() << "--version did not signal";
    } catch (const help_requested& h) {
        EXPECT_THAT(h.text(), HasSubstr("plugmon-agent "));
    }
}

TEST(split_listen, accepts_ipv4_names_and_bracketed_ipv6) {
    EXPECT_EQ(split_listen("127.0.0.1:9464"),
              (std::pair<std::string, std::uint16_t>{"127.0.0.1", 9464}));
    EXPECT_EQ(split_listen("localhost:0"), (std::pair<std::string, std::uint16_t>{"localhost", 0}));
    EXPECT_EQ(split_listen("[::1]:9464"), (std::pair<std::string, std::uint16_t>{"::1", 9464}));
    EXPECT_EQ(split_listen("[::]:65535"), (std::pair<std::string, std::uint16_t>{"::", 65535}));
}

TEST(split_listen, rejects_malformed_addresses_naming_listen) {
    for (const char* bad :
         {"9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", ":9464",
          "::1:9464", "[::1]9464", "[::1:9464", "[nonsense]:1", "host name:80", "127.0.0.1:-1"}) {
        const auto e = error_of([&] { split_listen(bad); });
        EXPECT_THAT(e.what(), HasSubstr("listen: \"" + std::string(bad) + "\"")) << bad;
        EXPECT_EQ(e.key(), "listen") << bad;
    }
    EXPECT_THAT(error_of([] { split_listen("::1:9464"); }).what(), HasSubstr("put it in brackets"));
    EXPECT_THAT(error_of([] {
                    parse({"--listen", "nowhere"});
                }).what(),
                HasSubstr("listen: \"nowhere\""));
}

TEST(mask_password, hides_password_in_url_forms) {
    EXPECT_EQ(mask_password("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
    EXPECT_EQ(mask_password("postgres://u:secret@h:5432/db?sslmode=require"),
              "postgres://u:***@h:5432/db?sslmode=require");
    EXPECT_EQ(mask_password("postgresql://u@h/db?sslmode=require&password=secret"),
              "postgresql://u@h/db?sslmode=require&password=***");
    EXPECT_EQ(mask_password("postgresql://u:se@cr/et@h/db"), "postgresql://u:***@h/db");
    EXPECT_EQ(mask_password("postgresql://u@h/db"), "postgresql://u@h/db");
}

TEST(mask_password, hides_password_in_keyword_form) {
    EXPECT_EQ(mask_password("host=h password=secret dbname=db"), "host=h password=*** dbname=db");
    EXPECT_EQ(mask_password("host=h password = 'se cr\\'et' user=u"),
              "host=h password = *** user=u");
    EXPECT_EQ(mask_password("PASSWORD=secret"), "PASSWORD=***");
    EXPECT_EQ(mask_password("host=h dbname=db"), "host=h dbname=db");
}

TEST(describe, summarises_on_one_line_with_secrets_masked) {
    config c;
    c.runtime_dir = "/run/plugmon";
    c.postgres = "postgresql://u:secret@h/db";
    c.api_token = "tok3n";
    const std::string line = describe(c);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_THAT(line, HasSubstr("postgres=postgresql://u:***@h/db"));
    EXPECT_THAT(line, HasSubstr("flush_interval=10s"));
    EXPECT_THAT(line, HasSubstr("socket_mode=0666"));
    EXPECT_THAT(line, HasSubstr("api_token=set"));
    EXPECT_THAT(line, Not(HasSubstr("secret")));
    EXPECT_THAT(line, Not(HasSubstr("tok3n")));
}

TEST_F(config_file, reads_per_plugin_slow_query_thresholds_from_a_table_or_a_flag) {
    const auto& path = write(
        "slow_query_threshold = \"2s\"\n"
        "[slow_query_thresholds]\nbilling = \"200ms\"\nsearch = \"5s\"\n");
    const config c = parse({"--config", path});
    EXPECT_EQ(c.slow_threshold_for("billing"), 200ms);
    EXPECT_EQ(c.slow_threshold_for("search"), 5s);
    EXPECT_EQ(c.slow_threshold_for("other"), 2s);
    const config f = parse({"--slow-query-thresholds", "billing=50ms,search=1s"});
    EXPECT_EQ(f.slow_threshold_for("billing"), 50ms);
    EXPECT_EQ(f.slow_threshold_for("search"), 1s);
    EXPECT_EQ(f.slow_threshold_for("other"), 1s);
}

TEST_F(config_file, rejects_a_bad_per_plugin_threshold_naming_the_plugin) {
    const auto& path = write("[slow_query_thresholds]\nbilling = \"soon\"\n");
    const auto e = error_of([&] { parse({"--config", path}); });
    EXPECT_EQ(e.key(), "slow_query_thresholds.billing");
    EXPECT_THAT(e.what(), HasSubstr("\"soon\" is not a duration"));
    EXPECT_THAT(error_of([] {
                    parse({"--slow-query-thresholds", "billing"});
                }).what(),
                HasSubstr("\"billing\" is not PLUGIN=DURATION"));
    EXPECT_THAT(error_of([] {
                    parse({"--slow-query-thresholds", "=1s"});
                }).what(),
                HasSubstr("a plugin name is empty"));
}

TEST(config, validates_leak_detection_settings) {
    const config c =
        parse({"--leak-window", "30s", "--leak-min-growth", "4096", "--leak-min-r2", "0.95"});
    EXPECT_EQ(c.leak_window, 30s);
    EXPECT_EQ(c.leak_min_growth, 4096u);
    EXPECT_DOUBLE_EQ(c.leak_min_r2, 0.95);
    EXPECT_THAT(error_of([] {
                    parse({"--leak-min-r2", "1.5"});
                }).what(),
                HasSubstr("leak_min_r2: 1.5 is out of range (0..1)"));
    EXPECT_THAT(error_of([] {
                    parse({"--leak-window", "1s"});
                }).what(),
                HasSubstr("leak_window: 1s is out of range"));
    EXPECT_EQ(parse({"--series-expiry-windows", "0"}).series_expiry_windows, 0u);
}

TEST(config, reads_the_store_settings_with_sizes_and_day_durations) {
    const config c = parse({"--postgres", "postgresql://u@h/db", "--spool-dir", "/var/tmp/sp",
                            "--spool-max-bytes", "64MiB", "--postgres-retention", "90d",
                            "--postgres-downsample-after", "36h", "--postgres-backoff-max", "5s",
                            "--host", "edge-7"});
    EXPECT_EQ(c.spool_dir, "/var/tmp/sp");
    EXPECT_EQ(c.spool_max_bytes, 64u << 20);
    EXPECT_EQ(c.postgres_retention, std::chrono::hours(24 * 90));
    EXPECT_EQ(c.postgres_downsample_after, std::chrono::hours(36));
    EXPECT_EQ(c.postgres_backoff_max, std::chrono::seconds(5));
    EXPECT_EQ(c.host, "edge-7");
    EXPECT_EQ(c.command, "run");
    EXPECT_EQ(format_duration(c.postgres_retention), "90d");
    EXPECT_EQ(parse_size("1GiB"), std::optional<std::uint64_t>(1ull << 30));
    EXPECT_EQ(parse_size("2 MB"), std::optional<std::uint64_t>(2'000'000));
    EXPECT_EQ(parse_size("12"), std::optional<std::uint64_t>(12));
    EXPECT_FALSE(parse_size("12 parsecs"));
    EXPECT_FALSE(parse_size("MiB"));
    EXPECT_FALSE(parse_size("99999999999999999999GiB"));
}

TEST(config, refuses_bad_store_settings_naming_the_key) {
    EXPECT_THAT(error_of([] {
                    parse({"--spool-max-bytes", "lots"});
                }).what(),
                HasSubstr("spool_max_bytes: is not a size"));
    EXPECT_THAT(error_of([] {
                    parse({"--spool-max-bytes", "1KiB"});
                }).what(),
                HasSubstr("spool_max_bytes: 1024 is out of range (1MiB..1TiB)"));
    EXPECT_THAT(error_of([] {
                    parse({"--postgres-retention", "2h"});
                }).what(),
                HasSubstr("postgres_retention: 2h is out of range"));
    EXPECT_THAT(
        error_of([] {
            parse({"--postgres-retention", "3d", "--postgres-downsample-after", "3d"});
        }).what(),
        HasSubstr("postgres_downsample_after: 3d is not shorter than postgres_retention (3d)"));
    EXPECT_EQ(error_of([] { parse({"migrate"}); }).key(), "postgres");
    EXPECT_THAT(error_of([] {
                    parse({"migrate", "--dry-run"});
                }).what(),
                HasSubstr("migrate needs a database"));
}

TEST(config, migrate_is_a_subcommand_taking_the_daemons_options_before_or_after_it) {
    const config a = parse({"migrate", "--dry-run", "--postgres", "host=db"});
    EXPECT_EQ(a.command, "migrate");
    EXPECT_TRUE(a.dry_run);
    EXPECT_EQ(a.postgres, "host=db");
    const config b = parse({"--postgres", "host=db", "migrate"});
    EXPECT_EQ(b.command, "migrate");
    EXPECT_FALSE(b.dry_run);
}

TEST(config, alerting_is_off_by_default_and_its_state_sits_beside_the_spool) {
    {
        scoped_env state("STATE_DIRECTORY", "/var/lib/plugmon-a:/var/lib/other");
        const config c = parse({});
        EXPECT_TRUE(c.alert_rules.empty());
        EXPECT_EQ(c.alert_state_dir, "/var/lib/plugmon-a/alerts");
        EXPECT_EQ(c.spool_dir, "/var/lib/plugmon-a/spool");
    }
    scoped_env state("STATE_DIRECTORY", nullptr);
    scoped_env xdg("XDG_STATE_HOME", "/home/u/.state");
    EXPECT_EQ(default_alert_state_dir(),
              ::geteuid() == 0 ? "/var/lib/plugmon/alerts" : "/home/u/.state/plugmon/alerts");
    EXPECT_EQ(default_spool_dir(),
              ::geteuid() == 0 ? "/var/lib/plugmon/spool" : "/home/u/.state/plugmon/spool");
}

TEST_F(config_file, reads_alert_rules_as_a_string_an_array_or_a_flag) {
    EXPECT_EQ(
        parse({"--config", write("alert_rules = \"/etc/plugmon/alerts.toml\"\n")}).alert_rules,
        std::vector<std::string>{"/etc/plugmon/alerts.toml"});
    const config c = parse({"--config", write("alert_rules = [\"/a.toml\", \"/d/*.toml\"]\n"
                                              "alert_state_dir = \"/srv/alerts\"\n")});
    EXPECT_EQ(c.alert_rules, (std::vector<std::string>{"/a.toml", "/d/*.toml"}));
    EXPECT_EQ(c.alert_state_dir, "/srv/alerts");
    EXPECT_EQ(parse({"--alert-rules", "/a.toml,/b.toml"}).alert_rules,
              (std::vector<std::string>{"/a.toml", "/b.toml"}));
    EXPECT_TRUE(parse({"--config", write("alert_rules = \"\"\n")}).alert_rules.empty());
    const std::string line = describe(c);
    EXPECT_THAT(line, HasSubstr("alert_rules=/a.toml alert_rules=/d/*.toml"));
    EXPECT_THAT(line, HasSubstr("alert_state_dir=/srv/alerts"));
}

TEST_F(config_file, refuses_bad_alert_settings_naming_the_key) {
    const auto bad_type = error_of([&] { parse({"--config", write("alert_rules = 3\n")}); });
    EXPECT_EQ(bad_type.key(), "alert_rules");
    EXPECT_THAT(bad_type.what(), HasSubstr("expected a file name, a glob or an array"));
    const auto bad_item = error_of([&] {
        parse({"--config", write("alert_rules = [\"/a\", 1]\n")});
    });
    EXPECT_THAT(bad_item.what(), HasSubstr("alert_rules[1]: expected a file name or glob"));
    EXPECT_EQ(error_of([&] {
                  parse({"--config", write("alert_state_dir = \"\"\n")});
              }).key(),
              "alert_state_dir");
    EXPECT_THAT(error_of([] {
                    parse({"--alert-rules", "/a,,/b"});
                }).what(),
                HasSubstr("empty entry"));
}

TEST(config, check_rules_is_a_subcommand_with_files) {
    const config a = parse({"check-rules", "/a.toml", "/d/*.toml"});
    EXPECT_EQ(a.command, "check-rules");
    EXPECT_EQ(a.check_files, (std::vector<std::string>{"/a.toml", "/d/*.toml"}));
    const config b = parse({"--log-level", "warn", "check-rules", "/a.toml"});
    EXPECT_EQ(b.command, "check-rules");
    EXPECT_EQ(b.check_files, std::vector<std::string>{"/a.toml"});
    EXPECT_EQ(error_of([] { parse({"check-rules"}); }).key(), "command line");
    EXPECT_EQ(parse({}).command, "run");
    EXPECT_TRUE(parse({}).check_files.empty());
}

/// A tokens file beside the config file, with the given permission bits.
std::string write_tokens(const std::string& dir, const std::string& text, mode_t mode) {
    const std::string path = dir + "/tokens.toml";
    std::ofstream(path) << text;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
}

// Two digests in the form `printf %s SECRET | sha256sum` prints (which secrets does not matter here).
constexpr const char* grafana_sha =
    "d7a63fa47a5e5c8e1c4c3b1e8e6d1b1f2bd1f4f7b9a4a5c1e4b7d4c7a2f0e1d3";
constexpr const char* ops_sha = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

const std::string two_tokens = std::string(R"([[token]]
name = "grafana"
scopes = ["read"]
sha256 = ")") + grafana_sha + R"("

[[token]]
name = "ops"
scopes = ["ack", "admin"]
sha256 = ")" + ops_sha + "\"\n";

TEST_F(config_file, reads_named_tokens_from_a_private_tokens_file) {
    const std::string tokens = write_tokens(dir_, two_tokens, 0600);
    const config c = parse({"--tokens-file", tokens});
    ASSERT_EQ(c.tokens.size(), 2u);
    EXPECT_EQ(c.tokens_file, tokens);
    EXPECT_EQ(c.tokens[0].name, "grafana");
    EXPECT_EQ(c.tokens[0].scopes, std::vector<std::string>{"read"});
    EXPECT_EQ(to_hex(c.tokens[0].sha256), grafana_sha);
    EXPECT_EQ(c.tokens[1].name, "ops");
    EXPECT_EQ(c.tokens[1].scopes, (std::vector<std::string>{"ack", "admin"}));
    EXPECT_EQ(to_hex(c.tokens[1].sha256), ops_sha);
    std::remove(tokens.c_str());
}

TEST_F(config_file, refuses_a_tokens_file_others_can_read) {
    const std::string tokens = write_tokens(dir_, two_tokens, 0644);
    const auto e = error_of([&] { parse({"--tokens-file", tokens}); });
    EXPECT_EQ(e.key(), "tokens_file");
    EXPECT_THAT(e.what(), HasSubstr(tokens));
    EXPECT_THAT(e.what(), HasSubstr("mode 0644"));
    ASSERT_EQ(::chmod(tokens.c_str(), 0640), 0);  // group alone is enough to refuse
    EXPECT_THAT(error_of([&] { parse({"--tokens-file", tokens}); }).what(), HasSubstr("mode 0640"));
    ASSERT_EQ(::chmod(tokens.c_str(), 0600), 0);
    EXPECT_EQ(parse({"--tokens-file", tokens}).tokens.size(), 2u);
    ASSERT_EQ(::chmod(tokens.c_str(), 0400), 0);
    EXPECT_EQ(parse({"--tokens-file", tokens}).tokens.size(), 2u);
    std::remove(tokens.c_str());
}

TEST_F(config_file, refuses_unknown_keys_and_bad_entries_in_the_tokens_file) {
    const auto problem = [&](const std::string& text) {
        const std::string tokens = write_tokens(dir_, text, 0600);
        const auto e = error_of([&] { parse({"--tokens-file", tokens}); });
        std::remove(tokens.c_str());
        EXPECT_EQ(e.key(), "tokens_file");
        EXPECT_THAT(e.what(), HasSubstr(tokens));
        return std::string(e.what());
    };
    const std::string digest = std::string("sha256 = \"") + grafana_sha + "\"\n";
    EXPECT_THAT(
        problem("[[token]]\nname = \"a\"\nscopes = [\"read\"]\n" + digest + "secret = \"x\"\n"),
        HasSubstr("unknown key \"secret\""));
    EXPECT_THAT(problem("tokens = 1\n"), HasSubstr("unknown key \"tokens\""));
    EXPECT_THAT(problem("[[token]]\nname = \"a\"\nscopes = [\"write\"]\n" + digest),
                HasSubstr("\"write\" is not one of"));
    EXPECT_THAT(problem("[[token]]\nname = \"a\"\nscopes = [\"read\"]\nsha256 = \"abc\"\n"),
                HasSubstr("sha256: expected 64 hex digits"));
    EXPECT_THAT(problem("[[token]]\nname = \"a\"\nscopes = [\"read\"]\n"),
                HasSubstr("needs name, scopes and sha256"));
    EXPECT_THAT(
        problem("[[token]]\nname = \"a\"\nscopes = [\"read\"]\n" + digest +
                "[[token]]\nname = \"a\"\nscopes = [\"admin\"]\nsha256 = \"" + ops_sha + "\"\n"),
        HasSubstr("used twice"));
    EXPECT_THAT(problem("[[token]]\nname = \"api_token\"\nscopes = [\"read\"]\n" + digest),
                HasSubstr("reserved"));
}

TEST_F(config_file, a_missing_tokens_file_is_a_config_error) {
    const auto e = error_of([&] { parse({"--tokens-file", dir_ + "/absent.toml"}); });
    EXPECT_EQ(e.key(), "tokens_file");
    EXPECT_THAT(e.what(), HasSubstr("tokens_file: cannot read"));
}

TEST(config, http_security_keys_default_to_open_reads_and_loopback_hosts) {
    const config c = parse({});
    EXPECT_FALSE(c.read_requires_token);
    EXPECT_TRUE(c.http_allowed_hosts.empty());
    EXPECT_TRUE(c.tokens_file.empty());
    EXPECT_TRUE(c.tokens.empty());
}

TEST_F(config_file, reads_read_requires_token_and_http_allowed_hosts) {
    const config c =
        parse({"--config", write("api_token = \"t\"\nread_requires_token = true\n"
                                 "http_allowed_hosts = [\"Agent.Example.com\", \"[fd00::1]\"]\n")});
    EXPECT_TRUE(c.read_requires_token);
    EXPECT_EQ(c.http_allowed_hosts, (std::vector<std::string>{"agent.example.com", "fd00::1"}));
    const config f =
        parse({"--http-allowed-hosts", "a.example, b.example", "--read-requires-token", "false"});
    EXPECT_EQ(f.http_allowed_hosts, (std::vector<std::string>{"a.example", "b.example"}));
    EXPECT_FALSE(f.read_requires_token);
}

TEST_F(config_file, refuses_bad_http_security_values_naming_the_key) {
    EXPECT_THAT(error_of([&] {
                    parse({"--config", write("read_requires_token = \"yes\"\n")});
                }).what(),
                HasSubstr("read_requires_token: expected true or false"));
    EXPECT_THAT(error_of([] {
                    parse({"--read-requires-token", "maybe"});
                }).what(),
                HasSubstr("read_requires_token: \"maybe\" is not true or false"));
    const auto no_token = error_of([] { parse({"--read-requires-token", "true"}); });
    EXPECT_EQ(no_token.key(), "read_requires_token");
    EXPECT_THAT(no_token.what(), HasSubstr("no token is configured"));
    EXPECT_THAT(error_of([&] {
                    parse({"--config", write("http_allowed_hosts = \"a.example\"\n")});
                }).what(),
                HasSubstr("http_allowed_hosts: expected an array of host names"));
    EXPECT_THAT(
        error_of([&] {
            parse({"--config", write("http_allowed_hosts = [\"ok.example\", \"bad host:80\"]\n")});
        }).what(),
        HasSubstr("http_allowed_hosts[1]: \"bad host:80\" is not a host name"));
    EXPECT_EQ(error_of([] {
                  parse({"--http-allowed-hosts", "x.example,,y.example"});
              }).key(),
              "http_allowed_hosts");
}

}  // namespace
}  // namespace plugmon::agent
