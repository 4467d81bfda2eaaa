// Per-key rate limiting of log lines with suppression counts.
#include "log/rate_limit.hpp"

namespace plugmon::agent::log {

rate_limiter::rate_limiter(std::chrono::nanoseconds period, clock_fn clock)
    : period_(period), clock_(clock ? std::move(clock) : clock_fn(std::chrono::steady_clock::now)) {
}

std::optional<std::uint64_t> rate_limiter::admit(std::string_view key) {
    const auto now = clock_();
    std::lock_guard lock(mu_);
    auto it = entries_.find(std::string(key));
    if (it == entries_.end()) {
        if (entries_.size() >= max_keys) prune(now);
        entries_.emplace(std::string(key), entry{now, 0});
        return std::uint64_t{0};
    }
    if (now - it->second.last < period_) {
        ++it->second.suppressed;
        return std::nullopt;
    }
    const std::uint64_t held = it->second.suppressed;
    it->second = entry{now, 0};
    return held;
}

void rate_limiter::prune(std::chrono::steady_clock::time_point now) {
    std::erase_if(entries_, [&](const auto& kv) {
        return kv.second.suppressed == 0 && now - kv.second.last >= period_;
    });
    if (entries_.size() >= max_keys) entries_.clear();  // a flood of distinct keys: start over
}

}  // namespace plugmon::agent::log
