// What an Alertmanager receiver has been told: the latest state per alert and severity label set,
// re-sent every resend_interval (firing) or for resolved_resend_for after resolving.
#pragma once

#include "alert/model.hpp"
#include "alert/notify/payloads.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace plugmon::agent::alert::notify {

/// The state table of one Alertmanager receiver. Alertmanager is state-based, so queued events
/// coalesce here: only the latest state per fingerprint matters. An entry is keyed by
/// fingerprint and severity, because severity is an Alertmanager label: a severity change
/// resolves the old label set (endsAt = now) and starts the new one.
///
/// Thread safety: none; the owner serialises access.
class am_table {
public:
    struct entry {
        std::string fingerprint;
        label_set labels;  ///< with severity
        label_set annotations;
        time_point starts_at{};
        std::optional<time_point> ends_at;  ///< set once resolved
    };

    /// Applies one event (older or repeated sequences for a fingerprint are ignored). Returns
    /// whether the table changed. `now` is used as endsAt of a superseded severity.
    bool apply(const notification& n, time_point now);

    /// Drops entries resolved more than `resolved_resend_for` ago; returns whether any went.
    bool expire(time_point now, std::chrono::nanoseconds resolved_resend_for);

    /// Every entry as a postableAlert: firing ones end at now + 4 x resend_interval.
    std::vector<am_alert> alerts(time_point now, std::chrono::nanoseconds resend_interval,
                                 const std::string& external_url) const;

    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    const std::map<std::string, entry>& entries() const { return entries_; }

    nlohmann::json to_json() const;
    /// Throws nlohmann::json::exception or std::invalid_argument for a malformed table.
    static am_table from_json(const nlohmann::json& j);

private:
    std::map<std::string, entry> entries_;                // fingerprint + "/" + severity
    std::map<std::string, std::uint64_t> last_sequence_;  // fingerprint -> last applied
};

}  // namespace plugmon::agent::alert::notify
