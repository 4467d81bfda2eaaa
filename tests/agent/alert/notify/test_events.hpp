// Notifications for the notifier tests.
#pragma once

#include "alert/model.hpp"

#include <chrono>
#include <string>

namespace plugmon::agent::testing {

inline alert::notification make_event(const std::string& receiver, const std::string& fp,
                                      alert::event_kind event, std::uint64_t sequence,
                                      const std::string& episode = "ep1",
                                      alert::time_point now = std::chrono::system_clock::now()) {
    using namespace alert;
    notification n;
    n.receiver = receiver;
    n.event = event;
    n.sequence = sequence;
    n.id =
        fp + "-" + episode + "-" + std::string(to_string(event)) + "-" + std::to_string(sequence);
    n.created = now;
    n.alert.fingerprint = fp;
    n.alert.rule = "PluginErrorRatioHigh";
    n.alert.labels = {{"alertname", "PluginErrorRatioHigh"}, {"plugin", "p-" + fp}, {"host", "h1"}};
    n.alert.annotations = {{"summary", "plugin fails"}};
    n.alert.state = event == event_kind::resolved ? alert_state::resolved : alert_state::firing;
    n.alert.level = severity::warning;
    n.alert.value = 0.25;
    n.alert.episode = episode;
    n.alert.active_at = now - std::chrono::minutes(3);
    n.alert.fired_at = now - std::chrono::minutes(1);
    if (event == event_kind::resolved) n.alert.resolved_at = now;
    return n;
}

}  // namespace plugmon::agent::testing
