// The notify stage: a notification_sink that stores every notification in a durable outbox and
// delivers it with one worker thread per receiver (webhook, Slack, Alertmanager).
#pragma once

#include "alert/model.hpp"
#include "alert/notify/outbox.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace plugmon::agent::alert::notify {

/// Exponential backoff between attempts: initial x factor^(attempt-1), capped, then multiplied
/// by a uniform factor in [1 - jitter, 1 + jitter]. A Retry-After (capped at 1 h) is a floor.
struct backoff_policy {
    std::chrono::nanoseconds initial{std::chrono::seconds(1)};
    double factor = 2.0;
    double jitter = 0.2;
    std::chrono::nanoseconds cap{std::chrono::minutes(5)};
};

struct dispatcher_options {
    std::string outbox_dir;                ///< <alert_state_dir>/outbox
    std::vector<receiver_spec> receivers;  ///< at start; a reload changes them with apply()
    std::string host;                      ///< this host's name, for logs
    std::string external_url;  ///< the agent's base URL (generatorURL, externalURL, summaries)
    backoff_policy backoff;
    /// The time used for scheduling, ages, timestamps and the storm guard; empty: system clock.
    std::function<time_point()> clock;
    /// The longest a worker sleeps before looking at the clock again (so a test clock's jumps
    /// and wall-clock steps are noticed).
    std::chrono::milliseconds idle_wait{1000};
    std::size_t max_alerts_per_message = 50;  ///< webhook alerts[]; the rest in truncatedAlerts
    std::size_t alertmanager_batch = 256;     ///< alerts per POST /api/v2/alerts
    std::chrono::seconds retry_after_cap{3600};
};

/// A notification that will not be delivered without an operator's replay().
struct dead_letter {
    std::string id, receiver;
    event_kind event = event_kind::firing;
    std::string fingerprint;
    time_point created{};
    int attempts = 0;
    unsigned last_status = 0;  ///< 0: no HTTP status (network error, timeout, too old)
    std::string last_error;
};

/// Delivers notifications, nothing lost (at-least-once, same webhook-id on every attempt):
///
/// * submit() appends the batch to the outbox (fsync'ed) before any attempt. A record leaves
///   the outbox when delivered, dead-lettered (outbox/dead/), or — for Alertmanager — once the
///   state table that supersedes it is persisted (outbox/am-<receiver>.json). A new dispatcher
///   on the same directory replays whatever is left, with the same ids.
/// * Webhook and Slack receivers: events of one submit() for the same receiver and event kind
///   form one message (its webhook-id is the notification id when alone, else "grp_" + a hash of
///   the ids). Messages go one at a time, in outbox order, so events of one fingerprint arrive in
///   sequence order. At most max_notifications_per_minute messages a minute; beyond that,
///   everything pending is coalesced into one summary message a minute (counted in
///   plugmon_notifications_coalesced_total). Retries: 5xx, 408, 425, 429, network errors and
///   timeouts, with backoff and Retry-After; other statuses and events older than max_event_age
///   are dead-lettered. A resolve whose episode's firing was dead-lettered for that receiver is
///   not sent (counted in plugmon_notifications_resolve_skipped_total).
/// * Alertmanager receivers are state-based: events coalesce into a per-fingerprint table that
///   is re-sent whole every resend_interval (firing: endsAt = now + 4 x resend_interval;
///   resolved: for resolved_resend_for), in POSTs of up to 256 alerts. 400 counts invalid and is
///   not retried (Alertmanager stored the valid alerts).
/// * A reload changes the receivers live (prepare(), then apply()): an unchanged receiver keeps its
///   worker, queue, retries and grouping state; a changed one is replaced by a new worker that
///   takes over the old one's queue (once its attempt in flight finished or timed out); a removed
///   one stops after its attempt in flight, and what it leaves undelivered stays in the outbox,
///   as does anything a previous run left for a receiver not configured now, and is delivered if
///   a later configuration brings that receiver back (plugmon_notifications_unrouted).
/// * webhook-timestamp is the time of each attempt and the signature is computed per attempt,
///   as Standard Webhooks verifiers reject stale timestamps (default tolerance 5 minutes); the
///   webhook-id and the body stay the same.
///
/// Thread safety: every public member may be called from any thread.
class dispatcher final : public notification_sink {
    struct worker;

public:
    /// Receivers checked and built for a reload, not yet running: what prepare() returns and
    /// apply() takes. Move-only; dropping it changes nothing.
    class update {
    public:
        update(update&&) noexcept;
        update& operator=(update&&) noexcept;
        ~update();
        std::vector<std::string> added, changed, removed;  ///< receiver names, for logs and tests

    private:
        friend class dispatcher;
        update();
        std::vector<std::string> names_;              ///< every receiver of the new set
        std::vector<std::unique_ptr<worker>> fresh_;  ///< built for `added` and `changed`
    };

    /// Opens the outbox (replaying what a previous run left), reads every receiver's secret and
    /// bearer token, and starts one worker per receiver. Throws std::invalid_argument naming the
    /// receiver (and its file:line when known) for an https:// or malformed URL, or an
    /// unreadable secret_file / bearer_token_file (with its path); std::system_error when the
    /// outbox cannot be opened.
    explicit dispatcher(dispatcher_options opts);
    /// stop(5 s) unless stopped already.
    ~dispatcher() override;
    dispatcher(const dispatcher&) = delete;
    dispatcher& operator=(const dispatcher&) = delete;

    /// Stores the batch durably, then wakes the workers; returns without waiting for delivery.
    /// Notifications for a receiver that is not configured are logged, counted
    /// (plugmon_notifications_unknown_receiver_total) and not stored. Throws std::system_error
    /// when the outbox cannot be written (nothing of the batch is queued then). After stop(),
    /// stores only (the next start delivers).
    void submit(std::vector<notification> batch) override;

    /// Reload, first half: checks `receivers` as the constructor does (URLs, names declared
    /// twice, secret_file and bearer_token_file read now) and builds a worker for each receiver
    /// that is new or changed (a changed secret file's contents count), without touching the
    /// running ones. Throws std::invalid_argument as the constructor does.
    update prepare(const std::vector<receiver_spec>& receivers);

    /// Reload, second half: starts the added receivers, replaces the changed ones, then runs
    /// `switch_over` (whoever routes notifications switches to the new receivers there, so that
    /// both old and new names are served meanwhile), then retires the removed ones. Returns
    /// without waiting for attempts in flight. After stop(), changes nothing.
    void apply(update u, const std::function<void()>& switch_over = {});

    /// Stops the workers: attempts in flight may finish until `timeout`, then are abandoned.
    /// Whatever is undelivered stays in the outbox. Idempotent; blocks up to about timeout.
    void stop(std::chrono::milliseconds timeout);

    /// Appends the notify stage's metric families (Prometheus text format). Does not block on
    /// network I/O.
    void render_metrics(std::string& out) const;

    /// Per receiver: type, queue_length, in_flight, last_error, last_success (RFC 3339 or null),
    /// dead_letters; plus outbox_bytes, corrupt_records and unrouted (kept for receivers not
    /// configured).
    nlohmann::json status() const;

    /// The dead letters, oldest first.
    std::vector<dead_letter> dead_letters() const;

    /// Re-queues the dead letter with notification id `id` (attempts reset, same id). False when
    /// there is none (or its receiver is no longer configured: it stays dead). Throws
    /// std::system_error when the outbox cannot be written.
    bool replay(const std::string& id);

private:
    std::unique_ptr<worker> build(const receiver_spec& spec);
    void distribute(std::vector<outbox_record> records);  // mu_ held
    worker* find(const std::string& receiver) const;      // mu_ held
    void install(std::unique_ptr<worker> fresh);          // mu_ held
    void reap();                                          // mu_ held
    std::size_t unrouted() const;                         // mu_ held

    dispatcher_options opts_;
    outbox outbox_;
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<worker>> workers_;  // guarded by mu_: the configured receivers
    /// Replaced or removed by a reload, until their thread ended (a replaced one's successor
    /// joins it; a removed one's records then join orphans_). Guarded by mu_.
    std::vector<std::unique_ptr<worker>> retiring_;
    /// Pending records for receivers not configured, oldest first: they stay in the outbox for a
    /// configuration that brings their receiver back. Guarded by mu_.
    std::vector<outbox_record> orphans_;
    std::atomic<std::uint64_t> unknown_receiver_{0};
    bool stopped_ = false;  // guarded by mu_
};

}  // namespace plugmon::agent::alert::notify
