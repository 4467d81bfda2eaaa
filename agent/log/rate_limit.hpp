// Rate limiting of repeated log lines: at most one line per period for each key, and a count of
// the lines held back in between.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace plugmon::agent::log {

/// Decides, per key, whether a line may be written now. Thread-safe (one mutex).
class rate_limiter {
public:
    using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

    /// `clock` is injectable for tests; by default std::chrono::steady_clock::now.
    explicit rate_limiter(std::chrono::nanoseconds period, clock_fn clock = {});

    /// nullopt when a line with `key` was admitted less than a period ago (this one is counted as
    /// suppressed); otherwise the number of lines with `key` suppressed since the last admitted
    /// one. May throw std::bad_alloc.
    std::optional<std::uint64_t> admit(std::string_view key);

    /// Keys remembered at most; beyond it, keys idle for a period are forgotten first.
    static constexpr std::size_t max_keys = 4096;

private:
    struct entry {
        std::chrono::steady_clock::time_point last;
        std::uint64_t suppressed = 0;
    };
    void prune(std::chrono::steady_clock::time_point now);

    std::chrono::nanoseconds period_;
    clock_fn clock_;
    std::mutex mu_;
    std::unordered_map<std::string, entry> entries_;  // guarded by mu_
};

}  // namespace plugmon::agent::log
