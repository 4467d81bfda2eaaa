// The alert engine: a window sink that evaluates every rule on each closed window, keeps each
// alert's state (surviving SIGKILL through a state file), and turns transitions, acks,
// escalations and reminders into notifications.
#pragma once

#include "alert/engine/instance.hpp"
#include "alert/engine/measure.hpp"
#include "alert/engine/silences.hpp"
#include "alert/model.hpp"
#include "pipeline/window_sink.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace plugmon::agent::alert {

struct engine_options {
    std::string state_dir;  ///< where state.json lives; empty: nothing survives a restart
    std::string host;       ///< the `host` label of every alert
    /// A downtime up to this long does not count towards a pending alert's `for`.
    nanoseconds outage_tolerance{std::chrono::hours(1)};
    /// How long a resolved alert stays listed.
    nanoseconds resolved_retention{std::chrono::minutes(15)};
    /// Seconds the store has been failing (0: writing, or no store); may be empty.
    std::function<double()> store_down_seconds;
    /// Receives every change of every alert (for PostgreSQL); called with the engine's lock
    /// held, so it must only queue. May be empty.
    std::function<void(std::vector<alert_row>)> history;
    /// The wall clock for acks, silences and restart accounting (tests replace it).
    std::function<time_point()> clock;
};

/// What an ack request came to.
enum class ack_result { ok, not_found, not_firing };

/// Thread safety: consume() runs on the fan-out's thread for this sink; every other member may be
/// called from any thread (one mutex; evaluation holds it, the HTTP handlers wait for it).
class engine final : public window_sink {
public:
    /// Restores the state file of `opts.state_dir` (throws std::runtime_error naming the file
    /// when it exists but cannot be read or parsed).
    engine(rule_set rules, std::shared_ptr<notification_sink> out, engine_options opts);

    std::string name() const override { return "alerts"; }
    /// Adds the window, evaluates every rule, sends what changed, saves the state.
    void consume(const window_ptr& w) override;

    /// Swaps in a new rule set (reload). Alerts of rules that are gone resolve; receivers that
    /// are gone are forgotten (logged).
    void replace_rules(rule_set rules);
    void set_reload_result(bool ok);

    // The HTTP API's reads and actions.
    /// {"alerts": [...]} with state and severity filters ("" for any).
    nlohmann::json alerts_json(const std::string& state, const std::string& severity) const;
    /// One alert with its recent history; nullopt when unknown.
    std::optional<nlohmann::json> alert_json(const std::string& fingerprint) const;
    ack_result ack(const std::string& fingerprint, const std::string& by,
                   const std::string& comment, nanoseconds ttl, nlohmann::json* out);
    /// True when an ack was removed.
    ack_result unack(const std::string& fingerprint, const std::string& by);
    /// Adds a silence from Alertmanager's postableSilence; returns its id. Throws
    /// std::invalid_argument naming the field at fault.
    std::string add_silence(const nlohmann::json& body, const std::string& by);
    nlohmann::json silences_json() const;
    /// False when no such silence exists.
    bool expire_silence(const std::string& id);

    void render_metrics(std::string& out) const;
    std::size_t size() const;

private:
    struct slot {
        instance a;
        std::uint64_t round = 0;
        std::string group_key;     ///< the measurement's key within its rule
        std::uint64_t stored = 0;  ///< history entries handed to opts_.history
    };

    void evaluate(time_point now, std::vector<notification>& out);
    void evaluate_rule(const rule& r, time_point now, std::vector<notification>& out);
    void after_step(slot& s, const rule& r, time_point now, std::vector<notification>& out);
    void notify(instance& a, const rule& r, time_point now, std::vector<notification>& out);
    void escalate(instance& a, const rule& r, time_point now, std::vector<notification>& out);
    void emit(instance& a, const rule& r, event_kind e, const std::vector<std::string>& to,
              time_point now, std::vector<notification>& out, int step = -1,
              std::optional<severity> previous = std::nullopt);
    /// Drops every alert's progress towards receivers the rules no longer declare (mu_ held).
    void forget_removed_receivers();
    alert_view view_of(const instance& a, const rule* r) const;
    /// One alert as the API lists it (mu_ held).
    nlohmann::json entry_json(const instance& a, time_point t) const;
    bool silenced(const instance& a, time_point now) const;
    const receiver_spec* receiver(const std::string& name) const;
    std::string new_episode();
    /// Queues the notifications in the outbox, then saves the state (in that order: a crash
    /// in between repeats a notification rather than losing one) and hands on the history.
    void commit(std::vector<notification>& out, time_point now);
    void collect_history(slot& s, std::vector<alert_row>& rows);
    /// A silence's creation or expiry, for the history (fingerprint empty).
    void record_silence(const silence& s, const std::string& what, time_point t);
    void save(time_point now) const;
    void restore();
    time_point now() const {
        return opts_.clock ? opts_.clock() : std::chrono::system_clock::now();
    }

    rule_set rules_;
    std::unordered_map<std::string, const rule*> by_name_;
    std::shared_ptr<notification_sink> out_;
    engine_options opts_;
    window_history history_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, slot> alerts_;  ///< by fingerprint
    /// Per rule, the groups that have an alert (group key -> fingerprint): a group without one
    /// costs a threshold check, not a label set and a hash (1 000 rules x 1 000 plugins).
    std::unordered_map<std::string, std::unordered_map<std::string, std::string>> live_;
    std::vector<silence> silences_;
    std::uint64_t round_ = 0, sequence_ = 0, silence_ids_ = 0;

    // Self-metrics (no per-alert labels).
    std::unordered_map<std::string, std::uint64_t> evaluations_;  ///< by rule
    std::vector<double> eval_seconds_;                            ///< histogram buckets
    std::uint64_t eval_count_ = 0, acks_ = 0, restored_ = 0, delivery_failures_ = 0;
    double eval_sum_ = 0;
    bool reload_ok_ = true;
};

}  // namespace plugmon::agent::alert
