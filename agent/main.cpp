// plugmon-agent: wires config → intake (socket) → drain → HTTP, and handles signals.
#include "api.hpp"
#include "config.hpp"
#include "drain.hpp"
#include "http.hpp"
#include "intake.hpp"
#include "tsc.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <iostream>

using namespace plugmon::agent;

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
    try {
        spdlog::info("plugmon-agent {} starting: {}", PLUGMON_VERSION, describe(cfg));
        if (!cfg.postgres.empty())
            spdlog::warn("postgres: the PostgreSQL store is not part of this version; the setting "
                         "is accepted and not used");
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
        const auto [host, port] = split_listen(cfg.listen);
        http_server http(io, host, port, [&ctx](const http_request& r) { return handle_request(ctx, r); });

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
