// One alert: its state machine (pending, firing, resolved; levels with hysteresis; `for`,
// `keep_firing_for`, no data) as a pure function of the rule, the measurement and the time.
#pragma once

#include "alert/model.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace plugmon::agent::alert {

struct measurement;

/// What one receiver has been told about the current episode.
struct receiver_progress {
    int status = 0;  ///< 0 nothing (or resolved), 1 + severity: firing at that level
    time_point last_sent{};
};

/// A line of an alert's history: a state change or a notification event.
struct history_entry {
    time_point at{};
    std::string what;  ///< "pending", "firing", "resolved", "inactive", or an event name
    severity level = severity::warning;
    double value = 0;
    std::string detail;
};

/// Everything about one alert that must survive a restart.
struct instance {
    std::string fingerprint, rule;
    label_set labels;  ///< identity (no severity)
    alert_state state = alert_state::inactive;
    severity level = severity::warning;
    std::optional<severity> lowering;  ///< a lower level the value has reached, since...
    time_point lowering_since{};
    std::array<bool, severity_count> level_on{};  ///< hysteresis: each level's trigger holds
    double value = 0;
    std::uint64_t samples = 0;
    std::string episode;
    time_point active_at{}, fired_at{}, resolved_at{}, keep_firing_since{}, last_data_at{};
    std::optional<ack_info> ack;

    // Notification bookkeeping (engine.cpp).
    int notified_status = 0;            ///< what receivers should hear: 0 clear, 1 + level firing
    std::optional<int> pending_status;  ///< waiting for its netdata delay
    time_point pending_due{}, delay_up_to{};
    nanoseconds up_cur{0}, down_cur{0};
    std::map<std::string, receiver_progress, std::less<>> receivers;
    std::deque<time_point> flips;  ///< firing and resolved transitions within the flap window
    bool flapping = false;
    int escalation_step = 0, escalation_loop = 0;
    std::uint32_t escalation_fired = 0;  ///< levels fired in this loop (bit per level)
    std::deque<history_entry> history;   ///< newest last, at most history_limit
    std::uint64_t remembered = 0;        ///< entries ever added to history

    static constexpr std::size_t history_limit = 50;
    void remember(time_point at, std::string what, std::string detail = {});
    /// 0 when not firing, else 1 + level.
    int firing_status() const { return state == alert_state::firing ? 1 + int(level) : 0; }
};

/// The highest level whose condition holds for `value`, updating the hysteresis flags; nullopt
/// when none holds.
std::optional<severity> levels_holding(instance& a, const rule& r, double value);

/// Advances `a` by one evaluation at `now`. `m` is the group's measurement, or null when the
/// group had no series in the rule's `over`. Returns true when the state changed. Starting a
/// new episode calls `new_episode`.
bool step(instance& a, const rule& r, const measurement* m, time_point now,
          const std::function<std::string()>& new_episode);

/// FNV-1a 64 over the sorted labels (name, value, separators), as 16 hex digits.
std::string fingerprint_of(const label_set& labels);

}  // namespace plugmon::agent::alert
