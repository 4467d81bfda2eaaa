// The runtime-directory rule (plugmon/runtime_dir.hpp) that the probe and the agent share: each
// branch as root and as an unprivileged user (nobody), and, as that user, the agent's default
// runtime_dir is where the real probe goes looking for the agent.
#include <plugmon/probe.hpp>
#include <plugmon/runtime_dir.hpp>

#ifdef PLUGMON_TEST_AGENT_CONFIG
#include "config/config.hpp"
#include "support/scoped_env.hpp"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

constexpr uid_t nobody = 65534;
constexpr gid_t nogroup = 65534;

/// The rule through both of its forms (string and fixed buffer); fails the test if they differ.
std::string rule(const char* system_dir) {
    const std::string s = plugmon::detail::runtime_dir_string(system_dir);
    char buf[4096];
    const std::size_t n = plugmon::detail::format_runtime_dir(
        plugmon::detail::choose_runtime_dir(system_dir), buf, sizeof buf);
    EXPECT_EQ(std::string(buf, n), s) << "the buffer and the string forms disagree";
    return s;
}

using plugmon::test::scoped_env;

/// A directory tree every user can search: root/ (0755), holding the test's system directories.
class dirs {
public:
    dirs() {
        char tmpl[] = "/tmp/plugmon-rtdir-test-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        root_ = tmpl;
        ::chmod(root_.c_str(), 0755);
    }
    ~dirs() {
        std::error_code ec;
        std::filesystem::remove_all(root_, ec);
    }
    /// A directory under root with this mode and group.
    std::string make(const std::string& name, mode_t mode, gid_t group = 0) const {
        const std::string p = root_ + "/" + name;
        ::mkdir(p.c_str(), 0700);
        if (::chown(p.c_str(), 0, group) != 0) return p;
        ::chmod(p.c_str(), mode);
        return p;
    }
    const std::string& root() const { return root_; }

private:
    std::string root_;
};

/// Runs `body` in a child as nobody:nogroup with no supplementary groups and without HOME,
/// XDG_RUNTIME_DIR and PLUGMON_RUNTIME_DIR. body returns "key=value" lines; the parent gets them
/// as a map. Returns nullopt (with a reason) when the child could not become nobody.
template <class F>
std::optional<std::map<std::string, std::string>> as_nobody(F body, std::string& why) {
    int fds[2];
    if (::pipe(fds) != 0) {
        why = "pipe failed";
        return std::nullopt;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        std::string out;
        if (::setgroups(0, nullptr) != 0 || ::setgid(nogroup) != 0 || ::setuid(nobody) != 0) {
            out = "error=cannot become uid 65534: " + std::string(std::strerror(errno)) + "\n";
        } else {
            ::unsetenv("HOME");
            ::unsetenv("XDG_RUNTIME_DIR");
            ::unsetenv("PLUGMON_RUNTIME_DIR");
            out = body();
        }
        const ssize_t w = ::write(fds[1], out.data(), out.size());
        ::_exit(w == ssize_t(out.size()) ? 0 : 1);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, std::size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::map<std::string, std::string> kv;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t end = std::min(text.find('\n', pos), text.size());
        const std::string line = text.substr(pos, end - pos);
        if (const auto eq = line.find('='); eq != std::string::npos)
            kv[line.substr(0, eq)] = line.substr(eq + 1);
        pos = end + 1;
    }
    if (kv.count("error") != 0) {
        why = kv["error"];
        return std::nullopt;
    }
    return kv;
}

std::string line(const std::string& key, const std::string& value) {
    return key + "=" + value + "\n";
}

}  // namespace

TEST(runtime_dir, the_environment_variable_wins) {
    scoped_env env("PLUGMON_RUNTIME_DIR", "/srv/plugmon");
    scoped_env xdg("XDG_RUNTIME_DIR", "/run/user/4242");
    EXPECT_EQ(rule("/nonexistent/plugmon"), "/srv/plugmon");
    char buf[64];
    EXPECT_EQ(plugmon::runtime_dir(buf, sizeof buf), std::strlen("/srv/plugmon"));
    EXPECT_STREQ(buf, "/srv/plugmon");
    EXPECT_EQ(plugmon::runtime_dir(), "/srv/plugmon");
}

TEST(runtime_dir, an_empty_variable_is_unset_and_a_short_buffer_gives_zero) {
    scoped_env env("PLUGMON_RUNTIME_DIR", "");
    scoped_env xdg("XDG_RUNTIME_DIR", "/run/user/4242");
    const std::string want = ::geteuid() == 0 ? "/nonexistent/plugmon" : "/run/user/4242/plugmon";
    EXPECT_EQ(rule("/nonexistent/plugmon"), want);
    char buf[8];
    EXPECT_EQ(plugmon::detail::format_runtime_dir(
                  plugmon::detail::choose_runtime_dir("/nonexistent/plugmon"), buf, sizeof buf),
              0u);
    EXPECT_EQ(plugmon::detail::format_runtime_dir(
                  plugmon::detail::choose_runtime_dir("/nonexistent/plugmon"), buf, 0),
              0u);
}

TEST(runtime_dir, root_always_takes_the_system_directory) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (euid 0)";
    scoped_env env("PLUGMON_RUNTIME_DIR", nullptr);
    scoped_env xdg("XDG_RUNTIME_DIR", "/run/user/0");
    EXPECT_EQ(rule("/nonexistent/plugmon"), "/nonexistent/plugmon");
    EXPECT_EQ(plugmon::runtime_dir(), "/run/plugmon");
}

// The defect this rule fixes: a system directory present but not writable made the probe look
// there while the same user's agent listened elsewhere.
TEST(runtime_dir, an_unprivileged_user_takes_the_system_directory_only_when_it_may_write_there) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as uid 65534 (nobody)";
    const dirs d;
    const std::string system = d.make("system", 0755);           // a system agent's, not ours
    const std::string shared = d.make("shared", 0770, nogroup);  // shared with our group
    const std::string xdg = d.make("xdg", 0700);
    std::string why;
    const auto got = as_nobody(
        [&] {
            const std::string missing = d.root() + "/missing";
            std::string out = line("system", rule(system.c_str()));
            out += line("shared", rule(shared.c_str()));
            out += line("missing", rule(missing.c_str()));
            ::setenv("XDG_RUNTIME_DIR", xdg.c_str(), 1);
            out += line("system_xdg", rule(system.c_str()));
            out += line("shared_xdg", rule(shared.c_str()));
            ::setenv("PLUGMON_RUNTIME_DIR", "/srv/pm", 1);
            out += line("env", rule(shared.c_str()));
            return out;
        },
        why);
    if (!got) GTEST_SKIP() << why;
    auto m = *got;
    EXPECT_EQ(m["system"], "/tmp/plugmon-65534");
    EXPECT_EQ(m["shared"], shared);
    EXPECT_EQ(m["missing"], "/tmp/plugmon-65534");
    EXPECT_EQ(m["system_xdg"], xdg + "/plugmon");
    EXPECT_EQ(m["shared_xdg"], shared);
    EXPECT_EQ(m["env"], "/srv/pm");
}

#ifdef PLUGMON_TEST_AGENT_CONFIG
// The agent's default runtime_dir is where the real probe looks: a socket listening there (as the
// agent would) sees the probe connect, with no PLUGMON_RUNTIME_DIR and no configuration.
TEST(runtime_dir, the_agents_default_is_where_the_probe_connects_for_an_unprivileged_user) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as uid 65534 (nobody)";
    const dirs d;
    const std::string xdg = d.make("xdg", 0700);
    if (::chown(xdg.c_str(), nobody, nogroup) != 0) GTEST_SKIP() << "cannot chown to nobody";
    std::string why;
    const auto got = as_nobody(
        [&] {
            ::setenv("XDG_RUNTIME_DIR", xdg.c_str(), 1);  // a private directory: no other run
            const std::string agent_dir = plugmon::agent::default_runtime_dir();
            std::string out = line("agent", agent_dir) + line("rule", plugmon::runtime_dir());
            ::mkdir(agent_dir.c_str(), 0700);
            const std::string path = agent_dir + "/" + plugmon::layout::socket_name;
            const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
            if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s, 4) != 0)
                return out + line("listen", std::strerror(errno));
            // No welcome comes back, so this fails after 300 ms; the connection is what counts.
            plugmon::flush_to_agent(std::chrono::milliseconds(300));
            pollfd p{s, POLLIN, 0};
            return out + line("probe_connected", ::poll(&p, 1, 2000) == 1 ? "yes" : "no");
        },
        why);
    if (!got) GTEST_SKIP() << why;
    auto m = *got;
    EXPECT_EQ(m["agent"], xdg + "/plugmon");
    EXPECT_EQ(m["rule"], m["agent"]);
    EXPECT_EQ(m.count("listen"), 0u) << m["listen"];
    EXPECT_EQ(m["probe_connected"], "yes");
}
#endif
