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
    /// Reload, first half: reads and validates the rules files of `fresh` and keeps them.
    /// Throws config_error (key alert_rules) for files that do not validate.
    void prepare_reload(const config& fresh);
    /// Reload, second half: swaps the rules prepare_reload() kept in.
    void apply_reload();
    /// Gives the dispatcher up to `timeout` for deliveries in flight; the rest stays queued.
    void stop(std::chrono::nanoseconds timeout);

private:
    alerting() = default;
    std::shared_ptr<alert::notify::dispatcher> dispatcher_;
    std::shared_ptr<alert::engine> engine_;
    std::string receivers_;                    ///< the receivers the dispatcher runs with
    std::unique_ptr<alert::rule_set> staged_;  ///< prepared by a reload, not yet applied
};

}  // namespace plugmon::agent
