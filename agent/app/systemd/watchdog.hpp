// The systemd watchdog: WATCHDOG=1 every WATCHDOG_USEC/2, sent only while a health check (the
// drain's heartbeat) passes, so a stuck drain gets the agent restarted.
#pragma once

#include "app/systemd/notify.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <sys/types.h>

namespace plugmon::agent::systemd {

/// The watchdog timeout systemd asks for, from the values of $WATCHDOG_USEC and $WATCHDOG_PID
/// (either may be null): nullopt when there is none, or it is meant for another process
/// (WATCHDOG_PID set and not `self`). Throws std::invalid_argument naming the variable when a
/// value is not a positive number.
std::optional<std::chrono::microseconds> watchdog_timeout(const char* usec, const char* pid,
                                                          pid_t self);
/// The same from this process's environment; a bad value is logged and means no watchdog.
std::optional<std::chrono::microseconds> watchdog_timeout_from_env();

/// The drain's health as the watchdog judges it: nullopt when healthy, else why not. Unhealthy
/// when the drain thread is not running, or its last completed pass is older than `max_age`.
std::optional<std::string> drain_unhealthy(bool running,
                                           std::chrono::steady_clock::time_point last_pass,
                                           std::chrono::steady_clock::time_point now,
                                           std::chrono::nanoseconds max_age);

/// Sends WATCHDOG=1 every `interval` on `io`'s thread while `check` returns nullopt; withholds it
/// (logged once per episode, with the reason) while `check` returns a reason.
/// Thread safety: construct, start() and stop() on `io`'s thread or before it runs; pings() and
/// withheld() from any thread.
class watchdog {
public:
    using health_check = std::function<std::optional<std::string>()>;
    watchdog(boost::asio::io_context& io, const notifier& n, std::chrono::microseconds interval,
             health_check check);
    /// A tick every interval from now on.
    void start();
    void stop();
    /// WATCHDOG=1 datagrams sent, and ticks at which one was withheld.
    std::uint64_t pings() const { return pings_.load(std::memory_order_relaxed); }
    std::uint64_t withheld() const { return withheld_.load(std::memory_order_relaxed); }

private:
    void tick();
    void arm();

    boost::asio::steady_timer timer_;
    const notifier& notifier_;
    std::chrono::microseconds interval_;
    health_check check_;
    bool stopped_ = true;
    bool withholding_ = false;
    bool send_failed_ = false;
    std::atomic<std::uint64_t> pings_{0};
    std::atomic<std::uint64_t> withheld_{0};
};

}  // namespace plugmon::agent::systemd
