// The alert engine wired into the agent: rules from alert_rules, the engine as a window sink,
// the dispatcher's outbox in alert_state_dir, their metrics and their routes.
#pragma once

#include "config/config.hpp"
#include "store/write/writer.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace plugmon::agent {

class window_fanout;
class metrics_registry;
struct api_context;

namespace alert {
class engine;
struct rule_set;
namespace notify {
class dispatcher;
}
}  // namespace alert

class alerting {
public:
    /// Loads the rules and opens the state; nullptr when alert_rules is empty. Throws
    /// config_error (key alert_rules) for rules files that do not validate. With a store, every
    /// change of every alert goes to PostgreSQL through it (asynchronously: spooled first).
    static std::unique_ptr<alerting> make(const config& cfg,
                                          const std::shared_ptr<store::writer>& store);
    ~alerting();

    /// The engine becomes a window sink; the engine and the dispatcher become metrics sources
    /// and serve the alert routes.
    void register_with(window_fanout& windows, metrics_registry& metrics, api_context& ctx);
    /// Reload, first half: reads and validates the rules files of `fresh`, reads the receivers'
    /// secret files and builds the new or changed receivers, and keeps all that. Throws
    /// config_error (key alert_rules, naming the file, line and receiver key at fault) for files
    /// that do not validate or a receiver that cannot start.
    void prepare_reload(const config& fresh);
    /// Reload, second half: starts the new receivers, swaps the rules, then stops the removed
    /// receivers (dispatcher::apply), with no gap for alerts routed to either.
    void apply_reload();
    /// Gives the dispatcher up to `timeout` for deliveries in flight; the rest stays queued.
    void stop(std::chrono::nanoseconds timeout);

private:
    struct staged;
    alerting() = default;
    std::shared_ptr<alert::notify::dispatcher> dispatcher_;
    std::shared_ptr<alert::engine> engine_;
    std::unique_ptr<staged> staged_;  ///< prepared by a reload, not yet applied
};

}  // namespace plugmon::agent
