// plugmon-agent's wiring: config -> store writer -> fan-out -> series -> drain -> intake -> HTTP,
// signals, reload and the ordered shutdown.
#include "app/app.hpp"

#include "aggregate/series.hpp"
#include "aggregate/statements.hpp"
#include "alert/rules/rules.hpp"
#include "app/alerting.hpp"
#include "app/reload.hpp"
#include "app/systemd/notify.hpp"
#include "app/systemd/watchdog.hpp"
#include "audit/trail.hpp"
#include "common/tsc.hpp"
#include "common/version.hpp"
#include "config/config.hpp"
#include "export/prometheus/native_store.hpp"
#include "export/prometheus/prometheus.hpp"
#include "export/prometheus/protobuf_exposition.hpp"
#include "export/remote_write/receivers.hpp"
#include "ingest/drainer.hpp"
#include "ingest/intake.hpp"
#include "log/log.hpp"
#include "pipeline/metrics_source.hpp"
#include "pipeline/window_sink.hpp"
#include "store/schema/migrations.hpp"
#include "store/write/writer.hpp"
#include "web/api/api.hpp"
#include "web/server/auth.hpp"
#include "web/server/http.hpp"
#include "web/server/http_metrics.hpp"
#include "web/server/router.hpp"
#include "web/ui/dashboard.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace plugmon::agent {

namespace {

/// `plugmon-agent migrate [--dry-run]`: applies (or lists) the schema migrations and exits.
int run_migrate(const config& cfg) {
    try {
        pqxx::connection c(cfg.postgres);
        const auto r = store::migrate(c, cfg.dry_run, project_version, [](const std::string& line) {
            std::printf("%s\n", line.c_str());
        });
        if (cfg.dry_run)
            std::printf(
                "schema at version %d; %zu migration(s) pending (dry run: nothing applied)\n",
                r.from_version, r.applied.size());
        else if (r.applied.empty())
            std::printf("schema at version %d: up to date\n", r.to_version);
        else
            std::printf("schema migrated from version %d to %d\n", r.from_version, r.to_version);
        return 0;
    } catch (const store::schema_error& e) {
        std::fprintf(stderr, "plugmon-agent: migrate: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "plugmon-agent: migrate: cannot use %s: %s\n",
                     mask_password(cfg.postgres).c_str(), e.what());
        return 1;
    }
}

/// At start, with the database reachable: migrate now, so a schema the agent cannot use stops it
/// with a clear message instead of a retry loop. Unreachable: the writer keeps trying (and spools).
void check_schema_at_start(const config& cfg) {
    std::unique_ptr<pqxx::connection> c;
    try {
        c = std::make_unique<pqxx::connection>(cfg.postgres);
    } catch (const std::exception& e) {
        spdlog::warn(
            "store: PostgreSQL is not reachable yet ({}); windows go to the spool until it is",
            e.what());
        return;
    }
    const auto r = store::migrate(*c, false, project_version,
                                  [](const std::string& line) { spdlog::info("store: {}", line); });
    spdlog::info("store: schema at version {}", r.to_version);
}

std::shared_ptr<store::writer> make_writer(const config& cfg) {
    if (cfg.postgres.empty()) return nullptr;
    check_schema_at_start(cfg);
    store::writer_options wopt;
    wopt.conninfo = cfg.postgres;
    wopt.host = cfg.host;
    wopt.agent_version = project_version;
    wopt.spooling.dir = cfg.spool_dir;
    wopt.spooling.max_bytes = cfg.spool_max_bytes;
    wopt.backoff_max = cfg.postgres_backoff_max;
    wopt.retention = cfg.postgres_retention;
    wopt.downsample_after = cfg.postgres_downsample_after;
    return std::make_shared<store::writer>(std::move(wopt));
}

drain::options drain_options(const config& cfg, window_fanout& windows,
                             statement_book& statements) {
    drain::options o;
    o.idle_sleep = cfg.drain_interval;
    o.ns_per_tick = measure_ns_per_tick();
    spdlog::debug("TSC: {:.6f} ns per tick", o.ns_per_tick);
    o.flush_interval = cfg.flush_interval;
    o.leak = leak_settings{cfg.leak_window, cfg.leak_min_growth, cfg.leak_min_r2};
    o.statements = &statements;
    o.windows = &windows;
    return o;
}

/// The most a tokens_file entry's scopes allow.
scope highest_scope(const std::vector<std::string>& scopes) {
    scope out = scope::read;
    for (const auto& s : scopes) {
        if (s == "admin") out = std::max(out, scope::admin);
        if (s == "ack") out = std::max(out, scope::ack);
    }
    return out;
}

/// What the HTTP security layer enforces under a configuration.
security_options security_from(const config& cfg) {
    security_options o;
    o.tokens = admin_token(cfg.api_token);
    for (const auto& t : cfg.tokens)
        o.tokens.push_back(api_token_entry{t.name, highest_scope(t.scopes), t.sha256});
    o.read_requires_token = cfg.read_requires_token;
    o.allowed_hosts = cfg.http_allowed_hosts;
    o.listen_host = split_listen(cfg.listen).first;
    return o;
}

/// The built-in dashboard, unless `ui = false`.
std::unique_ptr<ui::dashboard> make_dashboard(const config& cfg, const api_context& ctx) {
    if (!cfg.ui) return nullptr;
    ui::dashboard_options o;
    o.snapshot.host = cfg.host;
    o.snapshot.read_only = cfg.ui_read_only;
    o.snapshot.interval = cfg.ui_interval;
    o.snapshot.history = cfg.ui_history;
    o.snapshot.flush_window = cfg.flush_interval;
    o.snapshot.max_streams = cfg.ui_max_streams;
    return std::make_unique<ui::dashboard>(ctx, o);
}

router make_routes(const api_context& ctx, ui::dashboard* dashboard) {
    router r;
    add_api_routes(r, ctx);
    if (dashboard) ui::add_ui_routes(r, *dashboard);
    return r;
}

/// The running agent. Members are constructed in data-flow order and destroyed in reverse.
class agent_app {
public:
    agent_app(config cfg, int argc, char** argv)
        : cfg_(std::move(cfg)), argc_(argc), argv_(argv), writer_(make_writer(cfg_)),
          alerts_(alerting::make(cfg_, writer_)),
          series_(bucket_bounds::from_seconds(cfg_.query_buckets, cfg_.execution_buckets)),
          statements_(cfg_.slow_query_samples),
          drainer_(series_, drain_options(cfg_, windows_, statements_)),
          intake_(io_, intake_options(cfg_), drainer_),
          ctx_{series_, drainer_, &intake_, project_version, {}, &statements_, cfg_.top_statements},
          ui_(make_dashboard(cfg_, ctx_)), routes_(make_routes(ctx_, ui_.get())),
          http_metrics_(std::make_shared<http_metrics>(routes_.names())),
          gate_(routes_, security_from(cfg_), http_metrics_, audit_),
          http_(io_, split_listen(cfg_.listen).first, split_listen(cfg_.listen).second,
                [this](const http_request& r) { return gate_.handle(r); }),
          signals_(io_, SIGTERM, SIGINT, SIGHUP) {
        ctx_.reload = [this] { return notified_reload("http"); };
        ctx_.audit = audit_.get();
        drainer_.reconfigure(live_settings_of(cfg_));  // budgets, expiry, thresholds: as a reload
        register_sinks_and_sources();
        register_reload_steps();
    }

    int run() {
        if (writer_) writer_->start();
        remote_writes_.start();
        windows_.start();
        drainer_.start();
        intake_.start();
        if (ui_) ui_->start();
        const auto host = split_listen(cfg_.listen).first;
        const auto base = "http://" +
                          (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                          std::to_string(http_.port());
        spdlog::info("listening: producers on {}, HTTP on {}/metrics", intake_.socket_path(), base);
        if (ui_) spdlog::info("dashboard: {}/ui/", base);
        notify_ready("producers on " + intake_.socket_path() + ", HTTP on " + base);
        wait_for_signal();
        io_.run();
        return exit_status_;
    }

private:
    static intake::options intake_options(const config& cfg) {
        intake::options o;
        o.runtime_dir = cfg.runtime_dir;
        o.socket_mode = cfg.socket_mode;
        o.max_producers = cfg.max_producers;
        return o;
    }

    /// Every consumer of closed windows is a sink; every component renders its own families.
    void register_sinks_and_sources() {
        add_core_metrics(metrics_, series_, drainer_, &intake_);
        metrics_.add([this](std::string& out) { windows_.render_metrics(out); });
        // /metrics in the protobuf exposition: native histograms kept by a window sink.
        native_ = std::make_shared<native_store>(8, cfg_.series_expiry_windows);
        windows_.add(native_);
        metrics_.add([n = native_](std::string& out) { n->render_metrics(out); });
        ctx_.metrics_protobuf = [this] {
            native_->activate();
            return protobuf_exposition::render(metrics_, native_->query_duration_lookup());
        };
        if (writer_) {
            windows_.add(writer_);
            writer_->take_audit_from(audit_);  // plugmon.audit: entries ride with the next window
            metrics_.add([w = writer_](std::string& out) { w->render_metrics(out); });
            ctx_.store_state = [w = writer_] { return w->state(); };
            ctx_.store_json = [w = writer_] { return w->status().dump(); };
        }
        if (alerts_) alerts_->register_with(windows_, metrics_, ctx_);
        if (const auto failed = remote_writes_.configure(cfg_); !failed.empty())
            throw config_error("remote_write", "receiver " + failed.front() +
                                                   " could not start (see the log above)");
        metrics_.add([this](std::string& out) { remote_writes_.render_metrics(out); });
        if (ui_) metrics_.add([this](std::string& out) { ui_->render_metrics(out); });
        http_metrics_->attach(http_.counters());
        metrics_.add([m = http_metrics_](std::string& out) { m->render(out); });
        ctx_.metrics = &metrics_;
    }

    /// systemd (Type=notify): READY=1 once the I/O loop runs, i.e. the producers' socket and
    /// the HTTP listener accept; then the watchdog, pinged while the drain completes passes.
    void notify_ready(std::string status) {
        ready_status_ = "listening: " + std::move(status);
        boost::asio::post(io_, [this] { notify_.send(systemd::ready_message(ready_status_)); });
        const auto timeout = systemd::watchdog_timeout_from_env();
        if (!timeout) return;
        const auto interval = *timeout / 2;
        watchdog_ = std::make_unique<systemd::watchdog>(io_, notify_, interval, [this, interval] {
            return systemd::drain_unhealthy(drainer_.running(), drainer_.totals().last_pass(),
                                            std::chrono::steady_clock::now(), interval);
        });
        boost::asio::post(io_, [this] { watchdog_->start(); });
        spdlog::info("systemd: watchdog on, WATCHDOG=1 every {} while the drain is healthy",
                     format_duration(interval));
    }

    /// reload() between systemd's RELOADING=1 and READY=1.
    /// `actor`: "SIGHUP", or "http" (the request's own audit entry names its token).
    reload_report notified_reload(const char* actor) {
        notify_.send(systemd::reloading_message(systemd::monotonic_usec()));
        auto result = reload();
        notify_.send(systemd::ready_message(ready_status_));
        audit_reload(actor, result);
        return result;
    }

    void wait_for_signal() {
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                notified_reload("SIGHUP");
                wait_for_signal();
                return;
            }
            shutdown(sig == SIGTERM ? "SIGTERM" : "SIGINT");
        });
    }

    /// One audit entry per reload: who, the configuration file, 200 applied or 500 refused.
    void audit_reload(const char* actor, const reload_report& r) {
        audit::entry e;
        e.actor = actor;
        e.client = "-";
        e.action = "reload";
        e.target = cfg_.config_file.empty() ? "-" : cfg_.config_file;
        e.status = r.error ? 500 : 200;
        e.detail = r.error ? audit::refusal_detail(*r.error)
                           : audit::reload_detail(r.applied, r.restart_required);
        audit_->record(std::move(e));
    }

    /// SIGHUP and POST /-/reload: reads the configuration again, validates all of it, then
    /// applies it whole (reload.hpp); a refused file leaves the running configuration as it was.
    reload_report reload() {
        config fresh;
        try {
            fresh = parse_command_line(argc_, argv_);
        } catch (const std::exception& e) {
            return reloader_.refuse(e.what());
        }
        return reloader_.reload(fresh);
    }

    /// What the drain takes live: budgets, expiry and slow-query thresholds.
    static drain::live_settings live_settings_of(const config& c) {
        drain::live_settings s;
        s.budget = {c.series_budget, c.series_budget_per_plugin};
        s.expiry_windows = c.series_expiry_windows;
        s.slow_ns = [c = std::make_shared<const config>(c)](const std::string& plugin) {
            return std::uint64_t(c->slow_threshold_for(plugin).count());
        };
        return s;
    }

    /// Every part that takes keys live registers a step; every other key needs a restart.
    void register_reload_steps() {
        reloader_.add({"log", {"log_level", "log_format"}, {}, [](const config& c) {
                           log::setup(c.log_format, c.log_level);
                       }});
        auto security = std::make_shared<security_options>();
        reloader_.add(
            {"http security",
             {"api_token", "tokens_file", "read_requires_token", "http_allowed_hosts"},
             [this, security](const config& c) {
                 *security = security_from(c);
                 security->listen_host = split_listen(cfg_.listen).first;  // stays put
             },
             [this, security](const config&) { gate_.set_options(std::move(*security)); }});
        reloader_.add({"series",
                       {"series_budget", "series_budget_per_plugin", "series_expiry_windows",
                        "slow_query_threshold", "slow_query_thresholds."},
                       {},
                       [this](const config& c) { drainer_.reconfigure(live_settings_of(c)); }});
        if (writer_)
            reloader_.add({"store",
                           {"postgres_retention", "postgres_downsample_after"},
                           {},
                           [w = writer_](const config& c) {
                               w->set_maintenance(c.postgres_retention,
                                                  c.postgres_downsample_after);
                           }});
        reloader_.add({"remote write", {"remote_write"}, {}, [this](const config& c) {
                           remote_writes_.configure(c);  // failures: logged and skipped
                       }});
        if (alerts_)
            reloader_.add({"alerts",
                           {"alert_rules"},
                           [this](const config& c) { alerts_->prepare_reload(c); },
                           [this](const config&) { alerts_->apply_reload(); }});
        metrics_.add([this](std::string& out) { reloader_.render_metrics(out); });
    }

    /// Stops intake, drains everything once more (the final window goes to the sinks), lets the
    /// sinks finish, then stops the store writer and the HTTP listener.
    void shutdown(const char* why) {
        spdlog::info("{}: draining and stopping", why);
        if (watchdog_) watchdog_->stop();
        notify_.send(systemd::stopping_message(std::string(why) + ": draining and stopping"));
        intake_.stop();
        if (!drainer_.stop(cfg_.exit_drain_timeout)) {
            spdlog::error(
                "the final drain did not finish within exit_drain_timeout ({}); "
                "exiting without it",
                format_duration(cfg_.exit_drain_timeout));
            std::_Exit(1);  // events were lost; the drain thread still uses what destructors free
        }
        const auto& t = drainer_.totals();
        spdlog::info("stopped: drained {}, dropped full {}, torn {}, invalid {}", t.drained.get(),
                     t.full.get(), t.torn.get(), t.invalid.get());
        windows_.stop(cfg_.exit_drain_timeout);
        remote_writes_.stop(cfg_.exit_drain_timeout);         // the rest: spooled
        if (alerts_) alerts_->stop(cfg_.exit_drain_timeout);  // undelivered: kept in the outbox
        if (writer_ && !stop_writer()) std::_Exit(0);  // all safe in the spool; threads still run
        if (ui_) ui_->stop();
        http_.stop();
        io_.stop();
    }

    /// The final window is queued by now: write what time allows, spool the rest.
    bool stop_writer() {
        if (!writer_->stop(cfg_.exit_drain_timeout)) {
            spdlog::warn(
                "store: a database call outlived exit_drain_timeout; exiting, the "
                "unwritten batches stay in the spool {}",
                cfg_.spool_dir);
            return false;
        }
        spdlog::info("store: {} batches written, {} left in the spool for the next start",
                     writer_->stats().batches_written.load(), writer_->spooled().batches());
        return true;
    }

    config cfg_;  ///< as started; what a reload changes lives in the parts it reconfigures
    reloader reloader_{cfg_};
    int argc_;
    char** argv_;
    std::shared_ptr<store::writer> writer_;
    std::unique_ptr<alerting> alerts_;
    window_fanout windows_;
    remote_write::receivers remote_writes_{windows_, cfg_.exit_drain_timeout};
    std::shared_ptr<native_store> native_;
    metrics_registry metrics_;
    series_registry series_;
    statement_book statements_;
    drain drainer_;
    boost::asio::io_context io_;
    intake intake_;
    std::shared_ptr<audit::trail> audit_ = std::make_shared<audit::trail>();
    api_context ctx_;
    std::unique_ptr<ui::dashboard> ui_;
    router routes_;
    std::shared_ptr<http_metrics> http_metrics_;
    security_layer gate_;
    http_server http_;
    boost::asio::signal_set signals_;
    int exit_status_ = 0;
    systemd::notifier notify_ = systemd::notifier::from_env();
    std::string ready_status_;
    std::unique_ptr<systemd::watchdog> watchdog_;  // its timer runs on io_
};

}  // namespace

int run_agent(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    config cfg;
    try {
        cfg = parse_command_line(argc, argv);
    } catch (const help_requested& h) {
        std::cout << h.text();
        if (!h.text().empty() && h.text().back() != '\n') std::cout << '\n';
        return 0;
    } catch (const config_error& e) {
        std::fprintf(stderr, "plugmon-agent: %s\n", e.what());
        return 2;
    }
    log::setup(cfg.log_format, cfg.log_level);
    // libpq defaults the connection string may override: who we are, and no endless connect.
    ::setenv("PGAPPNAME", "plugmon-agent", 0);
    ::setenv("PGCONNECT_TIMEOUT", "10", 0);
    if (cfg.command == "migrate") return run_migrate(cfg);
    if (cfg.command == "check-rules")
        return alert::check_rules(cfg.check_files, std::cout, std::cerr);
    try {
        spdlog::info("plugmon-agent {} starting: {}", project_version, describe(cfg));
        agent_app app(std::move(cfg), argc, argv);
        return app.run();
    } catch (const config_error& e) {
        std::fprintf(stderr, "plugmon-agent: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::fprintf(stderr, "plugmon-agent: %s\n", e.what());
        return 1;
    }
}

}  // namespace plugmon::agent
