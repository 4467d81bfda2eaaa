// The real plugmon-agent and plugmon-loadgen run as an unprivileged user (nobody) with no
// --runtime-dir, no PLUGMON_RUNTIME_DIR and no configuration, while a /run/plugmon that this user
// cannot write exists: both must pick the same directory by themselves, so the agent drains the
// load generator's events. Needs root (to become nobody); the /run/plugmon case needs a private
// mount namespace (otherwise the test falls back to a private XDG_RUNTIME_DIR).
#include "support/harness.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace plugmon::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr uid_t nobody = 65534;
constexpr gid_t nogroup = 65534;

/// A child process run as nobody:nogroup (no supplementary groups) unless `as_nobody` is false,
/// stdout and stderr to files; killed and reaped at destruction if still running.
class nobody_process {
public:
    nobody_process(std::vector<std::string> argv, std::vector<std::string> env,
                   const std::string& out, const std::string& err, bool as_nobody = true) {
        std::vector<char*> av, ev;
        for (auto& a : argv) av.push_back(a.data());
        av.push_back(nullptr);
        for (auto& e : env) ev.push_back(e.data());
        ev.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ != 0) return;
        const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(o, 1);
        ::dup2(e, 2);
        const int in = ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        if (as_nobody &&
            (::setgroups(0, nullptr) != 0 || ::setgid(nogroup) != 0 || ::setuid(nobody) != 0)) {
            std::fprintf(stderr, "cannot become uid %u: %s\n", unsigned(nobody),
                         std::strerror(errno));
            ::_exit(126);
        }
        if (::chdir("/") != 0) ::_exit(126);
        ::execve(av[0], av.data(), ev.data());
        std::fprintf(stderr, "exec %s as uid %u: %s\n", av[0], unsigned(nobody),
                     std::strerror(errno));
        ::_exit(127);
    }
    ~nobody_process() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status_, 0);
        }
    }
    nobody_process(const nobody_process&) = delete;
    nobody_process& operator=(const nobody_process&) = delete;
    pid_t pid() const { return pid_; }
    /// The wait status, or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!reaped_) {
            if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
            if (reaped_ || std::chrono::steady_clock::now() >= end) break;
            std::this_thread::sleep_for(5ms);
        }
        return reaped_ ? std::optional<int>(status_) : std::nullopt;
    }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

/// This environment without HOME, XDG_* and PLUGMON_*, plus `extra`.
std::vector<std::string> bare_environment(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string kv = *e;
        if (kv.rfind("HOME=", 0) == 0 || kv.rfind("XDG_", 0) == 0 || kv.rfind("PLUGMON_", 0) == 0)
            continue;
        env.push_back(kv);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

/// Gives this (single-threaded) test process a private /run, with a root-owned /run/plugmon of
/// mode 0755 as a system agent would leave it, and a private /tmp unless the binaries under test
/// live in /tmp (a fresh tmpfs would hide them). False when not permitted.
bool private_tmp_and_run(std::string& why) {
    if (::unshare(CLONE_NEWNS) != 0) {
        why = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
        return false;
    }
    const bool binaries_in_tmp =
        agent_binary().rfind("/tmp/", 0) == 0 || loadgen_binary().rfind("/tmp/", 0) == 0;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        (!binaries_in_tmp && ::mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777") != 0) ||
        ::mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0 ||
        ::mkdir("/run/plugmon", 0755) != 0) {
        why = std::string("private /tmp and /run: ") + std::strerror(errno);
        return false;
    }
    return true;
}

std::string both(const std::string& path) { return read_file(path) + read_file(path + ".err"); }

/// The HTTP port the agent logs in `alog` once it listens; 0 when it exits or 20 s pass first.
int http_port_of(nobody_process& agent, const std::string& alog) {
    int port = 0;
    const std::regex re("HTTP on http://127\\.0\\.0\\.1:([0-9]+)/metrics");
    wait_until(
        [&] {
            std::smatch m;
            const std::string text = both(alog);
            if (std::regex_search(text, m, re)) port = std::stoi(m[1]);
            return port != 0 || agent.wait(0ms).has_value();
        },
        20s);
    return port;
}

/// The per-process JSON line of a `plugmon-loadgen --json` run (null when there is none).
json loadgen_child(const std::string& llog) {
    json child;
    std::istringstream lines(read_file(llog));
    for (std::string l; std::getline(lines, l);)
        if (!l.empty() && l[0] == '{' && l.find("\"total\"") == std::string::npos)
            child = json::parse(l);
    return child;
}

/// plugmon_agent_events_drained_total once it reaches `written`, or its value after 20 s.
double drained_when(int port, std::uint64_t written) {
    double drained = -1;
    wait_until(
        [&] {
            drained = metrics::parse(http_get(port, "/metrics").value_or(""))
                          .sum("plugmon_agent_events_drained_total");
            return drained == double(written);
        },
        20s);
    return drained;
}

}  // namespace

TEST(runtime_dir, unprivileged_agent_and_plugin_without_configuration_find_each_other) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the agent and the plugin as nobody";
    std::string why;
    const bool isolated = private_tmp_and_run(why);
    temp_dir dir;  // after the mounts: in the private /tmp when there is one
    ::chmod(dir.path().c_str(), 0755);
    std::vector<std::string> extra;
    std::string expected = "/tmp/plugmon-" + std::to_string(nobody);
    if (!isolated) {
        // No private /run: a private XDG_RUNTIME_DIR keeps concurrent runs apart; both sides
        // still find it by themselves.
        std::printf("[ note     ] no /run/plugmon scenario (%s); using XDG_RUNTIME_DIR\n",
                    why.c_str());
        const std::string xdg = dir.path() + "/xdg";
        ASSERT_EQ(::mkdir(xdg.c_str(), 0700), 0);
        ASSERT_EQ(::chown(xdg.c_str(), nobody, nogroup), 0);
        extra.push_back("XDG_RUNTIME_DIR=" + xdg);
        expected = xdg + "/plugmon";
    }
    const std::vector<std::string> env = bare_environment(extra);

    {  // can nobody run the binaries at all (the build tree must be searchable by everyone)?
        const std::string log = dir.path() + "/version";
        nobody_process v({agent_binary(), "--version"}, env, log, log + ".err");
        const auto st = v.wait(30s);
        if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
            GTEST_SKIP() << "uid 65534 cannot run " << agent_binary() << ": " << both(log);
    }

    const std::string alog = dir.path() + "/agent.log";
    nobody_process agent({agent_binary(), "--listen", "127.0.0.1:0", "--drain-interval", "200us"},
                         env, alog, alog + ".err");
    const int port = http_port_of(agent, alog);
    ASSERT_NE(port, 0) << "the agent did not start: " << both(alog);
    struct stat st {};
    ASSERT_EQ(::stat((expected + "/agent.sock").c_str(), &st), 0)
        << "the agent is not listening in " << expected << ": " << both(alog);
    EXPECT_EQ(st.st_uid, nobody);

    const std::string llog = dir.path() + "/loadgen.out";
    nobody_process lg(
        {loadgen_binary(), "--processes", "1", "--threads", "1", "--events", "20000", "--plugins",
         "1", "--plugin-prefix", "nobody-", "--wait-attached", "10s", "--json"},
        env, llog, llog + ".err");
    const auto lst = lg.wait(120s);
    ASSERT_TRUE(lst && WIFEXITED(*lst) && WEXITSTATUS(*lst) == 0) << both(llog);
    const json child = loadgen_child(llog);
    ASSERT_FALSE(child.is_null()) << both(llog);
    EXPECT_TRUE(child["attached_at_start"].get<bool>())
        << "the plugin did not find the agent: " << both(llog);
    const auto written = child["written"].get<std::uint64_t>();
    EXPECT_EQ(written + child["dropped"].get<std::uint64_t>(), 20000u);

    const double drained = drained_when(port, written);
    EXPECT_EQ(drained, double(written)) << both(alog);
    EXPECT_GT(written, 0u);
    ::kill(agent.pid(), SIGTERM);
    const auto ast = agent.wait(30s);
    EXPECT_TRUE(ast && WIFEXITED(*ast) && WEXITSTATUS(*ast) == 0) << both(alog);
}

// A system agent (root, in /run/plugmon, which only root may write) and a plugin of another user
// with no configuration: the plugin's own directory has no agent, so its probe tries the system
// agent's socket and attaches there.
TEST(runtime_dir, a_plugin_of_another_user_finds_the_system_agent_in_run_plugmon) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the agent as root, the plugin as nobody";
    std::string why;
    if (!private_tmp_and_run(why)) GTEST_SKIP() << "needs a private /run: " << why;
    temp_dir dir;
    ::chmod(dir.path().c_str(), 0755);
    const std::vector<std::string> env = bare_environment({});

    const std::string alog = dir.path() + "/agent.log";
    nobody_process agent({agent_binary(), "--listen", "127.0.0.1:0", "--drain-interval", "200us"},
                         env, alog, alog + ".err", false);
    const int port = http_port_of(agent, alog);
    if (const auto st = agent.wait(0ms); port == 0 && st && WIFEXITED(*st) && WEXITSTATUS(*st) == 127)
        GTEST_SKIP() << "cannot run " << agent_binary() << ": " << both(alog);
    ASSERT_NE(port, 0) << "the agent did not start: " << both(alog);
    struct stat st {};
    ASSERT_EQ(::stat("/run/plugmon/agent.sock", &st), 0)
        << "the root agent is not listening in /run/plugmon: " << both(alog);
    ASSERT_NE(::access("/run/plugmon", W_OK), -1);  // root may; nobody may not (mode 0755)

    const std::string llog = dir.path() + "/loadgen.out";
    nobody_process lg({loadgen_binary(), "--processes", "1", "--threads", "1", "--events", "5000",
                       "--plugins", "1", "--plugin-prefix", "other-user-", "--wait-attached", "10s",
                       "--json"},
                      env, llog, llog + ".err");
    const auto lst = lg.wait(120s);
    if (lst && WIFEXITED(*lst) && WEXITSTATUS(*lst) == 127)
        GTEST_SKIP() << "uid 65534 cannot run " << loadgen_binary() << ": " << both(llog);
    ASSERT_TRUE(lst && WIFEXITED(*lst) && WEXITSTATUS(*lst) == 0) << both(llog);
    const json child = loadgen_child(llog);
    ASSERT_FALSE(child.is_null()) << both(llog);
    EXPECT_TRUE(child["attached_at_start"].get<bool>())
        << "the plugin did not find the system agent: " << both(llog);
    const auto written = child["written"].get<std::uint64_t>();
    EXPECT_GT(written, 0u);
    const double drained = drained_when(port, written);
    EXPECT_EQ(drained, double(written)) << both(alog);
    ::kill(agent.pid(), SIGTERM);
    const auto ast = agent.wait(30s);
    EXPECT_TRUE(ast && WIFEXITED(*ast) && WEXITSTATUS(*ast) == 0) << both(alog);
}
