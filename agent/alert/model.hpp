// The alert engine's shared vocabulary: what a rules file declares (rules, receivers, escalation
// policies) and what the engine hands to the notifiers (one notification per event and receiver).
// rules/ fills the first half, engine/ turns windows into the second, notify/ delivers it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::alert {

using label_set = std::map<std::string, std::string, std::less<>>;
using time_point = std::chrono::system_clock::time_point;
using std::chrono::nanoseconds;

/// A level of one alert. Not part of its identity: a change is a transition of the same alert.
enum class severity : std::uint8_t { info = 0, warning = 1, critical = 2 };
inline constexpr int severity_count = 3;
std::string_view to_string(severity s);
std::optional<severity> severity_from(std::string_view text);

/// What a rule measures. The value's unit is fixed per kind (see rules/README or the table in
/// rules.cpp): ratios 0..1, seconds, bytes, per-second rates, counts.
enum class rule_kind : std::uint8_t {
    error_ratio,       ///< query errors / query calls over `over`; labels plugin, op, table, tenant
    latency_quantile,  ///< `quantile` of the merged query sketches over `over`, seconds
    slow_rate,         ///< slow queries per second over `over`
    cpu_rate,          ///< CPU seconds per second (cores) of a plugin's executions over `over`
    heap_bytes,        ///< a plugin's live heap bytes at the last window
    heap_leak,        ///< a plugin's heap growth, bytes per second, when the leak detector flags it
    process_rss,      ///< a producer process's resident bytes; labels process, pid
    process_fds,      ///< open fds / the process's soft RLIMIT_NOFILE (0..1)
    process_threads,  ///< threads / the process's soft RLIMIT_NPROC (0..1)
    pool_utilization,  ///< in_use / (in_use + idle) of a plugin's pool
    pool_waiting,      ///< requests waiting for a connection of a plugin's pool
    ring_drops,        ///< events a producer's ring dropped over `over` (count)
    store_down,        ///< seconds the PostgreSQL store has been failing (0 when writing)
    watchdog,          ///< always 1: a dead man's switch
};
inline constexpr int rule_kind_count = 14;
std::string_view to_string(rule_kind k);
std::optional<rule_kind> rule_kind_from(std::string_view text);

/// One level's thresholds, in the kind's unit. Exactly one of above/below is set. The clear
/// threshold (hysteresis) is on the safe side of the trigger: clear_below <= above, or
/// clear_above >= below. Unset: the level clears when the trigger no longer holds.
struct level_spec {
    std::optional<double> above, below;
    std::optional<double> clear_below, clear_above;
};

/// After `no_data_after` without enough samples: keep the state, resolve, or fire.
enum class no_data_policy : std::uint8_t { keep, resolve, alert };

/// Netdata's notification delay: a change up waits `up`, down waits `down`; each change within
/// the running delay multiplies it by `multiplier`, up to `max`. Zero everywhere: no delay.
struct delay_spec {
    nanoseconds up{0}, down{0}, max{0};
    double multiplier = 1.0;
};

struct rule {
    std::string name;  ///< the alertname: [A-Za-z_][A-Za-z0-9_]*
    rule_kind kind = rule_kind::watchdog;
    label_set select;                   ///< label -> glob (`*`, `?`); a series lacking it fails
    std::vector<std::string> group_by;  ///< one alert per distinct value set
    nanoseconds over{std::chrono::minutes(5)};
    nanoseconds for_{0};
    nanoseconds keep_firing_for{0};
    std::uint64_t min_samples = 0;                     ///< fewer samples (calls) in `over`: no data
    double quantile = 0.99;                            ///< latency_quantile only
    std::optional<level_spec> levels[severity_count];  ///< indexed by severity
    label_set labels;                                  ///< added to the alert's identity
    label_set annotations;                             ///< templates, see render_template
    std::vector<std::string> receivers;
    std::string escalation;  ///< a policy's name, or empty
    no_data_policy on_no_data = no_data_policy::keep;
    nanoseconds no_data_after{0};  ///< 0: 3 x over
    /// Reminders for an unacknowledged firing alert, per severity; 0: none.
    nanoseconds repeat_interval[severity_count] = {nanoseconds(0), std::chrono::hours(4),
                                                   std::chrono::hours(1)};
    nanoseconds severity_down_delay{std::chrono::minutes(2)};  ///< a level drops after this
    delay_spec notify_delay;
    int flap_threshold = 6;  ///< transitions within flap_window that make it flapping
    nanoseconds flap_window{std::chrono::minutes(30)};
    std::string file;  ///< where it was declared, for messages
    int line = 0;
};

enum class receiver_type : std::uint8_t { alertmanager, webhook, slack };
std::string_view to_string(receiver_type t);

struct receiver_spec {
    std::string name;
    receiver_type type = receiver_type::webhook;
    std::string url;          ///< alertmanager: the base URL (the agent POSTs {url}/api/v2/alerts)
    std::string secret_file;  ///< webhook: sign bodies (Standard Webhooks) with this file's secret
    std::string bearer_token_file;  ///< sent as Authorization: Bearer <contents>
    label_set headers;              ///< extra request headers
    nanoseconds timeout{std::chrono::seconds(10)};
    int max_notifications_per_minute = 30;  ///< storm guard: beyond it, one summary a minute
    nanoseconds resend_interval{std::chrono::minutes(1)};       ///< alertmanager only
    nanoseconds resolved_resend_for{std::chrono::minutes(15)};  ///< alertmanager only
    nanoseconds max_event_age{std::chrono::hours(24)};  ///< then dead-lettered (webhook, slack)
    std::string file;
    int line = 0;
};

enum class escalation_condition : std::uint8_t { unacknowledged, unresolved };

struct escalation_level {
    nanoseconds after{0};  ///< since the alert fired
    std::vector<std::string> receivers;
    severity min_severity = severity::info;
};

struct escalation_policy {
    std::string name;
    escalation_condition condition = escalation_condition::unacknowledged;
    int repeat = 0;  ///< loops after the last level, at most 5
    std::vector<escalation_level> levels;
    std::string file;
    int line = 0;
};

/// Everything the rules files declare, validated: names are unique and every reference
/// (receiver, policy) resolves.
struct rule_set {
    std::vector<rule> rules;
    std::vector<receiver_spec> receivers;
    std::vector<escalation_policy> escalations;
    std::vector<std::string> files;  ///< the files read, after glob expansion
    /// A digest of everything above (to tell whether a reload changed anything).
    std::string digest;
};

// ---------------------------------------------------------------------------------------------
// What the engine hands to the notifiers.

enum class alert_state : std::uint8_t { inactive, pending, firing, resolved };
std::string_view to_string(alert_state s);

struct ack_info {
    std::string by, comment;
    time_point at, expires_at;
};

/// One alert as receivers see it at an event.
struct alert_view {
    std::string fingerprint;  ///< 16 hex digits, FNV-1a 64 over the sorted identity labels
    std::string rule;
    /// Identity: alertname, the group_by labels, the rule's labels and host. No severity: the
    /// notifiers add it (Alertmanager gets it as a label).
    label_set labels;
    label_set annotations;  ///< rendered
    alert_state state = alert_state::inactive;
    severity level = severity::warning;
    double value = 0;
    std::string episode;  ///< a new one each time the alert goes from inactive to pending
    time_point active_at{}, fired_at{}, resolved_at{};  ///< epoch: not yet
    std::optional<ack_info> ack;
};

enum class event_kind : std::uint8_t {
    firing,
    resolved,
    severity_changed,
    acknowledged,
    unacknowledged,
    escalated,
    reminder,
    flapping,
};
inline constexpr int event_kind_count = 8;
std::string_view to_string(event_kind e);

/// One event for one receiver. The notifier stores it durably before the first attempt and
/// retries it under the same id (the webhook-id header).
struct notification {
    std::string id;  ///< unique and stable: derived from fingerprint, episode, event, sequence
    std::string receiver;
    event_kind event = event_kind::firing;
    std::uint64_t sequence = 0;  ///< per fingerprint, increasing across restarts
    alert_view alert;
    std::optional<severity> previous_level;  ///< severity_changed
    int escalation_step = -1;                ///< escalated: the level reached
    time_point created{};
};

/// Where notifications go: the notify stage implements it; tests may record instead.
class notification_sink {
public:
    virtual ~notification_sink() = default;
    /// Stores the batch durably (fsync'ed) before returning; delivery is asynchronous. Throws
    /// std::system_error when the outbox cannot be written.
    virtual void submit(std::vector<notification> batch) = 0;
};

}  // namespace plugmon::agent::alert
