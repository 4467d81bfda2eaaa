// The real agent with --log-format json under load, with PostgreSQL: a producer SIGKILLed, a
// PostgreSQL outage, an unreachable remote-write receiver and a refused SIGHUP reload. Then every
// line of its log must be one JSON object with ts (RFC 3339, milliseconds), level, component and
// msg, and no line may hold the PostgreSQL password or a token used in the run.
#include "support/harness.hpp"
#include "support/pg_server.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

void write_file(const std::string& path, const std::string& text, mode_t mode = 0600) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
}

std::vector<json> parse_lines(const std::string& text, std::vector<std::string>& problems) {
    static const std::regex ts_form(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    static const std::set<std::string> levels{"trace", "debug", "info",
                                              "warn",  "error", "critical"};
    std::vector<json> out;
    std::istringstream in(text);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        const auto where = "line " + std::to_string(n) + ": " + line;
        json j;
        try {
            j = json::parse(line);
        } catch (const std::exception& e) {
            problems.push_back(where + " (" + e.what() + ")");
            continue;
        }
        const bool ok = j.is_object() && j.value("ts", json()).is_string() &&
                        std::regex_match(j["ts"].get<std::string>(), ts_form) &&
                        j.value("level", json()).is_string() && levels.count(j["level"]) == 1 &&
                        j.value("component", json()).is_string() &&
                        !j["component"].get<std::string>().empty() &&
                        j.value("msg", json()).is_string();
        if (!ok) problems.push_back(where);
        out.push_back(std::move(j));
    }
    return out;
}

bool has_line(const std::string& log_path, const std::string& component, const std::string& msg) {
    std::vector<std::string> ignored;
    for (const auto& j : parse_lines(read_file(log_path), ignored))
        if (j.value("component", "") == component && j.value("msg", "") == msg) return true;
    return false;
}

}  // namespace

TEST(log_json_agent, every_line_of_a_loaded_agent_with_failures_is_a_json_object_without_secrets) {
    pg_server& pg = pg_server::shared();
    const std::string url = pg.create_database("logs");
    const std::string password =
        url.substr(url.find(':', 13) + 1, url.find('@') - url.find(':', 13) - 1);
    ASSERT_GE(password.size(), 6u) << "the test server's URL has a password: " << url;
    temp_dir dir;
    const std::string rt = dir.path() + "/rt", log = dir.path() + "/agent.log";
    const std::string api_token = "adm1n-t0ken-" + std::to_string(::getpid());
    const std::string rw_token = "rw-b3arer-" + std::to_string(::getpid());
    const std::string tenant_secret = "tenant-s3cret-" + std::to_string(::getpid());
    write_file(dir.path() + "/rw.token", rw_token);
    write_file(dir.path() + "/tenant.secret", tenant_secret);
    const std::string good_config = "api_token = \"" + api_token +
                                    "\"\n"
                                    "[[remote_write]]\n"
                                    "name = \"rw\"\n"
                                    "url = \"http://127.0.0.1:" +
                                    std::to_string(unused_loopback_port()) +
                                    "/api/v1/write\"\n"
                                    "bearer_token_file = \"" +
                                    dir.path() +
                                    "/rw.token\"\n"
                                    "header_files = { \"X-Scope-OrgID\" = \"" +
                                    dir.path() + "/tenant.secret\" }\n";
    const std::string conf = dir.path() + "/agent.toml";
    write_file(conf, good_config);

    agent a(rt, log,
            {"--config", conf, "--log-format", "json", "--postgres", url, "--flush-interval", "1s",
             "--spool-dir", dir.path() + "/spool", "--postgres-backoff-max", "1s",
             "--exit-drain-timeout", "20s"});
    loadgen_run lg(dir, "lg", rt,
                   {"--processes", "2", "--threads", "1", "--duration", "8s", "--rate", "20000",
                    "--plugins", "2", "--plugin-prefix", "logs-", "--wait-attached", "10s",
                    "--allow-kill", "--print-pids"});
    ASSERT_TRUE(wait_until([&] { return lg.pids().size() == 2; }, 20s)) << lg.log();
    const pid_t victim = lg.pids().front();
    ASSERT_TRUE(wait_until([&] { return has_line(log, "ingest", "producer registered"); }, 20s));
    ASSERT_TRUE(wait_until(
        [&] { return a.producers_json().find(std::to_string(victim)) != std::string::npos; }, 20s));
    ASSERT_EQ(::kill(victim, SIGKILL), 0);

    // PostgreSQL goes away for a few flushes, then comes back.
    pg.stop("immediate");
    EXPECT_TRUE(wait_until([&] { return has_line(log, "store", "database call failed"); }, 30s));
    pg.restart();
    EXPECT_TRUE(wait_until(
        [&] { return has_line(log, "store", "PostgreSQL is back; replaying the spool"); }, 60s));

    // A configuration that does not validate is refused on SIGHUP, and logged as such.
    write_file(conf, "log_format = \"xml\"\n" + good_config);  // top level: before the table
    a.proc().signal(SIGHUP);
    EXPECT_TRUE(wait_until(
        [&] { return read_file(log).find("reload refused") != std::string::npos; }, 20s));
    write_file(conf, good_config);

    EXPECT_EQ(lg.finish(), 0) << lg.log();
    ASSERT_EQ(a.stop(), 0) << read_file(log + ".err");

    const std::string text = read_file(log);
    std::vector<std::string> problems;
    const auto lines = parse_lines(text, problems);
    EXPECT_TRUE(problems.empty()) << problems.size()
                                  << " bad lines, the first: " << problems.front();
    EXPECT_GE(lines.size(), 8u) << text;
    for (const std::string& secret : {password, api_token, rw_token, tenant_secret}) {
        EXPECT_EQ(text.find(secret), std::string::npos) << "a secret is in the log: " << secret;
        EXPECT_EQ(read_file(log + ".err").find(secret), std::string::npos) << secret;
    }

    // The structured fields of the events the run caused.
    bool gone = false, refused = false, receiver = false, registered = false, audited = false;
    for (const auto& j : lines) {
        if (j["component"] == "ingest" && j["msg"] == "producer is gone")
            gone = gone || j.value("pid", 0) == victim;
        if (j["component"] == "ingest" && j["msg"] == "producer registered")
            registered = registered || (j.contains("pid") && j.contains("lanes"));
        if (j["level"] == "error" && j["msg"].get<std::string>().find("reload refused") == 0)
            refused = j["msg"].get<std::string>().find("log_format") != std::string::npos;
        if (j["component"] == "audit" && j.value("action", "") == "reload")
            audited = j.value("actor", "") == "SIGHUP" && j.value("status", 0) == 500 &&
                      j.value("detail", "").find("log_format") != std::string::npos;
        if (j["component"] == "remote_write")
            receiver = receiver || j.value("receiver", "") == "rw";
        if (j.contains("suppressed")) {
            EXPECT_TRUE(j["suppressed"].is_number_unsigned()) << j;
        }
    }
    EXPECT_TRUE(gone) << "the SIGKILLed producer " << victim << " is logged with its pid";
    EXPECT_TRUE(registered);
    EXPECT_TRUE(refused) << "the refused reload names the key";
    EXPECT_TRUE(receiver) << "remote-write failures name the receiver";
    EXPECT_TRUE(audited) << "the refused SIGHUP reload is an audit object with actor and status";
}
