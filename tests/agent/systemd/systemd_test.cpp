// sd_notify without libsystemd against a real AF_UNIX datagram socket (a path and an abstract
// name), the watchdog's environment and health decision, its pings and how it withholds them, and
// the drain's heartbeat it watches.
#include "app/systemd/notify.hpp"
#include "app/systemd/watchdog.hpp"

#include "agent/systemd/notify_socket.hpp"
#include "aggregate/series.hpp"
#include "ingest/drainer.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace sd = plugmon::agent::systemd;
using plugmon::test::notify_socket;
using namespace std::chrono_literals;

namespace {

/// A fresh directory for socket files, removed at the end.
struct socket_dir {
    std::string path;
    socket_dir() {
        char tmpl[] = "/tmp/plugmon-sd-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~socket_dir() { std::filesystem::remove_all(path); }
};

bool wait_for(const std::function<bool()>& pred, std::chrono::seconds limit = 20s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(2ms);
    }
    return pred();
}

}  // namespace

TEST(sd_notify, sends_one_datagram_to_a_socket_path) {
    socket_dir dir;
    notify_socket manager(dir.path + "/notify");
    sd::notifier n(manager.address());
    ASSERT_TRUE(n.enabled());
    std::string error;
    ASSERT_TRUE(n.send(sd::ready_message("listening"), &error)) << error;
    const auto m = manager.receive(10s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, "READY=1\nSTATUS=listening");
}

TEST(sd_notify, sends_to_an_abstract_socket_name) {
    const std::string name = "@plugmon-sd-test-" + std::to_string(::getpid());
    notify_socket manager(name);
    sd::notifier n(name);
    std::string error;
    ASSERT_TRUE(n.send(sd::stopping_message("SIGTERM"), &error)) << error;
    const auto m = manager.receive(10s);
    ASSERT_TRUE(m);
    EXPECT_TRUE(notify_socket::has_line(*m, "STOPPING=1")) << *m;
    EXPECT_EQ(notify_socket::value(*m, "STATUS"), "SIGTERM");
}

TEST(sd_notify, reports_a_socket_nobody_listens_on) {
    socket_dir dir;
    sd::notifier n(dir.path + "/nobody");
    std::string error;
    EXPECT_FALSE(n.send(sd::watchdog_message(), &error));
    EXPECT_FALSE(error.empty());
}

TEST(sd_notify, refuses_an_address_it_cannot_use) {
    EXPECT_THROW(sd::notifier("relative/notify"), std::invalid_argument);
    EXPECT_THROW(sd::notifier("@"), std::invalid_argument);
    EXPECT_THROW(sd::notifier("/" + std::string(200, 'x')), std::invalid_argument);
    try {
        sd::notifier("vsock:2:1234");
        FAIL() << "a vsock address was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("NOTIFY_SOCKET"), std::string::npos) << e.what();
    }
}

TEST(sd_notify, is_a_no_op_without_notify_socket) {
    ::unsetenv("NOTIFY_SOCKET");
    const sd::notifier n = sd::notifier::from_env();
    EXPECT_FALSE(n.enabled());
    EXPECT_TRUE(n.send(sd::ready_message("x")));
}

TEST(sd_notify, takes_the_address_from_notify_socket) {
    socket_dir dir;
    notify_socket manager(dir.path + "/notify");
    ::setenv("NOTIFY_SOCKET", manager.address().c_str(), 1);
    const sd::notifier n = sd::notifier::from_env();
    ::unsetenv("NOTIFY_SOCKET");
    ASSERT_TRUE(n.enabled());
    ASSERT_TRUE(n.send(sd::watchdog_message()));
    const auto m = manager.receive(10s);
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, "WATCHDOG=1");
}

TEST(sd_notify, messages_are_key_value_lines) {
    const auto ready = sd::ready_message("line one\nline two");
    EXPECT_EQ(notify_socket::value(ready, "STATUS"), "line one line two");
    const auto before = sd::monotonic_usec();
    const auto reloading = sd::reloading_message(sd::monotonic_usec());
    EXPECT_TRUE(notify_socket::has_line(reloading, "RELOADING=1"));
    const auto usec = std::stoull(notify_socket::value(reloading, "MONOTONIC_USEC"));
    EXPECT_GE(usec, before);
    EXPECT_LE(usec, sd::monotonic_usec());
}

TEST(sd_watchdog, reads_watchdog_usec_and_pid) {
    EXPECT_FALSE(sd::watchdog_timeout(nullptr, nullptr, 100));
    EXPECT_FALSE(sd::watchdog_timeout("", nullptr, 100));
    EXPECT_EQ(sd::watchdog_timeout("30000000", nullptr, 100), 30s);
    EXPECT_EQ(sd::watchdog_timeout("30000000", "100", 100), 30s);
    EXPECT_FALSE(sd::watchdog_timeout("30000000", "101", 100));  // meant for another process
    EXPECT_THROW(sd::watchdog_timeout("30s", nullptr, 100), std::invalid_argument);
    EXPECT_THROW(sd::watchdog_timeout("0", nullptr, 100), std::invalid_argument);
    EXPECT_THROW(sd::watchdog_timeout("-5", nullptr, 100), std::invalid_argument);
    EXPECT_THROW(sd::watchdog_timeout("1000", "me", 100), std::invalid_argument);
}

TEST(sd_watchdog, judges_the_drain_by_its_last_pass) {
    const auto now = std::chrono::steady_clock::now();
    EXPECT_FALSE(sd::drain_unhealthy(true, now - 1s, now, 15s));
    const auto stale = sd::drain_unhealthy(true, now - 20s, now, 15s);
    ASSERT_TRUE(stale);
    EXPECT_NE(stale->find("has not completed a pass"), std::string::npos) << *stale;
    const auto stopped = sd::drain_unhealthy(false, now, now, 15s);
    ASSERT_TRUE(stopped);
    EXPECT_NE(stopped->find("not running"), std::string::npos) << *stopped;
}

// The real drain's heartbeat: it advances while the thread runs, and a stopped drain is unhealthy.
TEST(sd_watchdog, the_drain_heartbeat_advances_while_it_runs) {
    plugmon::agent::series_registry series(
        plugmon::agent::bucket_bounds::from_seconds({0.001, 0.01}, {0.01, 0.1}));
    plugmon::agent::drain d(series, {});
    d.start();
    const auto first = d.totals().last_pass();
    ASSERT_TRUE(wait_for([&] { return d.totals().last_pass() > first; }));
    const auto later = d.totals().last_pass();
    ASSERT_TRUE(wait_for([&] { return d.totals().last_pass() > later; }));
    EXPECT_FALSE(sd::drain_unhealthy(d.running(), d.totals().last_pass(),
                                     std::chrono::steady_clock::now(), 60s));
    ASSERT_TRUE(d.stop(20s));
    EXPECT_TRUE(sd::drain_unhealthy(d.running(), d.totals().last_pass(),
                                    std::chrono::steady_clock::now(), 60s));
}

// Pings while healthy, none while the check fails (withheld ticks are counted), pings again after.
TEST(sd_watchdog, pings_only_while_the_check_passes) {
    socket_dir dir;
    notify_socket manager(dir.path + "/notify");
    sd::notifier n(manager.address());
    std::atomic<bool> healthy{true};
    boost::asio::io_context io;
    sd::watchdog w(io, n, 5ms, [&]() -> std::optional<std::string> {
        if (healthy.load()) return std::nullopt;
        return std::string("the test says so");
    });
    boost::asio::post(io, [&] { w.start(); });
    std::thread loop([&] { io.run(); });

    ASSERT_TRUE(manager.wait_for("WATCHDOG=1", 20s));
    ASSERT_TRUE(manager.wait_for("WATCHDOG=1", 20s));
    healthy = false;
    ASSERT_TRUE(wait_for([&] { return w.withheld() >= 1; }));
    while (manager.receive(0ms)) {
    }  // pings sent before the first withheld tick
    const auto pings = w.pings();
    ASSERT_TRUE(wait_for([&] { return w.withheld() >= 4; }));
    EXPECT_EQ(w.pings(), pings);
    EXPECT_FALSE(manager.receive(0ms)) << "a ping was sent while the check failed";

    healthy = true;
    EXPECT_TRUE(manager.wait_for("WATCHDOG=1", 20s));
    EXPECT_GT(w.pings(), pings);
    boost::asio::post(io, [&] { w.stop(); });
    loop.join();  // stop() cancels the only pending work: run() returns
}
