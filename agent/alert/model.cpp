// Names of the alert model's enumerations, as rules files, the API and the payloads spell them.
#include "alert/model.hpp"

#include <array>

namespace plugmon::agent::alert {

namespace {

constexpr std::array<std::string_view, severity_count> severity_names = {"info", "warning",
                                                                         "critical"};
constexpr std::array<std::string_view, rule_kind_count> kind_names = {
    "error_ratio",  "latency_quantile", "slow_rate",   "cpu_rate",        "heap_bytes",
    "heap_leak",    "process_rss",      "process_fds", "process_threads", "pool_utilization",
    "pool_waiting", "ring_drops",       "store_down",  "watchdog"};
constexpr std::array<std::string_view, 3> receiver_names = {"alertmanager", "webhook", "slack"};
constexpr std::array<std::string_view, 4> state_names = {"inactive", "pending", "firing",
                                                         "resolved"};
constexpr std::array<std::string_view, event_kind_count> event_names = {
    "firing",         "resolved",  "severity_changed", "acknowledged",
    "unacknowledged", "escalated", "reminder",         "flapping"};

template <class E, std::size_t N>
std::optional<E> find_name(const std::array<std::string_view, N>& names, std::string_view text) {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == text) return E(i);
    return std::nullopt;
}

}  // namespace

std::string_view to_string(severity s) { return severity_names.at(std::size_t(s)); }
std::optional<severity> severity_from(std::string_view text) {
    return find_name<severity>(severity_names, text);
}
std::string_view to_string(rule_kind k) { return kind_names.at(std::size_t(k)); }
std::optional<rule_kind> rule_kind_from(std::string_view text) {
    return find_name<rule_kind>(kind_names, text);
}
std::string_view to_string(receiver_type t) { return receiver_names.at(std::size_t(t)); }
std::string_view to_string(alert_state s) { return state_names.at(std::size_t(s)); }
std::string_view to_string(event_kind e) { return event_names.at(std::size_t(e)); }

}  // namespace plugmon::agent::alert
