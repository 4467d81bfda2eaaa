// The real plugmon-agent under a notification socket this test owns, as systemd runs it with
// Type=notify and WatchdogSec: READY once it serves, WATCHDOG pings, RELOADING then READY around a
// SIGHUP, STOPPING at SIGTERM. And systemd-analyze verify on the units in deploy/.
#include "agent/systemd/notify_socket.hpp"
#include "support/harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <sys/wait.h>

using namespace plugmon::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

bool is_socket(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

/// The HTTP port named in a READY=1 message's STATUS ("... HTTP on http://127.0.0.1:PORT").
int port_in_status(const std::string& message) {
    const std::regex re("HTTP on http://127\\.0\\.0\\.1:([0-9]+)");
    std::smatch m;
    const std::string status = notify_socket::value(message, "STATUS");
    return std::regex_search(status, m, re) ? std::stoi(m[1]) : 0;
}

}  // namespace

TEST(systemd_agent, notifies_ready_watchdog_reload_and_stopping) {
    temp_dir dir;
    notify_socket manager(dir.path() + "/notify.sock");
    const std::string run_dir = dir.path() + "/run", log = dir.path() + "/agent.log";
    // 2 s: a ping every second; the drain completes a pass every millisecond.
    process agent({agent_binary(), "--runtime-dir", run_dir, "--listen", "127.0.0.1:0",
                   "--drain-interval", "1ms"},
                  {"NOTIFY_SOCKET=" + manager.address(), "WATCHDOG_USEC=2000000"}, log,
                  log + ".err");
    std::string seen;
    const auto ready = manager.wait_for("READY=1", 30s, &seen);
    ASSERT_TRUE(ready) << "no READY=1; got:\n" << seen << read_file(log) << read_file(log + ".err");
    // READY=1 means serving: the HTTP port answers and the producers' socket is there.
    const int port = port_in_status(*ready);
    ASSERT_NE(port, 0) << *ready;
    int status = 0;
    EXPECT_TRUE(http_get(port, "/healthz", &status)) << "HTTP status " << status;
    EXPECT_TRUE(is_socket(run_dir + "/agent.sock"));

    ASSERT_TRUE(manager.wait_for("WATCHDOG=1", 30s, &seen)) << seen << read_file(log);
    ASSERT_TRUE(manager.wait_for("WATCHDOG=1", 30s, &seen)) << seen << read_file(log);

    agent.signal(SIGHUP);
    const auto reloading = manager.wait_for("RELOADING=1", 30s, &seen);
    ASSERT_TRUE(reloading) << seen << read_file(log);
    EXPECT_FALSE(notify_socket::value(*reloading, "MONOTONIC_USEC").empty()) << *reloading;
    EXPECT_TRUE(manager.wait_for("READY=1", 30s, &seen)) << seen << read_file(log);

    agent.signal(SIGTERM);
    EXPECT_TRUE(manager.wait_for("STOPPING=1", 30s, &seen)) << seen << read_file(log);
    const auto st = agent.wait(60s);
    ASSERT_TRUE(st);
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << read_file(log);
}

// Every unit in deploy/, with the executables it names replaced by the ones built here (verify
// checks that ExecStart= exists). Any line systemd-analyze prints about a unit fails the test: it
// only warns about unknown keys and bad values.
TEST(systemd_units, deploy_units_pass_systemd_analyze_verify) {
    if (!fs::exists("/usr/bin/systemd-analyze")) GTEST_SKIP() << "systemd-analyze not installed";
    temp_dir dir;
    std::vector<std::string> units;
    for (const auto& e : fs::directory_iterator(PLUGMON_DEPLOY_DIR)) {
        const auto ext = e.path().extension();
        if (ext != ".service" && ext != ".timer" && ext != ".socket") continue;
        std::string text = read_file(e.path().string());
        for (const auto& [from, to] :
             {std::pair<std::string, std::string>{"/usr/local/bin/plugmon-agent", agent_binary()},
              {"/usr/local/bin/plugmonctl", PLUGMON_CTL_BIN}}) {
            for (auto pos = text.find(from); pos != std::string::npos;
                 pos = text.find(from, pos + to.size()))
                text.replace(pos, from.size(), to);
        }
        const auto copy = dir.path() + "/" + e.path().filename().string();
        std::ofstream(copy) << text;
        units.push_back(copy);
    }
    ASSERT_FALSE(units.empty());
    EXPECT_TRUE(std::find_if(units.begin(), units.end(), [](const std::string& u) {
                    return u.ends_with("/plugmon-agent.service");
                }) != units.end());
    std::vector<std::string> argv{"/usr/bin/systemd-analyze", "verify"};
    argv.insert(argv.end(), units.begin(), units.end());
    const auto out = dir.path() + "/verify.out";
    process verify(argv, {"SYSTEMD_LOG_COLOR=0"}, out, out + ".err");
    const auto st = verify.wait(120s);
    ASSERT_TRUE(st);
    const std::string output = read_file(out) + read_file(out + ".err");
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << output;
    for (const auto& u : units) {
        const auto name = fs::path(u).filename().string();
        EXPECT_EQ(output.find(name), std::string::npos) << output;
    }
}

// What systemd-analyze cannot insist on: the agent's unit uses what the agent implements.
TEST(systemd_units, agent_unit_is_type_notify_with_a_watchdog) {
    std::istringstream unit(read_file(std::string(PLUGMON_DEPLOY_DIR) + "/plugmon-agent.service"));
    std::map<std::string, std::string> keys;
    for (std::string line; std::getline(unit, line);) {
        const auto eq = line.find('=');
        if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
        keys[line.substr(0, eq)] = line.substr(eq + 1);
    }
    EXPECT_EQ(keys["Type"], "notify");
    EXPECT_EQ(keys["NotifyAccess"], "main");
    EXPECT_FALSE(keys["WatchdogSec"].empty());
    EXPECT_NE(keys["ExecReload"].find("-HUP $MAINPID"), std::string::npos) << keys["ExecReload"];
    EXPECT_EQ(keys["NoNewPrivileges"], "yes");
    EXPECT_EQ(keys["ProtectSystem"], "strict");
}
