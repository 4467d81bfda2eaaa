// Silences with Alertmanager's schema: matchers over an alert's labels (severity included),
// a start and an end. A silence mutes notifications, never evaluation or history.
#pragma once

#include "alert/model.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace plugmon::agent::alert {

struct matcher {
    std::string name, value;
    bool is_regex = false, is_equal = true;
    std::shared_ptr<const std::regex> re;  ///< compiled, anchored (is_regex)
    bool matches(const label_set& labels) const;
};

struct silence {
    std::string id;
    std::vector<matcher> matchers;
    time_point starts_at{}, ends_at{};
    std::string created_by, comment;

    /// "pending", "active" or "expired" at `now`.
    std::string_view state(time_point now) const;
    bool mutes(const label_set& labels, time_point now) const;
};

/// A silence from Alertmanager's postableSilence JSON; throws std::invalid_argument naming the
/// field at fault. `id` is assigned by the caller.
silence silence_from_json(const nlohmann::json& body, time_point now);

/// Alertmanager's gettableSilence: id, matchers, startsAt, endsAt, createdBy, comment, status.
nlohmann::json to_json(const silence& s, time_point now);

}  // namespace plugmon::agent::alert
