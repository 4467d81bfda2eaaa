// plugmon-agent: wires config → intake (socket) → drain → HTTP, and handles signals.
#include "api.hpp"
#include "config.hpp"
#include "drain.hpp"
#include "http.hpp"
#include "intake.hpp"
#include "store/migrations.hpp"
#include "store/writer.hpp"
#include "tsc.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>

using namespace plugmon::agent;

namespace {

/// `plugmon-agent migrate [--dry-run]`: applies (or lists) the schema migrations and exits.
int run_migrate(const config& cfg) {
    try {
        pqxx::connection c(cfg.postgres);
        const auto r = store::migrate(c, cfg.dry_run, PLUGMON_VERSION,
                                      [](const std::string& line) { std::printf("%s\n", line.c_str()); });
        if (cfg.dry_run)
            std::printf("schema at version %d; %zu migration(s) pending (dry run: nothing applied)\n",
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
        std::fprintf(stderr, "plugmon-agent: migrate: cannot use %s: %s\n", mask_password(cfg.postgres).c_str(),
                     e.what());
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
        spdlog::warn("store: PostgreSQL is not reachable yet ({}); windows go to the spool until it is",
                     e.what());
        return;
    }
    const auto r = store::migrate(*c, false, PLUGMON_VERSION, [](const std::string& line) {
        spdlog::info("store: {}", line);
    });
    spdlog::info("store: schema at version {}", r.to_version);
}

}  // namespace

int main(int argc, char** argv) {
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
    spdlog::set_level(cfg.log_level);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    // libpq defaults the connection string may override: who we are, and no endless connect.
    ::setenv("PGAPPNAME", "plugmon-agent", 0);
    ::setenv("PGCONNECT_TIMEOUT", "10", 0);
    if (cfg.command == "migrate") return run_migrate(cfg);
    try {
        spdlog::info("plugmon-agent {} starting: {}", PLUGMON_VERSION, describe(cfg));
        std::unique_ptr<store::writer> writer;
        if (!cfg.postgres.empty()) {
            check_schema_at_start(cfg);
            store::writer_options wopt;
            wopt.conninfo = cfg.postgres;
            wopt.host = cfg.host;
            wopt.agent_version = PLUGMON_VERSION;
            wopt.spooling.dir = cfg.spool_dir;
            wopt.spooling.max_bytes = cfg.spool_max_bytes;
            wopt.backoff_max = cfg.postgres_backoff_max;
            wopt.retention = cfg.postgres_retention;
            wopt.downsample_after = cfg.postgres_downsample_after;
            writer = std::make_unique<store::writer>(std::move(wopt));
        }
        const double ns_per_tick = measure_ns_per_tick();
        spdlog::debug("TSC: {:.6f} ns per tick", ns_per_tick);

        series_store store(bucket_bounds::from_seconds(cfg.query_buckets, cfg.execution_buckets),
                           series_store::limits{cfg.series_budget, cfg.series_budget_per_plugin});
        drain::options dopt;
        dopt.idle_sleep = cfg.drain_interval;
        dopt.ns_per_tick = ns_per_tick;
        dopt.flush_interval = cfg.flush_interval;
        dopt.expiry_windows = cfg.series_expiry_windows;
        statement_book statements(cfg.slow_query_samples);
        dopt.leak = leak_settings{cfg.leak_window, cfg.leak_min_growth, cfg.leak_min_r2};
        dopt.statements = &statements;
        if (writer) dopt.on_window = [w = writer.get()](window_batch&& b) { w->submit(std::move(b)); };
        store.set_slow_threshold([&cfg](const std::string& plugin) {
            return std::uint64_t(cfg.slow_threshold_for(plugin).count());
        });
        drain drainer(store, dopt);

        boost::asio::io_context io;
        intake::options iopt;
        iopt.runtime_dir = cfg.runtime_dir;
        iopt.socket_mode = cfg.socket_mode;
        iopt.max_producers = cfg.max_producers;
        intake in(io, iopt, drainer);

        api_context ctx{store, drainer, &in, PLUGMON_VERSION, nullptr, &statements, cfg.top_statements};
        if (writer) {
            ctx.store_state = [w = writer.get()] { return w->state(); };
            ctx.extra_metrics = [w = writer.get()](std::string& out) { w->render_metrics(out); };
            ctx.store_json = [w = writer.get()] { return w->status().dump(); };
        }
        const auto [host, port] = split_listen(cfg.listen);
        http_server http(io, host, port, [&ctx](const http_request& r) { return handle_request(ctx, r); });

        if (writer) writer->start();
        drainer.start();
        in.start();
        spdlog::info("listening: producers on {}, HTTP on http://{}:{}/metrics", in.socket_path(),
                     host.find(':') != std::string::npos ? "[" + host + "]" : host, http.port());

        boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        std::function<void(const boost::system::error_code&, int)> on_signal =
            [&](const boost::system::error_code& ec, int sig) {
                if (ec) return;
                if (sig == SIGHUP) {
                    try {
                        config fresh = parse_command_line(argc, argv);
                        spdlog::set_level(fresh.log_level);
                        spdlog::info("configuration reloaded (log level; other keys apply at restart)");
                    } catch (const std::exception& e) {
                        spdlog::error("reload refused, keeping the running configuration: {}", e.what());
                    }
                    signals.async_wait(on_signal);
                    return;
                }
                spdlog::info("{}: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                in.stop();
                if (!drainer.stop(cfg.exit_drain_timeout)) {
                    spdlog::error("the final drain did not finish within exit_drain_timeout ({}); "
                                  "exiting without it",
                                  format_duration(cfg.exit_drain_timeout));
                    std::_Exit(1);  // the drain thread still uses what destructors would free
                }
                const auto& t = drainer.totals();
                spdlog::info("stopped: drained {}, dropped full {}, torn {}, invalid {}",
                             t.drained.get(), t.full.get(), t.torn.get(), t.invalid.get());
                if (writer) {
                    // the final window is queued by now; write what time allows, spool the rest
                    if (!writer->stop(cfg.exit_drain_timeout)) {
                        spdlog::warn("store: a database call outlived exit_drain_timeout; exiting, the "
                                     "unwritten batches stay in the spool {}", cfg.spool_dir);
                        std::_Exit(0);  // its threads still use the writer
                    }
                    const auto& ws = writer->stats();
                    spdlog::info("store: {} batches written, {} left in the spool for the next start",
                                 ws.batches_written.load(), writer->spooled().batches());
                }
                http.stop();
                io.stop();
            };
        signals.async_wait(on_signal);
        io.run();
        return 0;
    } catch (const config_error& e) {
        std::fprintf(stderr, "plugmon-agent: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::fprintf(stderr, "plugmon-agent: %s\n", e.what());
        return 1;
    }
}
