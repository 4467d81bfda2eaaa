// The alert engine wired into the agent.
#include "app/alerting.hpp"

#include "alert/engine/engine.hpp"
#include "alert/notify/dispatcher.hpp"
#include "alert/rules/rules.hpp"
#include "pipeline/metrics_source.hpp"
#include "pipeline/window_sink.hpp"
#include "web/api/api.hpp"

#include <spdlog/spdlog.h>

namespace plugmon::agent {

namespace {

/// Seconds the store has been failing; called on the engine's thread only.
class store_outage {
public:
    explicit store_outage(std::function<std::string()> state) : state_(std::move(state)) {}
    double operator()() {
        if (!state_) return 0;
        const auto s = state_();
        const auto now = std::chrono::steady_clock::now();
        if (s == "connected" || s == "stopped") {
            since_.reset();
            return 0;
        }
        if (!since_) since_ = now;
        return std::chrono::duration<double>(now - *since_).count();
    }

private:
    std::function<std::string()> state_;
    std::optional<std::chrono::steady_clock::time_point> since_;
};

std::string external_url(const config& cfg) {
    auto [host, port] = split_listen(cfg.listen);
    if (host.empty() || host == "0.0.0.0" || host == "::") host = cfg.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return "http://" + host + ":" + std::to_string(port);
}

std::string joined(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
}

alert::rule_set load(const config& cfg) {
    try {
        return alert::load_rules(cfg.alert_rules);
    } catch (const std::exception& e) {
        throw config_error("alert_rules", e.what());
    }
}

}  // namespace

std::unique_ptr<alerting> alerting::make(const config& cfg,
                                         const std::shared_ptr<store::writer>& store) {
    if (cfg.alert_rules.empty()) return nullptr;
    alert::rule_set rules = load(cfg);
    std::unique_ptr<alerting> a(new alerting());
    alert::notify::dispatcher_options d;
    d.outbox_dir = cfg.alert_state_dir + "/outbox";
    d.receivers = rules.receivers;
    d.host = cfg.host;
    d.external_url = external_url(cfg);
    try {
        a->dispatcher_ = std::make_shared<alert::notify::dispatcher>(std::move(d));
    } catch (const std::invalid_argument& e) {  // a receiver's URL or secret file
        throw config_error("alert_rules", e.what());
    }
    alert::engine_options e;
    e.state_dir = cfg.alert_state_dir;
    e.host = cfg.host;
    if (store) {
        e.store_down_seconds = store_outage([store] { return store->state(); });
        e.history = [store](std::vector<alert_row> rows) { store->submit_alerts(std::move(rows)); };
    }
    const std::size_t n = rules.rules.size();
    a->engine_ = std::make_shared<alert::engine>(std::move(rules), a->dispatcher_, std::move(e));
    spdlog::info("alerts: {} rules; state in {}", n, cfg.alert_state_dir);
    return a;
}

alerting::~alerting() = default;

void alerting::register_with(window_fanout& windows, metrics_registry& metrics, api_context& ctx) {
    windows.add(engine_);
    metrics.add([e = engine_](std::string& out) { e->render_metrics(out); });
    metrics.add([d = dispatcher_](std::string& out) { d->render_metrics(out); });
    ctx.alerts = engine_.get();
    ctx.dead_letters = [d = dispatcher_] {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& l : d->dead_letters())
            list.push_back({{"id", l.id},
                            {"receiver", l.receiver},
                            {"event", alert::to_string(l.event)},
                            {"fingerprint", l.fingerprint},
                            {"attempts", l.attempts},
                            {"last_status", l.last_status},
                            {"last_error", l.last_error}});
        return nlohmann::json{{"notifications", list}}.dump(2) + "\n";
    };
    ctx.replay_notification = [d = dispatcher_](const std::string& id) { return d->replay(id); };
}

/// What a reload prepared: the rules, and the receivers built from them but not yet running.
struct alerting::staged {
    alert::rule_set rules;
    alert::notify::dispatcher::update receivers;
};

void alerting::prepare_reload(const config& fresh) {
    staged_.reset();
    try {
        alert::rule_set rules = alert::load_rules(fresh.alert_rules);
        auto receivers = dispatcher_->prepare(rules.receivers);
        staged_.reset(new staged{std::move(rules), std::move(receivers)});
    } catch (const std::exception& e) {
        engine_->set_reload_result(false);
        throw config_error("alert_rules", e.what());
    }
}

void alerting::apply_reload() {
    if (!staged_) return;
    std::unique_ptr<staged> s = std::move(staged_);
    const auto& u = s->receivers;
    if (!u.added.empty() || !u.changed.empty() || !u.removed.empty())
        spdlog::info("alerts: receivers added: {}; changed: {}; removed: {}", joined(u.added),
                     joined(u.changed), joined(u.removed));
    // The engine switches rules while both the old and the new receivers are served.
    dispatcher_->apply(std::move(s->receivers),
                       [&] { engine_->replace_rules(std::move(s->rules)); });
    engine_->set_reload_result(true);
}

void alerting::stop(std::chrono::nanoseconds timeout) {
    dispatcher_->stop(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
}

}  // namespace plugmon::agent
