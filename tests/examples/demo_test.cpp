// plugmon-demo against a real PostgreSQL, no agent: what it reports is what the database holds.
#include "support/pg_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using plugmon::test::pg_server;

/// An empty directory for the test's lifetime.
struct runtime_dir {
    std::string path;
    runtime_dir() {
        char tmpl[] = "/tmp/plugmon-demo-test.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~runtime_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

/// A running plugmon-demo with its stdout (and, if asked, its stderr) on a pipe.
class demo_process {
public:
    demo_process(const std::vector<std::string>& args, bool merge_stderr) {
        // No agent: a runtime directory of its own, where nothing listens.
        static const runtime_dir runtime;
        ::setenv("PLUGMON_RUNTIME_DIR", runtime.path.c_str(), 1);

        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        if (merge_stderr) posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
        std::vector<std::string> argv_text{PLUGMON_DEMO_BIN};
        argv_text.insert(argv_text.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argv_text) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc =
            ::posix_spawn(&pid_, PLUGMON_DEMO_BIN, &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        if (rc != 0) {
            ::close(fds[0]);
            throw std::runtime_error("cannot start " + std::string(PLUGMON_DEMO_BIN));
        }
        out_fd_ = fds[0];
    }
    ~demo_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (out_fd_ >= 0) ::close(out_fd_);
    }
    demo_process(const demo_process&) = delete;
    demo_process& operator=(const demo_process&) = delete;

    void signal(int sig) const { ::kill(pid_, sig); }

    /// Reads its output to the end and reaps it; the exit status, or 128 + signal.
    int finish() {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(out_fd_, buf, sizeof buf);
            if (n > 0) {
                output_.append(buf, std::size_t(n));
            } else if (n == 0 || errno != EINTR) {
                break;
            }
        }
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    const std::string& output() const { return output_; }

    /// The last line of its output, parsed as JSON.
    nlohmann::json report() const {
        std::string text = output_;
        while (!text.empty() && text.back() == '\n') text.pop_back();
        return nlohmann::json::parse(text.substr(text.rfind('\n') + 1));
    }

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::string output_;
};

const std::vector<std::string> plugin_names{"billing", "search", "reports", "audit"};

/// A loopback port where nothing listens (bound, then released).
int closed_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("cannot bind a loopback port");
    ::close(s);
    return ntohs(a.sin_port);
}

long long count(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<long long>();
}

TEST(demo, runs_real_sql_through_the_probe_and_stores_what_it_reports) {
    const std::string url = pg_server::shared().create_database("demo");
    demo_process demo(
        {"--postgres", url, "--duration", "3s", "--json", "--rate", "100", "--seed", "7"}, false);
    ASSERT_EQ(demo.finish(), 0) << demo.output();
    const nlohmann::json r = demo.report();
    ASSERT_TRUE(r.at("ok").get<bool>()) << r.dump();

    for (const auto& name : plugin_names) {
        const auto& p = r.at("plugins").at(name);
        SCOPED_TRACE(name + ": " + p.dump());
        // ~300 executions at 100/s for 3 s; 50 leaves room for a busy machine and still
        // guarantees the planned failures below (every 10th, 20th and 25th execution)
        EXPECT_GE(p.at("executions").get<long long>(), 50);
        EXPECT_GE(p.at("queries").get<long long>(), p.at("executions").get<long long>() - 1);
        EXPECT_EQ(p.at("unexpected_errors").get<long long>(), 0);
        EXPECT_EQ(p.at("connection_errors").get<long long>(), 0);
    }
    const auto& billing = r.at("plugins").at("billing");
    const auto& audit = r.at("plugins").at("audit");
    const auto& reports = r.at("plugins").at("reports");
    EXPECT_GE(billing.at("failed_executions").get<long long>(), 1)
        << "the missing-column statement";
    EXPECT_EQ(billing.at("errors"), billing.at("planned_errors"));
    EXPECT_GE(audit.at("errors").get<long long>(), 1) << "the duplicate event";
    EXPECT_EQ(audit.at("failed_executions").get<long long>(), 0) << "audit handles its duplicates";
    EXPECT_GE(reports.at("slow").get<long long>(), 1);

    // No agent: nothing attached, yet every recorded event is accounted for by the probe.
    const auto& probe = r.at("probe");
    EXPECT_FALSE(probe.at("attached").get<bool>());
    EXPECT_GT(probe.at("recorded").get<long long>(), 0);
    EXPECT_EQ(probe.at("recorded").get<long long>(),
              probe.at("written").get<long long>() + probe.at("dropped").get<long long>());

    // The database holds what the plugins say they did.
    const long long run_id = r.at("run_id").get<long long>();
    const long long inserted = audit.at("inserted").get<long long>();
    EXPECT_GT(inserted, 0);
    EXPECT_EQ(
        count(url, "SELECT count(*) FROM demo.audit_log WHERE run_id = " + std::to_string(run_id)),
        inserted);
    EXPECT_EQ(count(url, "SELECT count(*) FROM demo.audit_log"), inserted);
    EXPECT_EQ(count(url, "SELECT count(DISTINCT tenant) FROM demo.customers"), 3);
}

TEST(demo, a_second_run_reuses_the_schema_and_its_seeded_rows) {
    const std::string url = pg_server::shared().create_database("demo_again");
    demo_process first({"--postgres", url, "--duration", "1s", "--json"}, false);
    ASSERT_EQ(first.finish(), 0) << first.output();
    const long long customers = count(url, "SELECT count(*) FROM demo.customers");
    const long long documents = count(url, "SELECT count(*) FROM demo.documents");
    EXPECT_GT(customers, 0);
    EXPECT_GT(documents, 0);

    demo_process second({"--postgres", url, "--duration", "1s", "--json"}, false);
    ASSERT_EQ(second.finish(), 0) << second.output();
    EXPECT_NE(first.report().at("run_id"), second.report().at("run_id"));
    EXPECT_EQ(count(url, "SELECT count(*) FROM demo.customers"), customers);
    EXPECT_EQ(count(url, "SELECT count(*) FROM demo.documents"), documents);
    EXPECT_EQ(count(url, "SELECT count(*) FROM demo.runs"), 2);
}

TEST(demo, sigterm_stops_it_and_it_still_prints_the_summary) {
    const std::string url = pg_server::shared().create_database("demo_signal");
    demo_process demo({"--postgres", url, "--duration", "0", "--json"}, false);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // connected, seeded, running
    demo.signal(SIGTERM);
    ASSERT_EQ(demo.finish(), 0) << demo.output();
    const nlohmann::json r = demo.report();
    EXPECT_TRUE(r.at("stopped_by_signal").get<bool>());
    EXPECT_GT(r.at("total").at("executions").get<long long>(), 0);
}

TEST(demo, an_unreachable_database_exits_1_without_printing_the_password) {
    const std::string secret = "S3cretPassw0rdForTheDemo";
    const std::string url = "postgresql://plugmon:" + secret +
                            "@127.0.0.1:" + std::to_string(closed_port()) + "/plugmon";
    demo_process demo({"--postgres", url, "--duration", "1s"}, true);
    EXPECT_EQ(demo.finish(), 1);
    EXPECT_NE(demo.output().find("cannot connect to PostgreSQL"), std::string::npos)
        << demo.output();
    EXPECT_NE(demo.output().find("plugmon:***@127.0.0.1"), std::string::npos) << demo.output();
    EXPECT_EQ(demo.output().find(secret), std::string::npos) << demo.output();
}

TEST(demo, bad_flags_exit_2_and_name_the_flag) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--duration", "1s"}, "--postgres"},
        {{"--postgres", "postgresql://x@127.0.0.1/x", "--duration", "5q"}, "--duration"},
        {{"--postgres", "postgresql://x@127.0.0.1/x", "--tenants", "0"}, "--tenants"},
        {{"--postgres", "postgresql://x@127.0.0.1/x", "--rate", "-1"}, "--rate"},
    };
    for (const auto& [args, flag] : cases) {
        demo_process demo(args, true);
        EXPECT_EQ(demo.finish(), 2) << flag << ": " << demo.output();
        EXPECT_NE(demo.output().find(flag), std::string::npos) << demo.output();
    }
}

}  // namespace
