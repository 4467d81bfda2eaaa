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
    /// Reads the rules files of `fresh` again and swaps them in; the reason when refused.
    std::optional<std::string> reload(const config& fresh);
    /// Gives the dispatcher up to `timeout` for deliveries in flight; the rest stays queued.
    void stop(std::chrono::nanoseconds timeout);

private:
    alerting() = default;
    std::shared_ptr<alert::notify::dispatcher> dispatcher_;
    std::shared_ptr<alert::engine> engine_;
    std::string receivers_;  ///< the receivers the dispatcher runs with
};

}  // namespace plugmon::agent
