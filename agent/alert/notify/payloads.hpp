// The bodies the notifiers send: Alertmanager v2 alerts, the Alertmanager webhook v4 message
// with a "plugmon" extension, a Slack-compatible message, and the storm guard's summary.
#pragma once

#include "alert/model.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace plugmon::agent::alert::notify {

/// What every payload needs besides the events. All functions below are reentrant.
struct payload_context {
    std::string external_url;  ///< the agent's base URL, without a trailing slash
    time_point now{};
};

/// "<external_url>/api/v1/alerts/<fingerprint>".
std::string generator_url(std::string_view external_url, std::string_view fingerprint);

/// The alert's labels as Alertmanager and webhook receivers see them: the identity, alertname
/// (the rule's name when the identity lacks it) and severity.
label_set labels_with_severity(const alert_view& a, severity level);

/// The annotations plus "value" (the measured value, shortest round-trip form).
label_set annotations_with_value(const alert_view& a);

/// One postableAlert of Alertmanager's v2 API.
struct am_alert {
    label_set labels;
    label_set annotations;
    time_point starts_at{};
    time_point ends_at{};
    std::string generator_url;
};

/// The body of POST {url}/api/v2/alerts: a JSON array of postableAlert.
nlohmann::json alertmanager_body(const std::vector<am_alert>& alerts);

/// Whether an event tells receivers the alert is resolved (webhook status "resolved").
bool is_resolved(const notification& n);

/// An Alertmanager webhook message, version "4", for `events` (one receiver, at least one
/// event; they share an event kind when grouped). `alerts` holds the first `max_alerts` events'
/// alerts and truncatedAlerts the rest; the extension object "plugmon" lists every event:
///   {"event", "events": [{event_id, event, fingerprint, episode, sequence, level,
///    previous_level, ack, escalation_step}, ...]}
/// and, when the message carries one event, also "event_id", "episode" and "sequence" at its
/// top level. Throws std::invalid_argument for an empty `events`.
nlohmann::json webhook_message(std::string_view receiver, const std::vector<notification>& events,
                               const payload_context& ctx, std::size_t max_alerts = 50);

/// A Slack-compatible message {"text", "blocks"} (Mattermost and Rocket.Chat accept it too).
nlohmann::json slack_message(const std::vector<notification>& events, const payload_context& ctx);

/// What the storm guard coalesced into one summary.
struct storm_summary {
    std::map<std::string, std::uint64_t> by_event;  ///< event kind -> events
    std::uint64_t firing = 0, resolved = 0, total = 0;
    std::vector<std::string> fingerprints;  ///< distinct, sorted
    std::vector<std::string> event_ids;     ///< every coalesced notification's id
};

storm_summary summarize(const std::vector<notification>& events);

/// "12 firing, 3 resolved, 2 acknowledged (17 events coalesced) — see <external_url>/api/v1/alerts"
std::string summary_text(const storm_summary& s, std::string_view external_url);

/// The summary as a webhook v4 message: no alerts (truncatedAlerts = the event count) and
/// "plugmon": {"event": "summary", "summary": {counts, fingerprints, event_ids, text}}.
nlohmann::json summary_webhook(std::string_view receiver, const storm_summary& s,
                               const payload_context& ctx);

/// The summary as a Slack-compatible message.
nlohmann::json summary_slack(const storm_summary& s, const payload_context& ctx);

}  // namespace plugmon::agent::alert::notify
