// The HTTP listener's own metrics: requests by route and status, latency, auth failures and the
// server's connection counters, rendered as Prometheus text.
#pragma once

#include "web/server/http.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent {

/// Why a request was refused for its credentials: plugmon_http_auth_failures_total{reason}.
enum class auth_failure {
    missing_token,       ///< the route needs a token and none was sent
    invalid_token,       ///< not a Bearer token, or no token has this secret
    insufficient_scope,  ///< a valid token without the scope the route needs
    query_token,         ///< a token in the URL (refused, never used)
    rate_limited,        ///< too many failures from this client lately (429)
};
inline constexpr std::size_t auth_failure_reasons = 5;

/// "missing_token", "invalid_token", ...
std::string_view to_string(auth_failure reason);

/// Counters of the requests the security layer answered. Every member is thread-safe (atomics);
/// the handler names are fixed at construction.
class http_metrics {
public:
    /// Upper bounds of the request duration histogram, in seconds.
    static constexpr std::array<double, 8> buckets = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

    /// `handlers`: the route names; "not_found" is added for requests no route matched.
    explicit http_metrics(const std::vector<std::string>& handlers);

    /// One answered request. An unknown handler name counts as "not_found".
    void observe(std::string_view handler, unsigned status, std::chrono::nanoseconds took);
    void count(auth_failure reason);
    /// The server whose connection counters to render too. Call before requests are served.
    void attach(std::shared_ptr<const http_counters> server);

    /// Requests answered so far by `handler` with `status` (0 when never).
    std::uint64_t requests(std::string_view handler, unsigned status) const;
    std::uint64_t auth_failures(auth_failure reason) const;

    /// Appends the families plugmon_http_requests_total, plugmon_http_request_duration_seconds,
    /// plugmon_http_auth_failures_total and the server's counters.
    void render(std::string& out) const;

private:
    static constexpr unsigned first_status = 100;
    static constexpr unsigned status_count = 500;  // 100..599

    struct per_handler {
        std::string name;
        std::array<std::atomic<std::uint64_t>, status_count> by_status{};
        std::array<std::atomic<std::uint64_t>, buckets.size()> in_bucket{};
        std::atomic<std::uint64_t> count{0};
        std::atomic<std::uint64_t> sum_ns{0};
    };

    per_handler& find(std::string_view handler);
    const per_handler* lookup(std::string_view handler) const;
    void render_requests(std::string& out) const;
    void render_durations(std::string& out) const;
    void render_server(std::string& out) const;

    std::vector<std::unique_ptr<per_handler>> handlers_;
    std::array<std::atomic<std::uint64_t>, auth_failure_reasons> auth_failures_{};
    mutable std::mutex server_mutex_;
    std::shared_ptr<const http_counters> server_;
};

}  // namespace plugmon::agent
