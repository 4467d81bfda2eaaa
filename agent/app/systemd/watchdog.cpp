// The watchdog's schedule, its health decision and the parsing of WATCHDOG_USEC / WATCHDOG_PID.
#include "app/systemd/watchdog.hpp"

#include "common/duration.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include <unistd.h>

namespace plugmon::agent::systemd {

namespace {

/// A positive decimal number, or std::invalid_argument naming `name`.
unsigned long long positive(const char* name, const char* text) {
    errno = 0;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (*text < '0' || *text > '9' || *end != '\0' || errno == ERANGE || v == 0)
        throw std::invalid_argument(std::string(name) + ": \"" + text +
                                    "\" is not a positive whole number");
    return v;
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_timeout(const char* usec, const char* pid,
                                                          pid_t self) {
    if (usec == nullptr || *usec == '\0') return std::nullopt;
    const auto timeout = positive("WATCHDOG_USEC", usec);
    if (pid != nullptr && *pid != '\0' && positive("WATCHDOG_PID", pid) != (unsigned long long)self)
        return std::nullopt;  // the watchdog belongs to another process (our parent or child)
    return std::chrono::microseconds(timeout);
}

std::optional<std::chrono::microseconds> watchdog_timeout_from_env() {
    try {
        return watchdog_timeout(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                ::getpid());
    } catch (const std::exception& e) {
        spdlog::error("systemd: {}; the watchdog is off", e.what());
        return std::nullopt;
    }
}

std::optional<std::string> drain_unhealthy(bool running,
                                           std::chrono::steady_clock::time_point last_pass,
                                           std::chrono::steady_clock::time_point now,
                                           std::chrono::nanoseconds max_age) {
    if (!running) return std::string("the drain thread is not running");
    if (now - last_pass > max_age)
        return "the drain has not completed a pass for " +
               format_duration(
                   std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_pass)) +
               " (limit " + format_duration(max_age) + ")";
    return std::nullopt;
}

watchdog::watchdog(boost::asio::io_context& io, const notifier& n,
                   std::chrono::microseconds interval, health_check check)
    : timer_(io), notifier_(n), interval_(interval), check_(std::move(check)) {}

void watchdog::start() {
    stopped_ = false;
    arm();  // the first ping one interval from now: well within the timeout, and the drain has
            // had time for its first pass
}

void watchdog::stop() {
    stopped_ = true;
    timer_.cancel();
}

void watchdog::tick() {
    if (stopped_) return;
    std::optional<std::string> why;
    try {
        why = check_();
    } catch (const std::exception& e) {
        why = std::string("the health check failed: ") + e.what();
    }
    if (why) {
        withheld_.fetch_add(1, std::memory_order_relaxed);
        if (!withholding_)
            spdlog::error(
                "systemd: withholding the watchdog ping: {}; systemd restarts the agent "
                "when the watchdog timeout passes",
                *why);
        withholding_ = true;
    } else {
        if (withholding_)
            spdlog::warn("systemd: the drain is healthy again; watchdog pings resume");
        withholding_ = false;
        std::string error;
        if (notifier_.send(watchdog_message(), &error)) {
            pings_.fetch_add(1, std::memory_order_relaxed);
            send_failed_ = false;
        } else if (!send_failed_) {
            spdlog::error("systemd: cannot send WATCHDOG=1 to {}: {}", notifier_.address(), error);
            send_failed_ = true;
        }
    }
    arm();
}

void watchdog::arm() {
    timer_.expires_after(interval_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) tick();
    });
}

}  // namespace plugmon::agent::systemd
